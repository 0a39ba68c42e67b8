/**
 * Fallbacks out of each provider: how often a request gave up on a
 * provider and moved to the next step of its chain, for GET
 * /stats/fallbacks and the dashboard's comparison.
 *
 * A fallback row names the step moved to (its `provider`); the router
 * writes the step it left into the row's message, as
 * `fallback from <provider>/<model>: <why>` (chain.ts). Provider names
 * cannot contain "/", so the provider left is the text between that prefix
 * and the first "/". A last step skipped with nowhere to go
 * (`skipped …; no further step`) moved nowhere and is not counted. Read
 * through the partial index on the rare statuses, ten minutes at a time
 * with the event loop given back between them (a storm of 19,000 fallbacks
 * in an hour held it 60-120 ms read an hour at a time; 11-30 ms so, and the
 * whole read took less); values are bound.
 */
import type { Database } from 'bun:sqlite'
import { isoTime } from '../clock.ts'
import { canonicalMs, databasesOf, timeSpan } from './queries.ts'
import { RARE_STATUSES, statusIn } from './schema.ts'
import { yielder } from './stats-window.ts'

export interface FallbackCount {
  /** The provider the request left. */
  from: string
  /** The provider of the step it moved to. */
  to: string
  count: number
}

const PREFIX = 'fallback from '

/**
 * What a fallback row records: a move to its step (`fallback from …`), a last step skipped with
 * nowhere to go (`skipped …; no further step`), or a pending row whose call was never made
 * (`not called: …`). Only a move is a fallback in the counts.
 */
export function fallbackKind(message: string | null): 'move' | 'skip' | 'not-called' | 'other' {
  if (message?.startsWith(PREFIX)) return 'move'
  if (message?.startsWith('not called:')) return 'not-called'
  if (message && /^skipped .*; no further step$/s.test(message)) return 'skip'
  return 'other'
}

// The constant IN term repeats the partial index's WHERE, so SQLite may use it.
const MOVES = `FROM request_log l
  WHERE l.status = 'fallback' AND ${statusIn('l.status', RARE_STATUSES)}
    AND l.timestamp >= $since AND l.timestamp < $until
    AND substr(l.error_message, 1, ${PREFIX.length}) = '${PREFIX}' AND instr(substr(l.error_message, ${PREFIX.length + 1}), '/') > 1`
const MOVE = `substr(l.error_message, ${PREFIX.length + 1}, instr(substr(l.error_message, ${PREFIX.length + 1}), '/') - 1) AS "from", l.provider AS "to"`
const FALLBACKS_SQL = `SELECT ${MOVE}, count(*) AS count ${MOVES} GROUP BY 1, 2`

/** An archive's moves one by one, so those the live file still holds (copied, not yet deleted) are counted once. */
const ARCHIVE_FALLBACKS_SQL = `SELECT ${MOVE}, l.id AS id ${MOVES}`
const LIVE_FALLBACK_IDS_SQL = `SELECT l.id FROM request_log l
  WHERE l.status = 'fallback' AND ${statusIn('l.status', RARE_STATUSES)} AND l.timestamp >= $since AND l.timestamp < $until`

const CHUNK_MS = 600_000

/**
 * Moves from one provider to another in [since, until), most frequent first,
 * in one database or summed over several (the live file and archives).
 */
export async function fallbackCounts(source: Database | readonly Database[], since: string, until: string): Promise<FallbackCount[]> {
  const counts = new Map<string, FallbackCount>()
  const count = (from: string, to: string, n: number) => {
    const key = `${from}\u0000${to}`
    const seen = counts.get(key)
    if (seen) seen.count += n
    else counts.set(key, { from, to, count: n })
  }
  const giveBack = yielder()
  const [live, ...archives] = databasesOf(source)
  for (const db of [live!, ...archives]) {
    const span = timeSpan(db)
    if (!span) continue
    // Only the part of the window that holds rows (an end stamped in another form narrows nothing: canonicalMs).
    const firstMs = canonicalMs(span.first)
    const lastMs = canonicalMs(span.last)
    const endMs = lastMs === null ? Date.parse(until) : Math.min(Date.parse(until), lastMs + 1)
    for (let fromMs = firstMs === null ? Date.parse(since) : Math.max(Date.parse(since), firstMs); fromMs < endMs; fromMs += CHUNK_MS) {
      const params = { $since: isoTime(fromMs), $until: isoTime(Math.min(fromMs + CHUNK_MS, endMs)) }
      if (db === live) {
        for (const row of db.query(FALLBACKS_SQL).all(params) as FallbackCount[]) count(row.from, row.to, row.count)
      } else {
        // A row in both the live file and its archive (a moment in every archive batch) counts once.
        const inLive = new Set((live!.query(LIVE_FALLBACK_IDS_SQL).values(params) as [number][]).map(([id]) => id))
        for (const row of db.query(ARCHIVE_FALLBACKS_SQL).all(params) as { from: string; to: string; id: number }[]) if (!inLive.has(row.id)) count(row.from, row.to, 1)
      }
      await giveBack()
    }
  }
  return [...counts.values()].sort((a, b) => b.count - a.count || a.from.localeCompare(b.from) || a.to.localeCompare(b.to))
}

/** Fallbacks out of each provider (summed over where they went). */
export function fallbacksOut(counts: FallbackCount[]): Map<string, number> {
  const out = new Map<string, number>()
  for (const c of counts) out.set(c.from, (out.get(c.from) ?? 0) + c.count)
  return out
}
