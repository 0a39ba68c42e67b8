/**
 * The one fetch: sends a client request to a target through an adapter and
 * turns every non-2xx answer or network failure into a ProviderError that
 * knows whether a retry may help. Upstream text that reaches an error
 * message is redacted (API key, credential shapes, prompt text).
 */
import { ProviderError, retryableStatus } from './provider-error.ts'
import { type PromptText, type Redactor, redactor, valuesRedactor } from '../src/redaction.ts'
import { sha256 } from '../src/hash.ts'
import { collapseWhitespace, cutText, withoutControls } from '../src/text.ts'
import { errorBody, errorTextOf } from './error-text.ts'
import { describeFetchFailure } from './fetch-failure.ts'
import { readCapped } from './read-capped.ts'
import { formatWait, parseRetryAfter, retryDelayIn } from './retry-after.ts'
import { SseReader } from './sse.ts'
import { completionEvents } from './translate/completion-events.ts'
import { foldEvents } from './translate/fold-events.ts'
import {
  type Adapter, type ClientRequest, type Completion, AnswerError, MalformedResponseError, type SseEvent, type StreamFacts, type Target,
  isRecord, newStreamFacts,
} from './types.ts'

export interface CallOptions {
  signal: AbortSignal
  /** Extra request headers (witness's own ids). */
  headers?: Record<string, string>
  /** Monotonic clock in ms, for latency. */
  now: () => number
  /** Wall clock in ms, for HTTP-date Retry-After. */
  wallNow?: () => number
  /** Text that must never appear in an error message (prompt fragments). */
  /** The prompt's texts, looked for in what the provider sends back (read only on an error's path). */
  prompt?: () => PromptText
  /** Filled in as the call goes: sha256 (hex) of the exact bytes sent and received. */
  evidence?: Evidence
  /** Set to the upstream's HTTP status once its headers arrive, so a timeout after them can say it answered. */
  answered?: { status: number | null }
  /**
   * When (on `now`'s clock) the caller's timeout ends the call: an error answer's body is read until
   * a little before it, so that its status is what the row records, not a timeout.
   */
  deadlineAt?: number
}

/** What the call sent and received, as hashes (the proof chain records them). */
export interface Evidence {
  requestSha256: string | null
  responseSha256: string | null
}

/** A whole (non-streaming) answer larger than this is refused as malformed, not held in memory. */
export const MAX_RESPONSE_BYTES = 64 * 1024 * 1024
/** Of an error answer, only this much is read: its message is clipped to 200 characters anyway. */
export const MAX_ERROR_BODY_BYTES = 64 * 1024
/**
 * An error answer's body is waited for this long at most (less when the call's own deadline is
 * nearer): a 429 whose body stalls is still a 429, its Retry-After honoured, not a timeout.
 */
export const ERROR_BODY_WAIT_MS = 2_000
/** How long before the call's deadline the wait for an error body gives up, to be done before it. */
const DEADLINE_MARGIN_MS = 20

const utf8 = new TextDecoder()


/** The prepared upstream request: what the row's endpoint names and what goes on the wire. */
export interface PreparedCall {
  url: string
  init: RequestInit
}

function prepareCall(adapter: Adapter, target: Target, request: ClientRequest, extraHeaders: Record<string, string> = {}): PreparedCall {
  // Bodies as sent, unless the provider's headers ask otherwise: the sha256 evidence is of the bytes
  // received, and a compressed body can expand far past what its length promised.
  const configured = target.headers ?? {}
  const identity: Record<string, string> = Object.keys(configured).some((name) => name.toLowerCase() === 'accept-encoding') ? {} : { 'accept-encoding': 'identity' }
  const headers = joinBetas({ ...identity, ...configured, ...extraHeaders }, adapter.headers(target.apiKey, request))
  const body = JSON.stringify(adapter.body(request, target.model, target))
  return { url: target.url ?? adapter.endpoint(target.baseUrl), init: { method: 'POST', headers, body } }
}

/**
 * The call's headers: the provider's configured ones, then the adapter's, which win; except
 * `anthropic-beta`, a list, where a client's betas join those the config sets for every call.
 */
