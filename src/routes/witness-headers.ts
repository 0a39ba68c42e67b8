/**
 * The X-Witness-* response headers every inference endpoint sets, on
 * success and on failure, so a client can look its rows up at once.
 */
import type { Context } from 'hono'
import { receiptFor } from '../proof/receipt.ts'
import type { AttemptRecord } from '../router/attempt-record.ts'
import { failureOf } from '../router/dispatch.ts'

export function setWitnessHeaders(
  c: Context,
  machine: string,
  requestId: string,
  attempts: AttemptRecord[],
  served?: { provider: string; model: string },
): void {
  c.header('X-Witness-Request-Id', requestId)
  // The rows already chained. A stream's own row is not yet (its receipt is sent at its end): a
  // stream with no row before it gets no header rather than one that names nothing.
  if (attempts.some((a) => a.hash !== null)) c.header('X-Witness-Receipt', receiptFor(machine, attempts))
  c.header('X-Witness-Log-Ids', attempts.map((a) => a.log_id).join(','))
  c.header('X-Witness-Attempts', String(attempts.filter((a) => a.status !== 'fallback').length))
  if (served) {
    c.header('X-Witness-Provider', served.provider)
    c.header('X-Witness-Model', headerText(served.model))
  }
}

/**
 * A value from the config as a header can carry it: as it is when it is printable ASCII without
 * `%`, else percent-encoded, so that decoding always gives it back (a model id in another script,
 * or with a line end, threw after the call was made and paid for, and the client got a 500).
 */
function headerText(value: string): string {
  return /^[\x20-\x24\x26-\x7e]*$/.test(value) ? value : encodeURIComponent(value)
}

/** Sets the headers for a failed dispatch that wrote a row (a request that left none carries none); returns the error. */
export function withFailureHeaders(c: Context, error: unknown): unknown {
  const failure = failureOf(error)
  if (failure && failure.attempts.length > 0) setWitnessHeaders(c, failure.machine, failure.requestId, failure.attempts)
  return error
}
