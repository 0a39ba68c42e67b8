/**
 * One chain step: retry (p-retry) around timeout (p-timeout) around an
 * abortable call. Every try is its own row: the pending row is committed
 * before the call (no row, no call) and finished in a `finally`, so no path
 * leaves it pending.
 */
import pRetry from 'p-retry'
import pTimeout from 'p-timeout'
import { ADAPTERS } from '../../providers/index.ts'
import type { ClientRequest, Completion, Target } from '../../providers/types.ts'
import { callCompletion } from '../../providers/call.ts'
import { formatWait } from '../../providers/retry-after.ts'
import type { Clock } from '../clock.ts'
import { isoTime } from '../clock.ts'
import type { Policy, StepSpec } from '../config.ts'
import { ProviderError, TelemetryUnavailableError } from '../errors.ts'
import type { AttemptOutcome, RowMeta, Store } from '../telemetry/store.ts'
import type { Ticket } from './cooldown.ts'
import type { AttemptObserver } from './metrics.ts'

/** One row as reported back to the client (`attempts` in responses). */
export interface AttemptRecord {
  log_id: number
  provider: string
  model: string
  status: 'success' | 'error' | 'timeout' | 'fallback'
  latency_ms: number | null
  tokens_in: number | null
  tokens_out: number | null
  error_message: string | null
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
  /** The next row's position within the request, from 1. */
  nextSeq: () => number
  /** Strings that must not appear in stored messages (prompt fragments). */
  redactions: () => string[]
  /** Whether to log finish failures (they are retried in the background by the store). */
  warn: (message: string) => void
  metrics?: AttemptObserver
}

export interface StepSuccess {
  completion: Completion
  logId: number
  latencyMs: number
}

/** The URL as stored in `endpoint`: no query string, no credentials. */
export function publicEndpoint(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    u.search = ''
    u.hash = ''
    return u.toString()
  } catch {
    return url.split('?')[0] ?? url
  }
}

/**
 * Runs one step until it succeeds or its retries are spent. Throws the last
 * ProviderError (the chain falls back) or TelemetryUnavailableError (503).
 * `before` is a write that must be committed with the first pending row
 * (the fallback row that leads here).
 */
