/**
 * Stats over a time window, computed slice by slice. The window is cut at
 * 10-minute boundaries; each slice is folded on its own (stats.ts) and the
 * exact partials are merged. A slice that can no longer change (no
 * pending row, and SEAL_AFTER_MS past the end of its longest call:
 * finalAtMs) is kept: a running witness keeps its partial in a StatsCache
 * and stores it in the live file (stats_slice, slice-store.ts), so a
 * 24-hour window costs the newest slices and a merge instead of a pass over
 * every row, warm or cold (the first call after a start, the command line).
 *
 * Rows of a sealed slice change only by being deleted (retention removes
 * the oldest rows first) or, abnormally, by a row being added with a
 * timestamp in the past, or by a retry or fallback that came after the
 * slice looked final (a clock that jumped). Before each use the cache drops
 * slices whose lowest id is gone, and the slices that rows added since its
 * last look changed (lateSlices); both checks read index ends and the new
 * rows only (the stored slices are checked the same way, see
 * slice-store.ts), and after more than REVALIDATE_MAX_ROWS new rows the
 * cache starts again instead. A slice read from its rows (the newest ones
 * always are: a busy witness writes 100,000 rows in a few minutes) is read
 * a few ms at a time (fold-stepwise.ts), so neither a cold window nor the
 * live slices stall the router.
 */
import type { Database } from 'bun:sqlite'
import { isoTime } from '../clock.ts'
import type { Pricing } from '../config-schema.ts'
import { type FoldBounds, foldBounds, foldStepwise } from './fold-stepwise.ts'
import type { SliceRollups } from './slice-rollups.ts'
import { ANY_SLICE, type FoldedSlice, deleteEpoch, lateSlices } from './slice-store.ts'
import { canonicalMs, databasesOf, idRange, timeSpan } from './queries.ts'
import { type SlicePartial, type StatsBy, type StatsResult, foldSlice, mergeStats } from './stats.ts'

/** Slices are 10-minute slots (SQL files a row by the first 15 characters of its timestamp: slice-store.ts). */
export const SLICE_MS = 10 * 60_000
/**
 * A whole slice that ended this long ago is sealed: it may be taken from the
 * cache or storage. A failed call's retry or fallback row follows the call's
 * end within the backoff and the Retry-After cap (seconds); a call still
 * running keeps its row pending, and one that ran long is waited for
 * (finalAtMs) before its slice is cached or stored.
 */
export const SEAL_AFTER_MS = 5 * 60_000

/**
 * The period whose files the stats of [since, until) read: up to a day past `until`, since whether a
 * failed call was its request's last is told by the rows after it, and those may lie in the next
 * month's archive (a retry at 00:00:01 of one that failed at 23:59:59 on the last day of a month).
 */
export function statsReadPeriod(query: { since: string; until: string }): { since: string; until: string } {
  const untilMs = Date.parse(query.until)
  return { since: query.since, until: Number.isFinite(untilMs) ? new Date(untilMs + 86_400_000).toISOString() : query.until }
}
/**
 * When a folded slice is final: SEAL_AFTER_MS after its last row ended. A
 * row starts in the slice and ends within its latency, and a retry or a
 * fallback follows the end of the call before it, not the slice's end (a
 * stream of 20 minutes that fails is followed by its next step 20 minutes
 * on). Until then a partial is neither cached nor stored.
 */
export function finalAtMs(partial: SlicePartial, toMs: number): number {
  return partial.hasPending ? Infinity : toMs + partial.maxLatencyMs + SEAL_AFTER_MS
}

/** Reading slices gives the event loop back at least this often (ms). */
const YIELD_EVERY_MS = 5
/**
 * The most rows added since the cache's last look that it reads to find
 * the slices they changed (about 3 µs a row, on the event loop); past that
 * it is emptied instead.
 */
export const REVALIDATE_MAX_ROWS = 10_000
/** About ten days of slices per database. */
const MAX_CACHED_SLICES = 1_500
/**
 * And about this much memory: a slice holds a partial per (agent, chain, provider, model), so one
 * of agents named per run (or per request) weighs many times one of a fleet's few (480 bytes a
 * partial measured, latencies included). Past it the oldest slices go (they are stored: reading one
 * back is cheap).
 */
