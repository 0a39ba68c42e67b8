/**
 * One line of the export: the 11 request_log columns by name, in table
 * order, plus `request_id` from request_log_meta (null where a row has
 * none). Files are `<machine>/YYYY/MM/DD.ndjson` by the row's UTC day.
 */
import * as v from 'valibot'

const Int = v.pipe(v.number(), v.integer())

export const ExportLineSchema = v.strictObject({
  id: Int,
  timestamp: v.string(),
  agent_name: v.string(),
  provider: v.string(),
  model: v.string(),
  endpoint: v.string(),
  tokens_in: v.nullable(Int),
  tokens_out: v.nullable(Int),
  latency_ms: v.nullable(Int),
  status: v.string(),
  error_message: v.nullable(v.string()),
  request_id: v.nullable(v.string()),
})
export type ExportLine = v.InferOutput<typeof ExportLineSchema>

/** The SELECT list that yields export lines from a database (request_log r, request_log_meta m). */
export const EXPORT_COLUMNS =
  'r.id, r.timestamp, r.agent_name, r.provider, r.model, r.endpoint, r.tokens_in, r.tokens_out, r.latency_ms, r.status, r.error_message'

const DAY = /^(\d{4})-(\d{2})-(\d{2})T/

/**
 * `<machine>/YYYY/MM/DD.ndjson` for a row (by its UTC day; 0000/00/00 if its timestamp is not
 * ISO-8601 or names a year outside 0000-9999, as `+010000-01-01T…` does).
 */
export function dayFileOf(machine: string, timestamp: string): string {
  // Not Date.parse for the rest: it reads a time with no zone (`2026-03-05 23:30:00`, SQLite's
  // datetime()) in the syncing process's zone, so one row could go to two day files.
  const [, year, month, day] = DAY.exec(timestamp) ?? ['', '0000', '00', '00']
  return `${machine}/${year}/${month}/${day}.ndjson`
}

/** The line for a row: keys in table order, then request_id. */
export function toLine(row: ExportLine): string {
  return JSON.stringify({
    id: row.id,
    timestamp: row.timestamp,
    agent_name: row.agent_name,
    provider: row.provider,
    model: row.model,
    endpoint: row.endpoint,
    tokens_in: row.tokens_in,
    tokens_out: row.tokens_out,
    latency_ms: row.latency_ms,
    status: row.status,
    error_message: row.error_message,
    request_id: row.request_id,
  })
}

/** The id at the start of a line written by toLine (cheap, for de-duplication). */
export function idOfLine(line: string): number | null {
  const match = /^\{"id":(\d+),/.exec(line)
  return match ? Number(match[1]) : null
}
