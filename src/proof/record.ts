/**
 * The canonical encoding of a finished row, and the chain hash over it.
 *
 *   record = JSON.stringify([
 *     [id, timestamp, agent_name, provider, model, endpoint,
 *      tokens_in, tokens_out, latency_ms, status, error_message],
 *     request_id, response_id, request_sha256, response_sha256,
 *   ])
 *   hash = sha256_hex(prev_hash + record)        (UTF-8; prev_hash hex; first prev_hash: 64 zeros)
 *
 * JSON.stringify of strings, integers and nulls is deterministic, so anyone
 * can recompute a hash from the row, its side-table facts and the previous
 * hash. request_sha256/response_sha256 are the sha256 (hex) of the exact
 * bytes sent upstream and received back (null where no call was made), so
 * the log proves what was asked and answered without storing either.
 */

import { LOG_COLUMNS } from '../telemetry/schema.ts'

export { LOG_COLUMNS }

export const GENESIS_HASH = '0'.repeat(64)

export type LogColumn = (typeof LOG_COLUMNS)[number]
export type LogRow = Record<LogColumn, string | number | null>

/** What the chain proves beside the 11 columns. */
export interface ChainFacts {
  requestId: string | null
  responseId: string | null
  requestSha256: string | null
  responseSha256: string | null
}

export function encodeRecord(row: LogRow, facts: ChainFacts): string {
  return JSON.stringify([LOG_COLUMNS.map((c) => row[c]), facts.requestId, facts.responseId, facts.requestSha256, facts.responseSha256])
}

export interface DecodedRecord {
  row: LogRow
  facts: ChainFacts
}

/** Reads a record back; null when it is not one. */
export function decodeRecord(record: string): DecodedRecord | null {
  try {
    const value: unknown = JSON.parse(record)
    if (!Array.isArray(value) || value.length !== 5 || !Array.isArray(value[0]) || value[0].length !== LOG_COLUMNS.length) return null
    const cells = value[0] as (string | number | null)[]
    const row = Object.fromEntries(LOG_COLUMNS.map((c, i) => [c, cells[i] ?? null])) as LogRow
    const [, requestId, responseId, requestSha256, responseSha256] = value as [unknown, string | null, string | null, string | null, string | null]
    return { row, facts: { requestId, responseId, requestSha256, responseSha256 } }
  } catch {
    return null
  }
}

export function chainHash(prevHash: string, record: string): string {
  return Bun.SHA256.hash(prevHash + record, 'hex')
}


/** How start-up recovery finishes a row a previous run left pending (main.ts): its error_message begins so. */
export const RECOVERED_MESSAGE = 'router stopped before the call finished'

/** Whether a row was finished by start-up recovery (left pending by a run that stopped). */
export function finishedByRecovery(row: LogRow): boolean {
  return row.status === 'error' && String(row.error_message ?? '').startsWith(RECOVERED_MESSAGE)
}