const MAX_CACHED_BYTES = 64 * 1024 * 1024
const COMBO_BYTES = 400

/** A slice's memory, roughly: its partials and their latencies. */
function weightOf(partial: SlicePartial): number {
  let bytes = 0
  for (const combo of partial.combos.values()) bytes += COMBO_BYTES + combo.latencies.length * 8
  return bytes
}

export interface StatsQuery {
  since: string
  until: string
  by: StatsBy
  /** Only this agent's rows. */
  agent?: string
}

export interface StatsOptions {
  pricing: Pricing
  nowMs: number
  cache?: StatsCache
  /** The live file's stored slices (slice-rollups.ts). */
  rollups?: SliceRollups
  /** Gives the event loop back between slices and every few rows (default: once it has been held YIELD_EVERY_MS); a test seam. */
  pace?: () => Promise<void>
}

interface CachedDb {
  slices: Map<string, SlicePartial>
  /** Each cached slice's weight (weightOf), and their sum. */
  weights: Map<string, number>
  bytes: number
  /** Every row up to this id has been looked at (folded, or checked for a late timestamp). */
  seenMaxId: number
  /** DELETE_EPOCH_KEY at the last look: the archive mover bumps it whenever it deletes rows. */
  epoch: string | null
}

function drop(state: CachedDb, from: string): void {
  state.bytes -= state.weights.get(from) ?? 0
  state.weights.delete(from)
  state.slices.delete(from)
}

function clear(state: CachedDb): void {
  state.slices.clear()
  state.weights.clear()
  state.bytes = 0
}

/** Partials of sealed slices, per database. */
export class StatsCache {
  private readonly perDb = new WeakMap<Database, CachedDb>()

  /** `maxBytes`: the memory the slices of one database may hold, roughly (weightOf). */
  constructor(private readonly maxBytes = MAX_CACHED_BYTES) {}

  /** Drops what rows deleted or added since the last look may have changed; call before `get`. */
  revalidate(db: Database): void {
    const { lo, hi } = idRange(db)
    const epoch = deleteEpoch(db)
    const state = this.perDb.get(db)
    if (!state) {
      this.perDb.set(db, { slices: new Map(), weights: new Map(), bytes: 0, seenMaxId: hi ?? 0, epoch })
      return
    }
    // Rows were archived: a slice's request counts may depend on rows of its requests that moved
    // (a request can straddle the cut), so nothing cached is kept. Archiving runs about daily.
    if (epoch !== state.epoch) {
      clear(state)
      state.epoch = epoch
    }
    for (const [from, partial] of state.slices) {
      if (partial.loId !== null && (lo === null || partial.loId < lo)) drop(state, from)
    }
    // Whatever the clock said when they were written: a row dated inside a cached slice after a
    // clock stepped back, or a retry that followed a failure after a jump ahead, changes it all the same.
    // Reading many rows costs more than starting again (from the stored slices, kept checked by the fill).
    if (hi !== null && hi - state.seenMaxId > REVALIDATE_MAX_ROWS) clear(state)
    if (hi !== null && hi > state.seenMaxId && state.slices.size > 0) {
      const late = lateSlices(db, state.seenMaxId, hi)
      if (late.has(ANY_SLICE)) clear(state)
      for (const from of late.keys()) drop(state, from)
    }
    state.seenMaxId = Math.max(state.seenMaxId, hi ?? 0)
  }

  get(db: Database, from: string): SlicePartial | undefined {
    return this.perDb.get(db)?.slices.get(from)
  }

  /**
   * Caches a slice folded from its rows, unless the cache has looked at rows the fold did not see
   * (another read revalidated while it ran, and would have dropped it had it been there) or rows
   * were archived since it began.
   */
  setFolded(db: Database, folded: FoldedSlice): void {
    const state = this.perDb.get(db)
    if (!state || state.seenMaxId > folded.asOfId || state.epoch !== folded.epoch) return
    this.set(db, folded.from, folded.partial)
  }

