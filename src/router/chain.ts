/**
 * The ordered provider chain: a plain loop over steps. A step that fails
 * (after its retries) or is skipped without a call (no API key, cooling
 * down, a request of the other wire it cannot carry: untranslatable.ts)
 * hands over to the next step with a `fallback` row naming the step moved
 * to and saying why. The fallback row is committed together with the next
 * pending row, so a fallback costs no extra commit. A request no step can
 * carry is the client's error (400), not the chain's.
 */
import type { ClientRequest } from '../../providers/types.ts'
import type { Clock } from '../clock.ts'
import { isoTime } from '../clock.ts'
import type { StepSpec } from '../config.ts'
import type { Policy } from '../config-schema.ts'
import { ProviderError, refusedRequest, worthRetrying } from '../../providers/provider-error.ts'
import { untranslatable } from '../../providers/translate/untranslatable.ts'
import { ChainExhaustedError, InvalidRequestError } from '../errors.ts'
import { PromptText } from '../redaction.ts'
import type { Api, Store } from '../telemetry/store.ts'
import { type AttemptRecord, type RequestScope, attemptRecord } from './attempt-record.ts'
import { type StepSuccess, describeExit, runStep, stoppedByRouter } from './attempt.ts'
import type { Cooldowns } from './cooldown.ts'
import type { AttemptObserver } from './metrics.ts'
import type { LiveCalls } from './live-calls.ts'

export interface ChainDeps {
  store: Store
  clock: Clock
  cooldowns: Cooldowns
  /** Where API keys are read from (process.env in production). */
  env: Record<string, string | undefined>
  warn: (message: string) => void
  /** Counts attempts and fallbacks for GET /metrics (optional). */
  metrics?: AttemptObserver
  /** True once the router's stop cuts the connections still open: a call it cuts off is recorded as such, not as the client leaving. */
  stopping?: () => boolean
  /** Calls under way, which the router's stop ends itself before it cuts the connections (live-calls.ts). */
  liveCalls?: LiveCalls
}

export interface ChainInput {
  /** This machine's name, for receipts. */
  machine: string
  requestId: string
  agent: string
  chain: string
  steps: StepSpec[]
  policy: Policy
  request: ClientRequest
  api: Api
  /** Aborts when the client goes away. */
  signal: AbortSignal
  /** Filled with every row written, in order (the caller reads it on failure too). */
  attempts: AttemptRecord[]
}

export type ChainResult = StepSuccess & {
  stepIndex: number
  step: StepSpec
}

export function label(step: StepSpec): string {
  return `${step.provider.name}/${step.model}`
}