function joinBetas(configured: Record<string, string>, adapter: Record<string, string>): Record<string, string> {
  const out = { ...configured, ...adapter }
  const clientBetas = adapter['anthropic-beta']
  if (clientBetas === undefined) return out
  for (const [name, value] of Object.entries(configured)) {
    if (name.toLowerCase() !== 'anthropic-beta') continue
    delete out[name]
    out['anthropic-beta'] = [...new Set([...value.split(','), ...clientBetas.split(',')].map((b) => b.trim()).filter(Boolean))].join(',')
  }
  return out
}

/** Sends the request and checks the status; the body is left unread for the caller. */
export async function send(adapter: Adapter, target: Target, request: ClientRequest, options: CallOptions): Promise<{ response: Response; startedAt: number }> {
  const { url, init } = prepareCall(adapter, target, request, options.headers)
  if (options.evidence) options.evidence.requestSha256 = sha256(init.body as string)
  const startedAt = options.now()
  let response: Response
  try {
    // `timeout: false`: Bun's own idle timer (5 minutes by default) would cut a provider that is
    // silent for long, a model loading or thinking, as a network error, and the call would be
    // retried and paid for twice. witness's own limits (timeout_ms, first_byte_timeout_ms,
    // idle_timeout_ms) end such calls through `signal`.
    response = await fetch(url, { ...init, signal: options.signal, redirect: 'error', timeout: false })
  } catch (error) {
    throw networkError(target, error, options, startedAt)
  }
  if (options.answered) options.answered.status = response.status
  if (!response.ok) throw await httpError(target, response, options, startedAt)
  return { response, startedAt }
}

/** A whole non-streaming call: send, read, parse. */
export async function callCompletion(adapter: Adapter, target: Target, request: ClientRequest, options: CallOptions): Promise<Completion & { latencyMs: number }> {
  const { response, startedAt } = await send(adapter, target, request, options)
  let body: Awaited<ReturnType<typeof readCapped>>
  try {
    body = await readCapped(response, MAX_RESPONSE_BYTES)
  } catch (error) {
    throw answered(networkError(target, error, options, startedAt), response.status)
  }
  const latencyMs = Math.round(options.now() - startedAt)
  if (options.evidence) options.evidence.responseSha256 = sha256(body.bytes)
  if (body.truncated) {
    const detail = `malformed response: larger than ${MAX_RESPONSE_BYTES / 1024 / 1024} MB`
    throw new ProviderError({ provider: target.provider, kind: 'malformed', detail, latencyMs, answeredStatus: response.status, retryable: false })
  }
  // An upstream that streams an answer it was not asked to stream: the answer the events carry, folded (it was paid for).
  const streamed = /^text\/event-stream\b/i.test(response.headers.get('content-type') ?? '')
  const text = utf8.decode(body.bytes)
  try {
    const completion = adapter.completion(streamed ? foldEvents(adapter.wire, await eventsOf(adapter, body.bytes)) : jsonOf(text))
    const stored = withoutCredentials(target, completion)
    // An answer echoing the call's credentials in its id or model is not passed on as it came: its
    // body gets the id and model the row keeps, and no text to pass through (nor a folded stream's).
    if (stored === completion && !streamed) return { ...completion, text, latencyMs }
    return { ...stored, body: { ...stored.body, id: stored.responseId ?? stored.body.id, model: stored.servedModel ?? stored.body.model }, latencyMs }
  } catch (error) {
    if (error instanceof AnswerError) throw errorInAnswer(target, error, options, latencyMs)
    // Anything else is witness's own failure, not the provider's: it is not blamed on the answer.
    if (!(error instanceof MalformedResponseError)) throw error
    const detail = `malformed response: ${error.message}`
    throw new ProviderError({ provider: target.provider, kind: 'malformed', detail, latencyMs, answeredStatus: response.status, retryable: false, usage: error.usage })
  }
}

/** An answer's JSON; MalformedResponseError when it is none. */
function jsonOf(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    throw new MalformedResponseError('body is not JSON')
  }
}

/**
 * The events of a whole event stream already read, each read by the adapter as a live stream's are:
 * an error event (by its type, its name or its contents) throws AnswerError, as one in a JSON body does.
 */