  set(db: Database, from: string, partial: SlicePartial): void {
    const state = this.perDb.get(db)
    if (!state) return
    const weight = weightOf(partial)
    if (weight > this.maxBytes) return
    drop(state, from)
    state.slices.set(from, partial)
    state.weights.set(from, weight)
    state.bytes += weight
    if (state.slices.size > MAX_CACHED_SLICES || state.bytes > this.maxBytes) {
      for (const key of [...state.slices.keys()].sort()) {
        if (state.slices.size <= MAX_CACHED_SLICES && state.bytes <= this.maxBytes) break
        drop(state, key)
      }
    }
  }

  size(db: Database): number {
    return this.perDb.get(db)?.slices.size ?? 0
  }
}

interface Slice {
  from: string
  to: string
  /** Covers a whole 10-minute slot (only those are cached). */
  whole: boolean
  toMs: number
}

/** Cuts [since, until) at slice boundaries. */
export function slicesOf(since: string, until: string): Slice[] {
  const out: Slice[] = []
  const endMs = Date.parse(until)
  let start = Date.parse(since)
  while (start < endMs) {
    const boundary = (Math.floor(start / SLICE_MS) + 1) * SLICE_MS
    const end = Math.min(boundary, endMs)
    out.push({ from: isoTime(start), to: isoTime(end), whole: start % SLICE_MS === 0 && end === boundary, toMs: end })
    start = end
  }
  return out
}

/**
 * The stats for `query` over one database, or over several (the live file
 * first, then archives: a row in two of them counts once). The cache and
 * the stored slices hold slices of one database, so a read across several
 * does without them.
 */
export async function computeStats(source: Database | readonly Database[], query: StatsQuery, options: StatsOptions): Promise<StatsResult> {
  const slices = await slicePartials(source, query.since, query.until, options)
  return mergeStats(slices.map((s) => s.partial), query.by, options.pricing, query.agent)
}

/**
 * The partial of each slice of [since, until) that may hold rows, oldest
 * first. A sealed slice of one database comes from the cache, else from
 * the slices stored in that database (`rollups`, the live file's; one read
 * for all the sealed slices the cache lacks), else from its rows (and is
 * then, once final, cached, and stored if `rollups` has a writer). Only the part of the window
 * between its first and last rows is cut into slices, and a slice with no row is skipped with one
 * index seek to the next row: a year back to one stray row is not 52,560 empty folds (nor stored
 * slices). Used by the stats and by the time series (series.ts).
 */