export async function runChain(deps: ChainDeps, input: ChainInput): Promise<ChainResult> {
  const { steps, policy } = input
  let seq = 0
  // Prepared once, on a request's first error: its texts are looked for in every error it meets.
  let prompt: PromptText | undefined
  const scope: RequestScope = {
    store: deps.store,
    clock: deps.clock,
    policy,
    request: input.request,
    agent: input.agent,
    requestId: input.requestId,
    chain: input.chain,
    api: input.api,
    signal: input.signal,
    attempts: input.attempts,
    machine: input.machine,
    nextSeq: () => ++seq,
    prompt: () => (prompt ??= new PromptText(promptTexts(input.request.body))),
    warn: deps.warn,
    metrics: deps.metrics,
    stopping: deps.stopping ?? (() => false),
    liveCalls: deps.liveCalls,
  }

  // Trimmed: fetch strips spaces and line ends from a header value, so the key the provider sees
  // (and may echo) is the bare one, and that is what redaction must look for.
  const keys = steps.map((s) => (s.provider.apiKeyEnv ? deps.env[s.provider.apiKeyEnv]?.trim() || undefined : undefined))
  const missingKey = steps.map((s, i) => Boolean(s.provider.apiKeyEnv) && !keys[i])
  // Why a step cannot take this request (what the translation to its wire would leave out), or null.
  const cannot = steps.map((s) => untranslatable(input.request.body, input.request.wire, s.provider.type))
  const cooldownKey = (s: StepSpec) => label(s)
  // If every step that could be called is cooling down, try them anyway.
  const callable = steps.filter((_, i) => !missingKey[i] && cannot[i] === null)
  const force = callable.length > 0 && callable.every((s) => deps.cooldowns.isCooling(cooldownKey(s)))

  let before: Promise<unknown> | null = null
  const summary: string[] = []
  // Whether the same request might fare better another time (a 5xx, a 429, a timeout, a cooldown).
  let retry = false
  // The shortest wait the steps tried asked for (Retry-After); undefined before one asks, null once one failed without asking.
  let soonest: number | undefined | null
  // Whether every step was tried and refused the request itself (a context too long): then the chain is not failing.
  let byRequest = true

  const writeFallback = (named: StepSpec, namedIndex: number, message: string): Promise<unknown> => {
    const record = attemptRecord(0, named.provider.name, named.model, 'fallback', message)
    const head = {
      timestamp: isoTime(deps.clock.now()),
      agentName: input.agent,
      provider: named.provider.name,
      model: named.model,
      endpoint: named.provider.publicEndpoint,
    }
    const meta = { requestId: input.requestId, chain: input.chain, api: input.api, seq: scope.nextSeq(), step: namedIndex, try: null, stream: input.request.stream }
    // Listed once committed: a fallback row that could not be written is not one of the request's rows.
    const written = deps.store.insert({ ...head, status: 'fallback', errorMessage: message }, meta).then(({ id, hash }) => {
      record.log_id = id
      record.hash = hash
      input.attempts.push(record)
    })
    return before ? Promise.all([before, written]) : written
  }

  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!
    let exit: string
    let skipped = false
    if (missingKey[i]) {
      exit = `skipped, API key ${step.provider.apiKeyEnv} is not set`
      skipped = true
      byRequest = false
    } else if (cannot[i] !== null) {
      // The request itself: no call, no retry would change it (byRequest stands).
      exit = `skipped, an ${step.provider.type} provider cannot take ${cannot[i]}`
      skipped = true
    } else {
      const admission = deps.cooldowns.admit(cooldownKey(step), force)
      if (!admission.ok) {
        exit = `skipped, ${admission.reason}`
        skipped = true
        retry = true
        byRequest = false
        // Cooling down, it may take the request again before any wait the others asked for.
        soonest = null
      } else {
        // A stream's ticket is released when the stream ends (runStep), so a probe holds its slot until then.
        let streaming = false
        try {
          const success = await runStep(scope, i, step, keys[i], admission.ticket, before)
          streaming = success.kind === 'stream'
          return { ...success, stepIndex: i, step }
        } catch (error) {
          if (!(error instanceof ProviderError) || error.kind === 'aborted' || input.signal.aborted) throw error
          exit = describeExit(error, policy)
          retry ||= worthRetrying(error)
          byRequest &&= refusedRequest(error)
          soonest = soonest === null || error.retryAfterMs === undefined ? null : Math.min(soonest ?? Infinity, error.retryAfterMs)
        } finally {
          if (!streaming) admission.ticket.release()
        }
        before = null // committed with the first try's pending row
      }
    }
    summary.push(`${label(step)}: ${exit}`)
    const next = steps[i + 1]
    // Past the stop's grace no further step is tried (nor named in a fallback row): the client is told to resend.
    if (next && scope.stopping()) {
      if (before) await before.catch(() => {}) // a skipped step's fallback row, already on its way
      throw stoppedByRouter(step.provider.name, 0)
    }
    if (next) {
      // A move to the next step (a last step skipped with nowhere to go moved nowhere: not counted, as in /stats/fallbacks).
      deps.metrics?.fallback(step.provider.name, next.provider.name)
      before = writeFallback(next, i + 1, `fallback from ${label(step)}: ${exit}`)
    } else if (skipped) before = writeFallback(step, i, `${exit.replace(/^skipped/, `skipped ${label(step)}`)}; no further step`)
  }
  if (before) await before
  // No step could take it, each for what it asked: the client's error, as OpenAI answers it, not a failing chain.
  if (cannot.every((why, i) => why !== null && !missingKey[i])) {
    throw new InvalidRequestError(`no step of chain "${input.chain}" can take this request: ${summary.join('; ')}`)
  }
  // The soonest any step tried will take the request again, when every one of them said.
  throw new ChainExhaustedError(input.chain, summary.join('; '), { request_id: input.requestId, attempts: input.attempts }, retry, soonest ?? undefined, byRequest)
}

/**
 * The request's texts that must never end up in a stored message or an
 * event passed on: every string of the messages, the system prompt and a
 * bare prompt, and the tools' descriptions (a tool's schema is mostly names
 * such as "location", which ordinary errors also use), but not the
 * structural ones (roles, types, ids) nor inline base64 data (images, PDFs),
 * except a text file's, whose words are decoded.
 * src/redaction.ts looks for them, whole or in part.
 */
const STRUCTURAL_KEYS = new Set(['role', 'type', 'name', 'id', 'tool_call_id', 'tool_use_id', 'media_type', 'cache_control'])
const INLINE_DATA = /^data:[^,]*;base64,/
const INLINE_TEXT = /^data:(?:text\/[^,;]*|application\/(?:[^,;]*\+)?json)(?:;[^;,]*)*;base64,(.*)$/is
/** A long string of base64 alone (OpenAI's `input_audio.data`, a file's bytes): data, not words. */
const RAW_BASE64 = /^[A-Za-z0-9+/=\r\n]+$/

export function promptTexts(body: Record<string, unknown>): string[] {
  const out: string[] = []
  const walk = (value: unknown, depth: number, only?: string) => {
    if (depth > 32) return
    if (typeof value === 'string') {
      if (only) return
      // A text file sent inline is words all the same: translated for Anthropic it goes as its text.
      const text = INLINE_TEXT.exec(value)
      if (text) out.push(Buffer.from(text[1]!, 'base64').toString('utf8'))
      else if (!INLINE_DATA.test(value) && !(value.length >= 1024 && RAW_BASE64.test(value))) out.push(value)
    } else if (Array.isArray(value)) value.forEach((v) => walk(v, depth + 1, only))
    else if (value && typeof value === 'object') {
      const base64 = (value as { type?: unknown }).type === 'base64'
      for (const [key, v] of Object.entries(value)) {
        if (STRUCTURAL_KEYS.has(key) || (base64 && key === 'data')) continue
        walk(v, depth + 1, only && key !== only ? only : undefined)
      }
    }
  }
  for (const field of ['messages', 'system', 'prompt']) walk(body[field], 0)
  walk(body.tools, 0, 'description')
  return out
}
