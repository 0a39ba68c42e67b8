/**
 * The three accounts a drill compares: what clients were told (status,
 * request id, log ids), what the database holds (request_log and its
 * meta), and what the upstreams received (each request carries witness's
 * `x-witness-log-id` and `x-witness-request-id`). The checks here are pure
 * functions of those accounts, shared by the crash and chaos drills.
 */
import { Database } from 'bun:sqlite'
import type { Simulator } from '../../src/sim/server.ts'
import type { LogRow, MetaRow } from '../../test/support/rows.ts'
import type { CallResult } from './client.ts'
import type { Counts, Problems } from './result.ts'

export interface Snapshot {
  rows: Map<number, LogRow>
  meta: Map<number, MetaRow>
  /** Log ids of each request id, by seq. */
  byRequest: Map<string, number[]>
}

/** One request an upstream received. */
export interface UpstreamCall {
  upstream: string
  logId: number | null
  requestId: string | null
  model: string
  aborted: boolean
  fault: string | null
}

/** Reads every row and its meta, read-only (the server may be running). */
export function readSnapshot(dbPath: string): Snapshot {
  const db = new Database(dbPath, { readonly: true })
  try {
    db.exec('PRAGMA busy_timeout = 5000')
    const rows = new Map((db.query('SELECT * FROM request_log').all() as LogRow[]).map((r) => [r.id, r]))
    const metaRows = db.query('SELECT * FROM request_log_meta ORDER BY request_id, seq').all() as MetaRow[]
    const meta = new Map(metaRows.map((m) => [m.log_id, m]))
    const byRequest = new Map<string, number[]>()
    for (const m of metaRows) byRequest.set(m.request_id, [...(byRequest.get(m.request_id) ?? []), m.log_id])
    return { rows, meta, byRequest }
  } finally {
    db.close()
  }
}

/** Waits (up to `withinMs`) for the server to finish the rows it still owns; returns those still pending. */
export async function settledRows(dbPath: string, withinMs: number): Promise<LogRow[]> {
  const deadline = Date.now() + withinMs
  for (;;) {
    const pending = [...readSnapshot(dbPath).rows.values()].filter((r) => r.status === 'pending')
    if (pending.length === 0 || Date.now() >= deadline) return pending
    await Bun.sleep(50)
  }
}

/** What a simulator received, as upstream calls (copied: the simulator keeps appending). */
export function upstreamCalls(sim: Simulator, name: string): UpstreamCall[] {
  return sim.requests.map((r) => {
    const logId = r.headers['x-witness-log-id']
    return {
      upstream: name,
      logId: logId === undefined ? null : Number(logId),
      requestId: r.headers['x-witness-request-id'] ?? null,
      model: r.model,
      aborted: r.aborted,
      fault: r.fault,
    }
  })
}

const FINAL_ATTEMPT = new Set(['success', 'error', 'timeout'])

/**
 * What clients were told against the rows: a 200 that ended normally has
 * its rows, in the request it was told, the last one `success`; a stream
 * that ended with an error event has no success; a 502 has no success; no
 * log id or request id was given to two responses.
 */
export function checkResponses(responses: CallResult[], snap: Snapshot, problems: Problems, counts: Counts): void {
  const logIdOwner = new Map<number, number>()
  const requestIdOwner = new Map<string, number>()
  responses.forEach((r, i) => {
    const label = () => `${r.spec.api}${r.spec.stream ? ' (stream)' : ''} chain ${r.spec.chain} -> ${r.status ?? 'no answer'} ${r.ending}, request ${r.requestId}, log ids [${r.logIds.join(',')}]`
    for (const id of r.logIds) {
      const owner = logIdOwner.get(id)
      problems.check(owner === undefined, () => `log id ${id} was given to two responses: ${label()}`)
      logIdOwner.set(id, i)
    }
    if (r.requestId !== null && r.logIds.length > 0) {
      problems.check(!requestIdOwner.has(r.requestId), () => `request id ${r.requestId} was given to two responses`)
      requestIdOwner.set(r.requestId, i)
    }
    if (r.logIds.length === 0) {
      // Only an answer refused before any row was written (4xx, 503 telemetry_unavailable) or no answer
      // at all (the client left, the server was killed) may name no rows; a 200 or a 502 wrote some.
      const noRowsWritten = r.status === null || r.status === 503 || (r.status >= 400 && r.status < 500)
      problems.check(noRowsWritten, () => `a ${r.status} answer carries no log ids: ${label()}`)
      return
    }
    counts.add('responses checked against rows')
    const rows = r.logIds.map((id) => snap.rows.get(id))
    const missing = r.logIds.filter((_, k) => !rows[k])
    if (!problems.check(missing.length === 0, () => `rows ${missing.join(',')} do not exist: ${label()}`)) return
    counts.add('rows checked', rows.length)
    for (const id of r.logIds) {
      const m = snap.meta.get(id)
      problems.check(m?.request_id === r.requestId, () => `row ${id} belongs to request ${m?.request_id ?? '(no meta)'}, not the one the client was told: ${label()}`)
    }
    const ofRequest = r.requestId === null ? [] : (snap.byRequest.get(r.requestId) ?? [])
    problems.check(
      ofRequest.length === r.logIds.length && ofRequest.every((id) => r.logIds.includes(id)),
      () => `the request's rows in the database are [${ofRequest.join(',')}]: ${label()}`,
    )
    const attempts = rows.filter((row) => row!.status !== 'fallback')
    const last = attempts.at(-1)
    const successes = attempts.filter((row) => row!.status === 'success').length
    if (r.status === 200 && r.ending === 'complete') {
      problems.check(last?.status === 'success' && successes === 1, () => `a 200 answer whose rows are [${rows.map((x) => x!.status).join(',')}]: ${label()}`)
    } else if (r.status === 200 && r.ending === 'error-event') {
      problems.check(successes === 0, () => `a stream that ended with an error event has a success row: ${label()}`)
    } else if (r.status === 502) {
      problems.check(successes === 0, () => `a 502 answer has a success row: ${label()}`)
    }
  })
}