async function eventsOf(adapter: Adapter, bytes: Uint8Array): Promise<SseEvent[]> {
  const reader = new SseReader(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream())
  const facts = newStreamFacts()
  const events: SseEvent[] = []
  for (let event = await reader.next(); event; event = await reader.next()) {
    adapter.observe(event, facts)
    if (facts.error !== null) throw new AnswerError(facts.error, facts.errorCode ?? undefined)
    events.push(event)
  }
  return events
}

/**
 * A stream whose first event has arrived (of an OpenAI-format stream, its first choice): the point
 * after which witness no longer falls back.
 */
export interface OpenedStream {
  reader: SseReader
  /** The events read so far, in order, observed into `facts` and not yet passed on: one, or those up to the first choice. */
  first: SseEvent[]
  facts: StreamFacts
  startedAt: number
  /** Milliseconds from sending to the first event. */
  firstByteMs: number
  /** Milliseconds from sending to the first event that carried content, if one has. */
  firstContentMs: number | null
}

/**
 * Events an OpenAI-format stream may send before its first choice (Azure's prompt-filter results, a
 * usage chunk first) that are held rather than passed on: a stream that ends after them without a
 * choice carried no answer, and falls back, as one that sent nothing does.
 */
const MAX_EVENTS_BEFORE_A_CHOICE = 16

/** Sends a streaming request and waits for its first event (an OpenAI-format stream's first choice). */
export async function openStream(adapter: Adapter, target: Target, request: ClientRequest, options: CallOptions): Promise<OpenedStream> {
  const { response, startedAt } = await send(adapter, target, request, options)
  const facts = newStreamFacts()
  // With the usage the events read so far reported (a usage chunk before a stream that then had no choice): it may have been billed.
  const fail = (kind: 'malformed' | 'stream', detail: string, retryable: boolean) =>
    new ProviderError({ provider: target.provider, kind, detail, latencyMs: Math.round(options.now() - startedAt), answeredStatus: response.status, retryable, usage: facts.usage })
  const type = response.headers.get('content-type') ?? ''
  const notStream = `malformed response: expected an event stream, got ${type.split(';')[0] || 'no content type'}`
  let reader: SseReader
  if (type.includes('text/event-stream') && response.body) {
    reader = new SseReader(response.body, options.evidence ? new Bun.CryptoHasher('sha256') : undefined)
  } else if (type.includes('json') && response.body) {
    // A JSON body in place of the stream: a whole answer from an upstream that ignored `stream: true`
    // (served as a stream: it was paid for), or an error in a 200 (a vLLM worker behind RunPod sends one).
    const answer = await wholeAnswer(adapter, target, response, options, startedAt)
    if (answer instanceof AnswerError) throw errorInAnswer(target, answer, options, Math.round(options.now() - startedAt))
    if (answer === 'too large') throw fail('malformed', `${notStream} (larger than ${MAX_RESPONSE_BYTES / 1024 / 1024} MB)`, false)
    if (answer === null) throw fail('malformed', notStream, false)
    reader = SseReader.over(completionEvents(answer.completion), answer.sha256)
  } else {
    await response.body?.cancel().catch(() => {})
    throw fail('malformed', notStream, false)
  }
  const first: SseEvent[] = []
  let firstByteMs = 0
  let firstContentMs: number | null = null
  do {
    let event: SseEvent | null
    try {
      event = await reader.next()
    } catch (error) {
      if (error instanceof MalformedResponseError) {
        await reader.cancel()
        throw fail('malformed', `malformed response: ${error.message}`, false)
      }
      throw networkError(target, error, options, startedAt)
    }
    if (!event) throw fail('stream', first.length === 0 ? 'stream ended before its first event' : 'stream ended before its first choice', true)
    if (first.length === 0) firstByteMs = Math.round(options.now() - startedAt)
    try {
      adapter.observe(event, facts)
    } catch (error) {
      await reader.cancel()
      if (!(error instanceof MalformedResponseError)) throw error
      throw fail('malformed', `malformed response: ${error.message}`, false)
    }
    if (facts.error !== null) {
      await reader.cancel()
      // An error with a code (OpenRouter's, sent as the first event after its keep-alive comments) is
      // that HTTP error: a 400 is not retried, nor paid for twice.
      if (facts.errorCode !== null) throw errorInAnswer(target, new AnswerError(facts.error, facts.errorCode), options, Math.round(options.now() - startedAt))
      throw fail('stream', `upstream error event: ${redactedClip(redactorOf(target, options), facts.error)}`, true)
    }
    if (facts.content && firstContentMs === null) firstContentMs = Math.round(options.now() - startedAt)
    first.push(event)
  } while (adapter.wire === 'openai' && facts.chunks === 0 && first.length < MAX_EVENTS_BEFORE_A_CHOICE)
  return { reader, first, facts, startedAt, firstByteMs, firstContentMs }
}

