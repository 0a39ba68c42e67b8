/**
 * One chain step: retry (p-retry) around timeout (p-timeout) around an
 * abortable call. Every try is its own row: the pending row is committed
 * before the call (no row, no call) and finished in a `finally`, so no path
 * leaves it pending. A streaming try that received its first event hands
 * its row over to a StreamSession, which finishes it when the stream ends.
 */
import pRetry from 'p-retry'
import pTimeout from 'p-timeout'
import { type Evidence, callCompletion, openStream, redactorOf, withoutCredentials } from '../../providers/call.ts'
import { ADAPTERS } from '../../providers/index.ts'
import { formatWait } from '../../providers/retry-after.ts'
import { streamTranslator } from '../../providers/translate/stream.ts'
import type { ClientRequest, Completion, Target } from '../../providers/types.ts'
import { isoTime } from '../clock.ts'
import type { StepSpec } from '../config.ts'
import type { Policy } from '../config-schema.ts'
import { ProviderError } from '../../providers/provider-error.ts'
import { TelemetryUnavailableError } from '../errors.ts'
import type { AttemptOutcome, RowHead, RowMeta } from '../telemetry/store.ts'
import type { Ticket } from './cooldown.ts'
import { type RequestScope, attemptRecord, finishAttempt } from './attempt-record.ts'
import { type StreamSession, startStreamSession } from './stream.ts'

export type StepSuccess =
  | { kind: 'completion'; completion: Completion; logId: number; latencyMs: number }
  | { kind: 'stream'; stream: StreamSession; logId: number }

/**
 * Commits the pending row, together with `before` (the fallback row that
 * leads here) when there is one: both are submitted in the same turn, so
 * group commit puts them in one transaction. If the batch is split and the
 * fallback row fails while the pending row committed, the pending row is
 * finished at once (the call is not made) before the failure is thrown.
 */
async function beginAfter(scope: RequestScope, head: RowHead, meta: RowMeta, before: Promise<unknown> | null): Promise<number> {
  const pending = scope.store.begin(head, meta)
  if (!before) return pending
  const [row, fallback] = await Promise.allSettled([pending, before])
  if (row.status === 'rejected') throw row.reason
  if (fallback.status === 'rejected') {
    const why = fallback.reason instanceof Error ? fallback.reason.message : String(fallback.reason)
    const errorMessage = `not called: the fallback row before it could not be written (${why})`
    // One of the request's rows all the same: the client is told its id with the others.
    const record = attemptRecord(row.value, head.provider, head.model, 'fallback', errorMessage)
    scope.attempts.push(record)
    record.hash = await scope.store
      .finish(row.value, { status: 'fallback', tokensIn: null, tokensOut: null, latencyMs: null, errorMessage })
      .catch(() => null) // kept and retried by the store
    throw fallback.reason
  }
  return row.value
}