export async function runStep(
  scope: RequestScope,
  stepIndex: number,
  step: StepSpec,
  apiKey: string | undefined,
  ticket: Ticket,
  before: Promise<unknown> | null,
): Promise<StepSuccess> {
  const adapter = ADAPTERS[step.provider.type]
  const target: Target = {
    provider: step.provider.name,
    baseUrl: step.provider.baseUrl,
    model: step.model,
    apiKey,
    headers: step.provider.headers,
  }
  const endpoint = publicEndpoint(adapter.endpoint(target.baseUrl))
  const { policy, clock } = scope

  const once = async (tryNumber: number): Promise<StepSuccess> => {
    const meta: RowMeta = {
      requestId: scope.requestId,
      chain: scope.chain,
      api: scope.api,
      seq: scope.nextSeq(),
      step: stepIndex,
      try: tryNumber,
      stream: scope.request.stream,
    }
    const head = { timestamp: isoTime(clock.now()), agentName: scope.agent, provider: target.provider, model: target.model, endpoint }
    const pending = scope.store.begin(head, meta)
    const [logId] = await Promise.all([pending, tryNumber === 1 ? before : null])
    // The row is committed: the call may go out.
    const record: AttemptRecord = {
      log_id: logId,
      provider: target.provider,
      model: target.model,
      status: 'error',
      latency_ms: null,
      tokens_in: null,
      tokens_out: null,
      error_message: null,
    }
    scope.attempts.push(record)

    let outcome: AttemptOutcome = {
      status: 'error',
      tokensIn: null,
      tokensOut: null,
      latencyMs: null,
      errorMessage: 'internal error: attempt ended without an outcome',
    }
    const controller = new AbortController()
    const onClientGone = () => controller.abort()
    scope.signal.addEventListener('abort', onClientGone, { once: true })
    const startedAt = clock.monotonic()
    try {
      if (scope.signal.aborted) controller.abort()
      const completion = await pTimeout(
        callCompletion(adapter, target, scope.request, {
          signal: controller.signal,
          now: () => clock.monotonic(),
          wallNow: () => clock.now(),
          headers: { 'x-witness-request-id': scope.requestId, 'x-witness-log-id': String(logId) },
          redactions: scope.redactions,
        }),
        {
          milliseconds: step.timeoutMs,
          fallback: () => {
            const error = new ProviderError({
              provider: target.provider,
              kind: 'timeout',
              detail: `timeout after ${step.timeoutMs} ms`,
              latencyMs: Math.round(clock.monotonic() - startedAt),
              retryable: policy.retry_timeouts,
            })
            controller.abort(error) // closes the socket, not just the wait
            throw error
          },
        },
      )
      outcome = {
        status: 'success',
        tokensIn: completion.usage.tokensIn,
        tokensOut: completion.usage.tokensOut,
        latencyMs: completion.latencyMs,
        errorMessage: null,
        httpStatus: 200,
        responseId: completion.responseId,
        servedModel: completion.servedModel,
        costUsd: completion.usage.costUsd,
      }
      ticket.succeed()
      return { completion, logId, latencyMs: completion.latencyMs }
    } catch (error) {
      if (error instanceof ProviderError) {
        outcome = {
          status: error.rowStatus,
          tokensIn: null,
          tokensOut: null,
          latencyMs: error.latencyMs,
          errorMessage: error.detail,
          httpStatus: error.httpStatus ?? null,
        }
        ticket.fail(error)
      } else {
        outcome = { ...outcome, latencyMs: Math.round(clock.monotonic() - startedAt), errorMessage: `internal error: ${(error as Error)?.name ?? 'unknown'}` }
      }
      throw error
    } finally {
      scope.signal.removeEventListener('abort', onClientGone)
      scope.metrics?.attempt(target.provider, target.model, outcome.status, outcome.latencyMs)
      Object.assign(record, {
        status: outcome.status,
        latency_ms: outcome.latencyMs,
        tokens_in: outcome.tokensIn,
        tokens_out: outcome.tokensOut,
        error_message: outcome.errorMessage,
      })
      try {
        await scope.store.finish(logId, outcome)
      } catch (error) {
        // The call happened; the store keeps retrying the finishing write.
        scope.warn(`row ${logId} could not be finished yet: ${(error as Error).message}`)
      }
    }
  }

  return pRetry(once, {
    retries: step.retries,
    factor: 2,
    minTimeout: policy.backoff_min_ms,
    maxTimeout: policy.backoff_max_ms,
    randomize: true,
    signal: scope.signal,
    shouldRetry: ({ error }) => shouldRetry(error, policy),
    onFailedAttempt: async ({ error, retriesLeft, retryDelay }) => {
      if (retriesLeft === 0 || !shouldRetry(error, policy)) return
      const wantMs = error instanceof ProviderError ? error.retryAfterMs : undefined
      // p-retry waits retryDelay after this; top it up to the provider's Retry-After.
      if (wantMs !== undefined && wantMs > retryDelay) await sleep(wantMs - retryDelay, scope.signal)
    },
  })
}

/** Whether a failed try should be retried on the same step. */
export function shouldRetry(error: unknown, policy: Policy): boolean {
  if (!(error instanceof ProviderError)) return false
  if (error.kind === 'aborted') return false
  if (error.kind === 'timeout') return policy.retry_timeouts
  if (error.retryAfterMs !== undefined && error.retryAfterMs > policy.retry_after_cap_ms) return false
  return error.retryable
}

/** Why the step is being left, for the fallback row. */
export function describeExit(error: unknown, policy: Policy): string {
  if (error instanceof ProviderError) {
    if (error.retryAfterMs !== undefined && error.retryAfterMs > policy.retry_after_cap_ms) {
      return `${error.detail} (longer than retry_after_cap ${formatWait(policy.retry_after_cap_ms)})`
    }
    return error.detail
  }
  if (error instanceof TelemetryUnavailableError) return error.message
  return 'internal error'
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })
}
