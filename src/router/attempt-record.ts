/**
 * A request's rows as the router keeps them while it runs: what every try
 * of a request shares (RequestScope), each row as the client is told of it
 * (AttemptRecord), and the finishing write that makes a row final, used by
 * a whole answer's try (attempt.ts) and a stream's session (stream.ts).
 */
import type { ClientRequest } from '../../providers/types.ts'
import type { Clock } from '../clock.ts'
import type { Policy } from '../config-schema.ts'
import type { PromptText } from '../redaction.ts'
import type { AttemptOutcome, RowMeta, Store } from '../telemetry/store.ts'
import type { AttemptObserver } from './metrics.ts'
import type { LiveCalls } from './live-calls.ts'

/** One row as reported back to the client (`attempts` in responses). */
export interface AttemptRecord {
  log_id: number
  provider: string
  model: string
  status: 'pending' | 'success' | 'error' | 'timeout' | 'fallback'
  latency_ms: number | null
  tokens_in: number | null
  tokens_out: number | null
  error_message: string | null
  /** The row's hash in the proof chain, once it is final. */
  hash: string | null
}

/** A row's record as it starts: no latency, tokens or hash yet (finishAttempt and the chain fill them in). */
export function attemptRecord(logId: number, provider: string, model: string, status: AttemptRecord['status'], errorMessage: string | null = null): AttemptRecord {
  return { log_id: logId, provider, model, status, latency_ms: null, tokens_in: null, tokens_out: null, error_message: errorMessage, hash: null }
}

/** What every try of a request shares. */
export interface RequestScope {
  store: Store
  clock: Clock
  policy: Policy
  request: ClientRequest
  agent: string
  requestId: string
  chain: string
  api: RowMeta['api']
  /** Aborts when the client goes away. */
  signal: AbortSignal
  /** Rows written so far, in order. */
  attempts: AttemptRecord[]
  /** This machine's name, for receipts. */
  machine: string
  /** The next row's position within the request, from 1. */
  nextSeq: () => number
  /** The prompt's texts, which no stored message or event passed on may carry (prepared on a first error). */
  prompt: () => PromptText
  /** Logs problems that do not change the answer (a finishing write being retried). */
  warn: (message: string) => void
  metrics?: AttemptObserver
  /** True once the router's stop cuts the connections of calls still running (past its grace). */
  stopping: () => boolean
  /** Calls under way, which the router's stop ends itself before it cuts the connections (live-calls.ts). */
  liveCalls?: LiveCalls
}

/** Commits a row's final state and mirrors it into the record the client sees. */
export async function finishAttempt(scope: Pick<RequestScope, 'store' | 'warn' | 'metrics'>, record: AttemptRecord, outcome: AttemptOutcome): Promise<void> {
  // A row finished uncalled (`fallback`) was no attempt.
  if (outcome.status !== 'fallback') scope.metrics?.attempt(record.provider, record.model, outcome.status, outcome.latencyMs)
  Object.assign(record, {
    status: outcome.status,
    latency_ms: outcome.latencyMs,
    tokens_in: outcome.tokensIn,
    tokens_out: outcome.tokensOut,
    error_message: outcome.errorMessage,
  })
  try {
    record.hash = await scope.store.finish(record.log_id, outcome)
    if (record.hash === null) scope.warn(`row ${record.log_id} was no longer pending when its call ended: something else finished it (a second witness on this database?)`)
  } catch (error) {
    // The call happened; the store keeps retrying the finishing write.
    scope.warn(`row ${record.log_id} could not be finished yet: ${(error as Error).message}`)
  }
}
