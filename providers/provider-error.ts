/**
 * A failed upstream attempt, as every adapter call reports it: what kind
 * of failure, whether a retry may help, any `Retry-After`, and the text its
 * row keeps; and the rules on HTTP statuses that decide retries and
 * fallbacks (which a rollback can cure, which the request itself caused).
 */
import type { Usage } from './types.ts'

/** What kind of upstream failure happened; decides retry and the row's status. */
export type FailureKind = 'http' | 'network' | 'timeout' | 'malformed' | 'aborted' | 'stream'

export interface ProviderErrorInit {
  provider: string
  kind: FailureKind
  detail: string
  latencyMs: number
  httpStatus?: number
  answeredStatus?: number
  retryable: boolean
  retryAfterMs?: number
  usage?: Usage
}

/**
 * A failed upstream attempt. Carries whether a retry may help and any
 * `Retry-After` the provider sent. `message` is safe to store in a row.
 */
export class ProviderError extends Error {
  override name = 'ProviderError'
  readonly provider: string
  readonly kind: FailureKind
  readonly httpStatus: number | undefined
  /** The status the answer really came with, when it differs from httpStatus: an error carried in a 200 (OpenRouter, vLLM). */
  readonly answeredStatus: number | undefined
  readonly retryable: boolean
  readonly retryAfterMs: number | undefined
  readonly latencyMs: number
  /** The text for the row's error_message (already redacted). */
  readonly detail: string
  /** What the failed answer said it used (an answer without a choice), for the row. */
  readonly usage: Usage | undefined

  constructor(private readonly init: ProviderErrorInit) {
    // A timeout's detail already says how long it waited.
    super(init.kind === 'timeout' ? `${init.provider}: ${init.detail}` : `${init.provider}: ${init.detail} after ${init.latencyMs} ms`)
    this.provider = init.provider
    this.kind = init.kind
    this.detail = init.detail
    this.latencyMs = init.latencyMs
    this.httpStatus = init.httpStatus
    this.answeredStatus = init.answeredStatus
    this.retryable = init.retryable
    this.retryAfterMs = init.retryAfterMs
    this.usage = init.usage
  }

  /** The same failure, of an answer that came with `status` before its body failed (the row's http_status). */
  withAnsweredStatus(status: number): ProviderError {
    return new ProviderError({ ...this.init, answeredStatus: status })
  }

  /** The row status this failure is recorded with. */
  get rowStatus(): 'timeout' | 'error' {
    return this.kind === 'timeout' ? 'timeout' : 'error'
  }
}

/**
 * The statuses by which a provider that works refuses the request itself: 400 (a context too long,
 * a bad parameter), 413 (too large), 422 (unprocessable). The same request fails so on any config,
 * so no rollback can cure it. A rejected key (401, 403), a model not found (404, 410), a rate limit
 * (429), a 5xx are not among them: a config change can cause those, and a rollback cure them.
 */
const REQUEST_REFUSALS = new Set([400, 413, 422])

/** Whether a failed try was the provider refusing this request (see REQUEST_REFUSALS), not failing. */
export function refusedRequest(error: ProviderError): boolean {
  return error.kind === 'http' && error.httpStatus !== undefined && REQUEST_REFUSALS.has(error.httpStatus)
}

/** Whether the same request might get past this failure another time: not for a 4xx other than 408, 409, 429. */
export function worthRetrying(error: ProviderError): boolean {
  // A network failure that is not retryable is one of the setup (a redirect, an untrusted certificate).
  if (error.kind === 'network' && !error.retryable) return false
  const status = error.httpStatus
  return status === undefined || status < 400 || status === 409 || retryableStatus(status)
}

/**
 * The statuses a retry of the same request may get past: 408, 429, any 5xx but 501 and 505 (the
 * server does not do what was asked: it will not next time either), and Groq's 498 (its flex tier's
 * capacity is exceeded: "retry later").
 */
export function retryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 498 || (status >= 500 && status !== 501 && status !== 505)
}