/** `error` with the status the upstream answered with before its body failed (the row's http_status). */
function answered(error: ProviderError, status: number): ProviderError {
  if (error.kind === 'aborted' || error.kind === 'timeout') return error
  return error.withAnsweredStatus(status)
}

function networkError(target: Target, error: unknown, options: CallOptions, startedAt: number): ProviderError {
  const latencyMs = Math.round(options.now() - startedAt)
  if (options.signal.aborted) {
    const reason = options.signal.reason
    if (reason instanceof ProviderError) return reason
    return new ProviderError({ provider: target.provider, kind: 'aborted', detail: 'aborted: client disconnected', latencyMs, retryable: false })
  }
  const code = isRecord(error) && typeof error.code === 'string' ? error.code : ''
  const raw = error instanceof Error ? error.message : String(error)
  // Failures the same call meets every time (the base_url or the trust store is wrong): no retry, no
  // cooldown tries, and a client is told not to resend.
  const fixed = setupFailure(code)
  if (fixed) return new ProviderError({ provider: target.provider, kind: 'network', detail: fixed, latencyMs, retryable: false })
  const detail = code === 'ConnectionRefused' || /refused/i.test(raw)
    ? 'connection refused'
    : code === 'ECONNRESET' || /reset|closed|socket/i.test(raw)
      ? 'connection closed by upstream'
      : `network error: ${redactedClip(redactorOf(target, options), describeFetchFailure(code, raw))}`
  return new ProviderError({ provider: target.provider, kind: 'network', detail, latencyMs, retryable: true })
}

/** TLS verification codes (OpenSSL's, as Bun reports them). */
const CERTIFICATE_CODES = /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_HAS_EXPIRED|CERT_NOT_YET_VALID|CERT_REVOKED|CERT_UNTRUSTED|CERT_REJECTED|ERR_TLS_CERT_ALTNAME_INVALID|HOSTNAME_MISMATCH)$/

/** What is wrong when a call fails in a way no retry can change; null for a failure that may pass. */
function setupFailure(code: string): string | null {
  if (code === 'UnexpectedRedirect') return 'redirected: the provider answered with a redirect, which witness does not follow (check base_url)'
  if (CERTIFICATE_CODES.test(code)) return `TLS certificate not trusted (${code}; a private CA goes in NODE_EXTRA_CA_CERTS)`
  return null
}

async function httpError(target: Target, response: Response, options: CallOptions, startedAt: number): Promise<ProviderError> {
  const status = response.status
  const nowMs = (options.wallNow ?? Date.now)()
  let retryAfterMs = parseRetryAfter(response.headers, nowMs)
  let upstream = ''
  let stalledMs: number | null = null
  const waitMs = Math.min(ERROR_BODY_WAIT_MS, options.deadlineAt === undefined ? Number.POSITIVE_INFINITY : options.deadlineAt - options.now() - DEADLINE_MARGIN_MS)
  try {
    // The hash is of the bytes read: all of the body, its first MAX_ERROR_BODY_BYTES, or what came before it stalled.
    const { bytes, stalled } = await readCapped(response, MAX_ERROR_BODY_BYTES, Math.max(0, waitMs))
    if (stalled) stalledMs = Math.max(0, Math.round(waitMs))
    if (options.evidence) options.evidence.responseSha256 = sha256(bytes)
    const body = errorBody(utf8.decode(bytes))
    upstream = body.message
    retryAfterMs ??= retryDelayIn(body.json, nowMs)
  } catch {
    // The body could not be read; the status says enough.
  }
  const latencyMs = Math.round(options.now() - startedAt)
  const parts = [`HTTP ${status} ${STATUS_TEXT[status] ?? 'error'}`]
  if (retryAfterMs !== undefined) parts.push(`(retry-after ${formatWait(retryAfterMs)})`)
  let detail = parts.join(' ')
  if (upstream) detail += `: ${redactedClip(redactorOf(target, options), upstream)}`
  if (stalledMs !== null) detail += ` (${upstream ? 'the rest of its body' : 'its body'} did not come within ${stalledMs} ms)`
  return new ProviderError({
    provider: target.provider,
    kind: 'http',
    detail,
    latencyMs,
    httpStatus: status,
    retryable: retryableStatus(status),
    retryAfterMs,
  })
}