/**
 * What the upstreams received against the rows: each call carries a log id
 * that exists, is an attempt row of the request id it also carries, for the
 * model it was sent; no log id went upstream twice; every success row was
 * really called. Returns the log ids seen upstream.
 */
export function checkUpstream(calls: UpstreamCall[], snap: Snapshot, problems: Problems, counts: Counts): Set<number> {
  const seen = new Set<number>()
  for (const call of calls) {
    counts.add('upstream requests checked')
    const id = call.logId
    if (!problems.check(id !== null && Number.isInteger(id), () => `${call.upstream} received a request without an x-witness-log-id (model ${call.model})`)) continue
    problems.check(!seen.has(id!), () => `log id ${id} went upstream twice`)
    seen.add(id!)
    const row = snap.rows.get(id!)
    if (!problems.check(row !== undefined, () => `${call.upstream} received a call for log id ${id}, which has no row (no row, no call)`)) continue
    const meta = snap.meta.get(id!)
    problems.check(meta?.try !== null && meta?.try !== undefined && row!.status !== 'fallback', () => `log id ${id} went upstream but is not an attempt row (${row!.status})`)
    problems.check(row!.model === call.model, () => `log id ${id} went upstream for model ${call.model} but its row says ${row!.model}`)
    problems.check(meta?.request_id === call.requestId, () => `log id ${id} went upstream as request ${call.requestId} but its row belongs to ${meta?.request_id}`)
  }
  for (const row of snap.rows.values()) {
    if (row.status === 'success') problems.check(seen.has(row.id), () => `row ${row.id} says success but no upstream received it`)
  }
  return seen
}

/** No row at or below `upToId` (all rows when omitted) is still pending. */
export function checkNothingPending(snap: Snapshot, problems: Problems, upToId = Number.POSITIVE_INFINITY): number {
  let checked = 0
  for (const row of snap.rows.values()) {
    if (row.id > upToId) continue
    checked++
    problems.check(row.status !== 'pending', () => `row ${row.id} is still pending (${row.provider}/${row.model})`)
  }
  return checked
}

/**
 * Each request id has exactly one final outcome: its rows numbered 1..n
 * without a gap, none pending, at most one success and, if one, it is the
 * last attempt.
 */
export function checkOneOutcomePerRequest(snap: Snapshot, problems: Problems, counts: Counts): void {
  for (const [requestId, ids] of snap.byRequest) {
    counts.add('request ids checked')
    const metas = ids.map((id) => snap.meta.get(id)!)
    problems.check(metas.every((m, i) => m.seq === i + 1), () => `request ${requestId}: rows numbered ${metas.map((m) => m.seq).join(',')}, not 1..${ids.length}`)
    const rows = ids.map((id) => snap.rows.get(id)).filter((r): r is LogRow => r !== undefined)
    const attempts = rows.filter((r) => r.status !== 'fallback')
    problems.check(attempts.every((r) => FINAL_ATTEMPT.has(r.status)), () => `request ${requestId}: rows [${rows.map((r) => r.status).join(',')}] are not all finished`)
    const successes = attempts.filter((r) => r.status === 'success')
    problems.check(successes.length <= 1, () => `request ${requestId} has ${successes.length} success rows`)
    if (successes.length === 1) problems.check(attempts.at(-1) === successes[0], () => `request ${requestId}: a row after its success (${rows.map((r) => r.status).join(',')})`)
  }
}