/** The outcome recorded for a failed try. */
export function failureOutcome(error: unknown, latencyMs: number): AttemptOutcome {
  if (error instanceof ProviderError) {
    const { tokensIn = null, tokensOut = null, costUsd = null } = error.usage ?? {}
    return { status: error.rowStatus, tokensIn, tokensOut, costUsd, latencyMs: error.latencyMs, errorMessage: error.detail, httpStatus: error.answeredStatus ?? error.httpStatus ?? null }
  }
  return { status: 'error', tokensIn: null, tokensOut: null, latencyMs, errorMessage: `internal error: ${(error as Error)?.name ?? 'unknown'}` }
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
    url: step.provider.endpoint,
    model: step.model,
    apiKey,
    headers: step.provider.headers,
    streamUsage: step.provider.streamUsage,
    sendReasoning: step.provider.sendReasoning,
    defaultMaxTokens: step.provider.defaultMaxTokens,
  }
  const endpoint = step.provider.publicEndpoint
  const { policy, clock, request } = scope

  const once = async (tryNumber: number): Promise<StepSuccess> => {
    // Past the stop's grace no new call starts (a request on a kept-alive connection, a retry): no row, no call.
    if (scope.stopping()) throw stoppedByRouter(target.provider, 0)
    const meta: RowMeta = {
      requestId: scope.requestId,
      chain: scope.chain,
      api: scope.api,
      seq: scope.nextSeq(),
      step: stepIndex,
      try: tryNumber,
      stream: request.stream,
    }
    const head = { timestamp: isoTime(clock.now()), agentName: scope.agent, provider: target.provider, model: target.model, endpoint }
    const logId = await beginAfter(scope, head, meta, tryNumber === 1 ? before : null)
    // The row is committed: the call may go out.
    const record = attemptRecord(logId, target.provider, target.model, 'pending')
    scope.attempts.push(record)
    // Unless, while the row was being committed (behind a slow fsync, a lock), the stop's grace ran
    // out or the client left: then it is not called, and its row must not count as a call.
    if (scope.stopping() || scope.signal.aborted) {
      const stopped = scope.stopping()
      await finishAttempt(scope, record, { status: 'fallback', tokensIn: null, tokensOut: null, latencyMs: null, errorMessage: `not called: ${stopped ? 'witness stopped' : 'client disconnected'}` })
      throw stopped ? stoppedByRouter(target.provider, 0) : new ProviderError({ provider: target.provider, kind: 'aborted', detail: 'aborted: client disconnected', latencyMs: 0, retryable: false })
    }

    const controller = new AbortController()
    const startedAt = clock.monotonic()
    // The request's signal fires when its connection closes: the client left, or the router's stop cut it.
    const onClientGone = () => controller.abort(scope.stopping() ? stoppedByRouter(target.provider, Math.round(clock.monotonic() - startedAt)) : undefined)
    scope.signal.addEventListener('abort', onClientGone, { once: true })
    // Past its grace, the router's stop aborts the call (a stream's session takes this over once it opens).
    const stopForRouter = () => {
      onClientGone()
      return Promise.resolve()
    }
    scope.liveCalls?.add(stopForRouter)
    const evidence: Evidence = { requestSha256: null, responseSha256: null }
    const answered = { status: null as number | null }
    const callOptions = {
      evidence,
      answered,
      signal: controller.signal,
      now: () => clock.monotonic(),
      wallNow: () => clock.now(),
      headers: { 'x-witness-request-id': scope.requestId, 'x-witness-log-id': String(logId) },
      prompt: scope.prompt,
    }
    const timeout = (ms: number, detail: string) => ({
      milliseconds: ms,
      fallback: (): never => {
        const error = new ProviderError({
          provider: target.provider,
          kind: 'timeout',
          detail,
          latencyMs: Math.round(clock.monotonic() - startedAt),
          retryable: policy.retry_timeouts,
          // Its headers came, then not the rest in time: the row keeps the status it answered with.
          answeredStatus: answered.status ?? undefined,
        })
        controller.abort(error) // closes the socket, not just the wait
        throw error
      },
    })

    let outcome: AttemptOutcome | null = null
    try {
      if (request.stream) {
        const firstByteMs = Math.min(step.firstByteTimeoutMs, step.timeoutMs)
        const opened = await pTimeout(openStream(adapter, target, request, { ...callOptions, deadlineAt: startedAt + firstByteMs }), timeout(firstByteMs, `no first byte within ${firstByteMs} ms`))
        // From here the session owns the row: it is finished when the stream ends, and the breaker
        // hears how it ended then (a stream cut or stalled after its first byte is the provider's failure).
        const stream = startStreamSession({
          opened,
          adapter,
          translator: streamTranslator(adapter.wire, request.wire, {
            includeUsage: includeUsageAsked(request),
            createdS: Math.floor(clock.now() / 1000),
            model: target.model,
            provider: target.provider,
          }),
          controller,
          record,
          scope,
          requestSha256: evidence.requestSha256,
          provider: target.provider,
          redactor: () => redactorOf(target, callOptions),
          storedIds: (ids) => withoutCredentials(target, ids),
          idleTimeoutMs: step.idleTimeoutMs,
          timeoutMs: step.timeoutMs,
          live: scope.liveCalls,
        })
        void stream.settled.then((how) => {
          if (how === 'success') ticket.succeed()
          else if (how === 'failed') ticket.fail(new ProviderError({ provider: target.provider, kind: 'stream', detail: 'stream failed after its first event', latencyMs: 0, retryable: true }))
          ticket.release()
        })
        return { kind: 'stream', stream, logId }
      }
      const completion = await pTimeout(callCompletion(adapter, target, request, { ...callOptions, deadlineAt: startedAt + step.timeoutMs }), timeout(step.timeoutMs, `timeout after ${step.timeoutMs} ms`))
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
        ...evidence,
      }
      ticket.succeed()
      return { kind: 'completion', completion, logId, latencyMs: completion.latencyMs }
    } catch (error) {
      outcome = { ...failureOutcome(error, Math.round(clock.monotonic() - startedAt)), ...evidence }
      ticket.fail(error)
      throw error
    } finally {
      scope.signal.removeEventListener('abort', onClientGone)
      scope.liveCalls?.delete(stopForRouter)
      if (outcome) await finishAttempt(scope, record, outcome)
    }
  }

  return pRetry(once, {
    retries: ticket.probe ? 0 : step.retries,
    // The wait between tries is witness's own (retryWaitMs): p-retry's jitter is lost at its cap.
    minTimeout: 0,
    maxTimeout: 0,
    signal: scope.signal,
    shouldRetry: ({ error }) => shouldRetry(error, policy),
    onFailedAttempt: async ({ error, retriesLeft, attemptNumber }) => {
      if (retriesLeft === 0 || !shouldRetry(error, policy)) return
      const wantMs = error instanceof ProviderError ? error.retryAfterMs : undefined
      await waitToRetry(scope, retryWaitMs(policy, attemptNumber, wantMs), target.provider)
    },
  })
}