/**
 * A JSON body sent in place of a stream, read up to MAX_RESPONSE_BYTES: the completion it holds, as
 * the adapter reads an answer; else the error it holds (codes, `finish_reason: "error"`, or any error
 * shape: Anthropic's `{"type":"error"}`, a bare `message`, Gemini's list); null when it holds neither.
 */
async function wholeAnswer(
  adapter: Adapter, target: Target, response: Response, options: CallOptions, startedAt: number,
): Promise<{ completion: Completion; sha256: string | null } | AnswerError | 'too large' | null> {
  let body: Awaited<ReturnType<typeof readCapped>>
  try {
    body = await readCapped(response, MAX_RESPONSE_BYTES)
  } catch (error) {
    throw answered(networkError(target, error, options, startedAt), response.status)
  }
  const sha256Hex = options.evidence ? sha256(body.bytes) : null
  if (options.evidence) options.evidence.responseSha256 = sha256Hex
  if (body.truncated) return 'too large'
  let json: unknown
  try {
    json = jsonOf(utf8.decode(body.bytes))
    return { completion: adapter.completion(json), sha256: sha256Hex }
  } catch (error) {
    if (error instanceof AnswerError) return error
    if (!(error instanceof MalformedResponseError)) throw error // witness's own failure, not the answer's
    const message = json === undefined ? null : errorTextOf(json)
    return message === null ? null : new AnswerError(message, undefined)
  }
}

/**
 * A 200 whose body is an error: a failure like the HTTP error its code names (a 502 when it names
 * none: the provider behind a router failed), recorded with the 200 it came with.
 */
function errorInAnswer(target: Target, error: AnswerError, options: CallOptions, latencyMs: number): ProviderError {
  const code = error.code !== undefined && error.code >= 400 && error.code <= 599 ? error.code : undefined
  const status = code ?? 502
  const detail = `error in a 200 answer${code ? ` (code ${code})` : ''}: ${redactedClip(redactorOf(target, options), error.message)}`
  return new ProviderError({ provider: target.provider, kind: 'http', detail, latencyMs, httpStatus: status, answeredStatus: 200, retryable: retryableStatus(status) })
}

/** Configured headers whose values are credentials (looked for in every form); others are looked for whole. */
const CREDENTIAL_HEADER = /auth|key|token|secret|password|credential|cookie|signature|session/i

/**
 * What a call's error text must not carry: its API key, its configured headers' values, the
 * credentials its URL may carry (userinfo, query values but known-safe ones: a signed URL's `sig`), the prompt.
 */
export function redactorOf(target: Target, options: CallOptions): Redactor {
  return redactor(secretsOf(target), options.prompt?.())
}

function secretsOf(target: Target): { secret: string[]; plain: string[] } {
  const secret = target.apiKey ? [target.apiKey] : []
  const plain: string[] = []
  for (const [name, value] of Object.entries(target.headers ?? {})) (CREDENTIAL_HEADER.test(name) ? secret : plain).push(value)
  for (const url of new Set([target.baseUrl, target.url])) secret.push(...urlCredentials(url))
  return { secret, plain }
}