export async function slicePartials(
  source: Database | readonly Database[],
  since: string,
  until: string,
  options: { nowMs: number; cache?: StatsCache; rollups?: SliceRollups; pace?: () => Promise<void> },
): Promise<{ from: string; partial: SlicePartial }[]> {
  const dbs = databasesOf(source)
  // The cache and the stored slices hold slices of one database: a read across several does without them.
  const single = dbs.length === 1 ? dbs[0]! : null
  const cache = single ? options.cache : undefined
  const rollups = single && options.rollups?.db === single ? options.rollups : undefined
  const out: { from: string; partial: SlicePartial }[] = []
  if (single) cache?.revalidate(single)
  // Read before the spans: the spans say which files hold a slice's rows only while no rows have
  // moved since (the archive job moves rows out of the live file into a file whose span it widens).
  const spansEpoch = deleteEpoch(dbs[0]!)
  const spans = dbs.flatMap((db) => {
    const span = timeSpan(db)
    return span ? [{ db, ...span }] : []
  })
  if (!spans.length) return out
  // A row stamped in another form (a direct write's `unknown`, `2026-11-25 09:30:00`) can sort first
  // or last, as text, not by its time: then the window is not narrowed on that side (canonicalMs).
  const firstMs = canonicalMs(spans.map((s) => s.first).sort()[0]!)
  const lastMs = canonicalMs(spans.map((s) => s.last).sort().at(-1)!)
  const from = isoTime(firstMs === null ? Date.parse(since) : Math.max(Date.parse(since), Math.floor(firstMs / SLICE_MS) * SLICE_MS))
  const to = isoTime(lastMs === null ? Date.parse(until) : Math.min(Date.parse(until), (Math.floor(lastMs / SLICE_MS) + 1) * SLICE_MS))
  const giveBack = options.pace ?? yielder()
  const slices = slicesOf(from, to).map((slice) => ({ ...slice, sealed: single !== null && slice.whole && slice.toMs <= options.nowMs - SEAL_AFTER_MS }))
  // The sealed slices the cache lacks are read from storage in one go (a cold call: the whole window),
  // and cached in the same turn as the cache's look at the rows added since (revalidate), which
  // another read may repeat at any later turn.
  const lacking = slices.filter((s) => s.sealed && !(single && cache?.get(single, s.from))).map((s) => s.from)
  const stored = rollups && lacking.length ? rollups.load(lacking) : new Map<string, SlicePartial>()
  for (const [from, partial] of stored) {
    rollups!.used()
    cache?.set(single!, from, partial)
  }
  // Which rows exist for this read's folds: taken once, so its slices agree (a request across two is counted once).
  let bounds: FoldBounds | undefined
  for (let i = 0; i < slices.length; i++) {
    const slice = slices[i]!
    const sealed = slice.sealed
    const kept = sealed ? (cache?.get(single!, slice.from) ?? stored.get(slice.from)) : undefined
    if (kept) {
      out.push({ from: slice.from, partial: kept })
      continue
    }
    // A slice with no row is neither folded nor stored: the read goes on at the slice of the next row
    // there is (one index seek), so a window reaching back to one old row is not a year of empty folds.
    const next = firstRowFrom(spans, slice.from, to)
    if (next === null) break
    if (next >= slice.to) {
      i = sliceHolding(slices, next) - 1
      continue
    }
    // Only the files holding rows of the slice's time are read (an archive holds one month); a
    // sealed slice of the live file is folded whole, to be stored. A few ms at a time (fold-stepwise.ts).
    bounds ??= foldBounds(dbs)
    const holding = sealed && rollups ? [single!] : bounds.head.epoch !== spansEpoch ? dbs : spans.filter((s) => s.first < slice.to && s.last >= slice.from).map((s) => s.db)
    let partial: SlicePartial
    if (!holding.length) partial = foldSlice(dbs, [])
    else {
      const folded = await foldStepwise(dbs, slice.from, slice.to, giveBack, holding, bounds)
      if (sealed) rollups?.keepFolded(folded, options.nowMs)
      if (sealed && finalAtMs(folded.partial, slice.toMs) <= options.nowMs) cache?.setFolded(single!, folded)
      partial = folded.partial
    }
    out.push({ from: slice.from, partial })
    await giveBack()
  }
  return out
}

/** The first timestamp (as text sorts, as the folds read) at or after `from` and before `to` in any of the files, or null. */
function firstRowFrom(spans: readonly { db: Database }[], from: string, to: string): string | null {
  let first: string | null = null
  for (const { db } of spans) {
    const row = db.query('SELECT timestamp FROM request_log WHERE timestamp >= ? AND timestamp < ? ORDER BY timestamp LIMIT 1').get(from, to) as { timestamp: string } | null
    if (row && (first === null || row.timestamp < first)) first = row.timestamp
  }
  return first
}

/** The index of the slice whose text range holds `timestamp` (slices are in order; it lies at or after the first). */
function sliceHolding(slices: readonly Slice[], timestamp: string): number {
  let lo = 0
  let hi = slices.length - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (slices[mid]!.from <= timestamp) lo = mid
    else hi = mid - 1
  }
  return lo
}

/** Returns a function that gives the event loop back if it has been held YIELD_EVERY_MS since the last time. */
export function yielder(): () => Promise<void> {
  let heldSince = performance.now()
  return async () => {
    if (performance.now() - heldSince <= YIELD_EVERY_MS) return
    await new Promise((resolve) => setImmediate(resolve))
    heldSince = performance.now()
  }
}