/**
 * The wait before a step's next try. The client leaving ends it (p-retry then gives up); so does
 * the router's stop past its grace, which ends the step: its client is answered 503
 * `witness_stopped` rather than having its connection cut while it waits.
 */
async function waitToRetry(scope: RequestScope, ms: number, provider: string): Promise<void> {
  if (scope.stopping()) throw stoppedByRouter(provider, 0)
  const stop = new AbortController()
  const end = () => {
    stop.abort()
    return Promise.resolve()
  }
  scope.liveCalls?.add(end)
  try {
    await sleep(ms, [scope.signal, stop.signal])
  } finally {
    scope.liveCalls?.delete(end)
  }
  if (stop.signal.aborted || scope.stopping()) throw stoppedByRouter(provider, 0)
}

/**
 * How long to wait before the try after try `attempt` (from 1): exponential from backoff_min_ms,
 * jittered between 1x and 2x; past backoff_max_ms, between half of it and all of it (never under
 * backoff_min_ms), so that callers who failed together do not come back in step. A provider's
 * Retry-After is waited out, plus up to a tenth more (at most a second), for the same reason.
 */
export function retryWaitMs(policy: Pick<Policy, 'backoff_min_ms' | 'backoff_max_ms'>, attempt: number, retryAfterMs?: number): number {
  const { backoff_min_ms: min, backoff_max_ms: max } = policy
  const exponential = min * 2 ** (attempt - 1) * (1 + Math.random())
  const backoff = exponential <= max ? exponential : Math.max(min, max * (0.5 + Math.random() / 2))
  if (retryAfterMs === undefined || retryAfterMs <= backoff) return Math.round(backoff)
  return Math.round(retryAfterMs + Math.min(1000, retryAfterMs / 10) * Math.random())
}

/** A try the router's stop ended (or never let start). */
export function stoppedByRouter(provider: string, latencyMs: number): ProviderError {
  return new ProviderError({ provider, kind: 'aborted', detail: 'aborted: witness stopped', latencyMs, retryable: false })
}

/** Whether the client itself asked for the usage chunk of an OpenAI stream. */
function includeUsageAsked(request: ClientRequest): boolean {
  const options = request.body.stream_options
  return typeof options === 'object' && options !== null && (options as { include_usage?: unknown }).include_usage === true
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

/** Waits `ms`, or until one of `signals` aborts (at once if one already has). */
function sleep(ms: number, signals: readonly AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    if (signals.some((s) => s.aborted)) return resolve()
    const timer = setTimeout(done, ms)
    function done() {
      clearTimeout(timer)
      for (const s of signals) s.removeEventListener('abort', done)
      resolve()
    }
    for (const s of signals) s.addEventListener('abort', done, { once: true })
  })
}