/** Each target's credentials redactor, built once (a URL's parsing and the index's lookup cost more than the fields' test). */
function credentialsRedactor(target: Target): Redactor {
  const key = `${target.apiKey ?? ''}\n${target.baseUrl}\n${target.url}\n${target.headers ? JSON.stringify(target.headers) : ''}`
  let redact = credentialsRedactors.get(key)
  if (!redact) {
    const { secret, plain } = secretsOf(target)
    redact = valuesRedactor(secret, plain)
    if (credentialsRedactors.size >= REDACTORS_KEPT) credentialsRedactors.delete(credentialsRedactors.keys().next().value!)
    credentialsRedactors.set(key, redact)
  }
  return redact
}
const REDACTORS_KEPT = 64
const credentialsRedactors = new Map<string, Redactor>()

/**
 * The answer's id and model as witness stores and shows them (the row's meta, the chain, `served_model`):
 * the call's credentials and configured header values an upstream put in them (a broken or hostile
 * one echoing its `Authorization`) cut out. Credential shapes and the prompt are not looked for: a model may be
 * named `xai-grok-…`, and ids and model names are short.
 */
export function withoutCredentials<T extends { responseId: string | null; servedModel: string | null }>(target: Target, facts: T): T {
  if (facts.responseId === null && facts.servedModel === null) return facts
  // Without control characters too, as an upstream's text is stored (clip).
  const redactIds = credentialsRedactor(target)
  const redact = (text: string) => withoutControls(redactIds(text))
  const responseId = facts.responseId === null ? null : redact(facts.responseId)
  const servedModel = facts.servedModel === null ? null : redact(facts.servedModel)
  return responseId === facts.responseId && servedModel === facts.servedModel ? facts : { ...facts, responseId, servedModel }
}

/**
 * Query parameters known to carry no secret (a version, a deployment, a region, a format): an error
 * naming their values keeps its sense. Every other parameter's value is taken for a credential,
 * since a list of credential names would let any name it does not know through (`pwd`, `jwt`,
 * Azure's SAS fields, …).
 */
const NOT_A_CREDENTIAL = /^(api[-_]?version|version|v|deployment|deployment[-_]?id|region|location|project|model|format|alt|beta|stream|lang|locale)$/i

/** The credentials a URL may carry: its user name and password, and its query values (but the known-safe ones), each as written and decoded (`+` is a space once decoded). */
function urlCredentials(url: string | undefined): string[] {
  if (!url) return []
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return []
  }
  const values = [decoded(parsed.username), decoded(parsed.password)]
  // `;` separates parameters too for some servers (`?version=1;sig=…`): a value after one is its own.
  for (const pair of parsed.search.replace(/^\?/, '').split(/[&;]/)) {
    const at = pair.indexOf('=')
    if (at === -1 || NOT_A_CREDENTIAL.test(decoded(pair.slice(0, at)))) continue
    const raw = pair.slice(at + 1)
    values.push(raw, decoded(raw), decoded(raw.replaceAll('+', ' ')))
  }
  return [...new Set(values.filter(Boolean))]
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** On one line, without control characters, cut to `max`. Not exported: an upstream's text is stored through redactedClip only. */
function clip(text: string, max: number): string {
  const flat = withoutControls(collapseWhitespace(text))
  return flat.length > max ? `${cutText(flat, max)}…` : flat
}

/**
 * An upstream's text as a message keeps it: redacted, then clipped. Its whitespace is collapsed
 * before redaction, not after: an upstream quoting the prompt with its spaces changed (turned into
 * line breaks) passes the redactor, and collapsing them afterwards would put the prompt back word for
 * word. In a collapsed text the redactor looks for the prompt collapsed too (PromptText.forms).
 */
export function redactedClip(redact: Redactor, text: string, max = 200): string {
  return clip(redact(collapseWhitespace(text)), max)
}

const STATUS_TEXT: Record<number, string> = {
  400: 'bad request', 401: 'unauthorized', 402: 'payment required', 403: 'forbidden', 404: 'not found',
  408: 'request timeout', 409: 'conflict', 413: 'payload too large', 422: 'unprocessable entity',
  429: 'rate limited', 500: 'internal server error', 502: 'bad gateway', 503: 'service unavailable',
  498: 'capacity exceeded', 504: 'gateway timeout', 529: 'overloaded',
}
