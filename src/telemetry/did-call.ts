/**
 * "Did agent X call provider Y?": yes only if a call was really attempted
 * (a pending, success, error or timeout row). Fallback rows that merely
 * name the provider (a step moved to, or skipped) do not count as calls;
 * they are reported beside the answer.
 */
import type { Database } from 'bun:sqlite'
import { RowsDeletedError } from '../errors.ts'
import { didCallCountsAcross } from './across.ts'
import { didCallCountsLive } from './did-call-stored.ts'
import type { DidCallQuery } from './queries.ts'
import { CALL_STATUSES } from './schema.ts'

export interface DidCallAnswer {
  called: boolean
  agent: string
  provider: string
  model?: string
  since: string
  until?: string
  calls: number
  by_status: Partial<Record<(typeof CALL_STATUSES)[number], number>>
  last_call_at: string | null
  /** Fallback rows naming the provider in the window (not calls). */
  fallback_rows: number
  /**
   * On a "no": which of the agent and the provider no row of the files read names at all, at any
   * time (a typo, more often than not); absent when both have rows.
   */
  never_seen?: ('agent' | 'provider')[]
}

/**
 * The answer from the live database `db`, and from `archives` too when given (a row in both counts
 * once). No call found while the window reaches `deletedMonths` is no answer (RowsDeletedError). `ownRows`: asked with the agent's own token, so `never_seen` looks at its rows alone (whether
 * any other agent ever called the provider is not the agent's to learn).
 */
export function didCall(db: Database, q: DidCallQuery, archives: readonly Database[] = [], ownRows = false, deletedMonths: readonly string[] = []): DidCallAnswer {
  const counts = archives.length ? didCallCountsAcross(db, archives, q) : didCallCountsLive(db, q)
  const byStatus: DidCallAnswer['by_status'] = {}
  let calls = 0
  for (const status of CALL_STATUSES) {
    const n = counts.byStatus[status]
    if (n) {
      byStatus[status] = n
      calls += n
    }
  }
  // A "no" over months whose rows retention deleted would be a guess (`deletedMonths`, read-sources.ts).
  if (calls === 0 && deletedMonths.length) throw new RowsDeletedError(deletedMonths, q.since)
  const neverSeen = calls > 0 ? [] : unseen([db, ...archives], q, ownRows)
  return {
    called: calls > 0,
    agent: q.agent,
    provider: q.provider,
    ...(q.model !== undefined ? { model: q.model } : {}),
    since: q.since,
    ...(q.until !== undefined ? { until: q.until } : {}),
    calls,
    by_status: byStatus,
    last_call_at: counts.lastCallAt,
    fallback_rows: counts.byStatus.fallback ?? 0,
    ...(neverSeen.length ? { never_seen: neverSeen } : {}),
  }
}

/** Which of the query's agent and provider no row of `dbs` names (of the agent's, with `ownRows`), at any time (each a seek in an index). */
function unseen(dbs: readonly Database[], q: DidCallQuery, ownRows: boolean): ('agent' | 'provider')[] {
  const some = (sql: string, ...values: string[]) => dbs.some((db) => db.query(sql).get(...values) !== null)
  const agentSeen = some('SELECT 1 FROM request_log WHERE agent_name = ? LIMIT 1', q.agent)
  const providerSeen = ownRows
    ? some('SELECT 1 FROM request_log WHERE agent_name = ? AND provider = ? LIMIT 1', q.agent, q.provider)
    : some('SELECT 1 FROM request_log WHERE provider = ? LIMIT 1', q.provider)
  return [...(agentSeen ? [] : ['agent' as const]), ...(providerSeen ? [] : ['provider' as const])]
}
