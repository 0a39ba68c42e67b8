/**
 * The shapes of what the store writes: a row's head (known before the call),
 * its meta (what ties it to its request), how it ended, and the write ops
 * that travel to the writer (plain data, so they can cross to a worker).
 */
import type { Status } from './schema.ts'

/** Which API a request came in on. */
export type Api = 'infer' | 'chat.completions' | 'messages' | 'deadman'

/** What ties a row to its request; stored in request_log_meta. */
export interface RowMeta {
  requestId: string
  chain: string
  api: Api
  /** Position of this row within its request, from 1. */
  seq: number
  step: number | null
  try: number | null
  stream: boolean
}

/** The identity of a row: the request_log columns known before the call. */
export interface RowHead {
  timestamp: string
  agentName: string
  provider: string
  model: string
  endpoint: string
}

/**
 * How an attempt ended. `fallback` is a pending row whose call was not made
 * (its message says `not called: …`): like the fallback rows that name a
 * step skipped, it names the provider without being a call, so did-call and
 * the stats do not count it as one.
 */
export interface AttemptOutcome {
  status: 'success' | 'error' | 'timeout' | 'fallback'
  tokensIn: number | null
  tokensOut: number | null
  latencyMs: number | null
  errorMessage: string | null
  httpStatus?: number | null
  responseId?: string | null
  servedModel?: string | null
  /** Milliseconds from sending to the first upstream event (a stream). */
  firstByteMs?: number | null
  /** Milliseconds from sending to the first event carrying content (a stream that produced any). */
  firstTokenMs?: number | null
  costUsd?: number | null
  /** sha256 (hex) of the exact bytes sent upstream and received back; chained with the row. */
  requestSha256?: string | null
  responseSha256?: string | null
}

/** What a write committed: the row's id, and its chain hash when it became final. */
export interface WriteResult {
  id: number
  hash: string | null
}

/** A row written already final (fallback, rollback). */
export interface FinalRow extends RowHead {
  status: Exclude<Status, 'pending'>
  errorMessage: string | null
  tokensIn?: number | null
  tokensOut?: number | null
  latencyMs?: number | null
}

/**
 * A write to one of witness's side tables. The SQL is a constant owned by a
 * query module (src/telemetry/*-store.ts), never built from input; values
 * are bound parameters. With `insert`, `$log_id` is bound to the new row's id.
 */
export interface SideWrite {
  sql: string
  params: Record<string, string | number | null>
}

/**
 * What a `side` op applies: one statement, or several applied in order in
 * the same transaction (a later one may check what an earlier one wrote).
 */
export type SideWrites = SideWrite | readonly SideWrite[]

/** The statements of a side op, in order. */
export function sideStatements(side: SideWrites): readonly SideWrite[] {
  return 'sql' in side ? [side] : side
}

export type WriteOp =
  | { kind: 'begin'; head: RowHead; meta: RowMeta }
  /** `again`: a retry of a finish that was refused (and counted as refused) once already. */
  | { kind: 'finish'; id: number; outcome: AttemptOutcome; again?: boolean }
  | { kind: 'insert'; row: FinalRow; meta: RowMeta | null; side: SideWrite | null }
  | { kind: 'state'; key: string; value: string; at: string }
  /** Inserts a row and rolls it back: proves a new row would fit now (the health probe). */
  | { kind: 'probe' }
  | { kind: 'side'; side: SideWrites }

