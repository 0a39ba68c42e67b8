/**
 * The adapter contract. An adapter is a pure translation (client body ->
 * upstream body, upstream JSON -> Completion, upstream SSE event -> stream
 * facts) for one wire format; `providers/call.ts` does the one fetch.
 * Adapters never import Hono, SQLite or the config.
 */

/** The two wire formats witness speaks on both sides. */
export type Wire = 'openai' | 'anthropic'

/** What the client sent, in its own wire format, minus witness's own fields. */
export interface ClientRequest {
  wire: Wire
  body: Record<string, unknown>
  stream: boolean
  /** An Anthropic client's `anthropic-beta` header: the beta features its body may use. */
  anthropicBeta?: string
}

/** Where one attempt goes. */
export interface Target {
  /** The provider's name in the config, for messages. */
  provider: string
  baseUrl: string
  /** The URL to call, when already worked out (else the adapter's endpoint for baseUrl). */
  url?: string
  model: string
  apiKey?: string
  /** Extra headers from the provider's config. */
  headers?: Record<string, string>
  /** Whether an OpenAI-compatible stream asks for its usage chunk (default yes). */
  streamUsage?: boolean
  /** Whether a model's reasoning goes back to the provider that produced it (default yes). */
  sendReasoning?: boolean
  /** Toward Anthropic: max_tokens for an OpenAI client's request without one (default DEFAULT_MAX_TOKENS). */
  defaultMaxTokens?: number
}

/** Token usage as the provider reported it; null where it reported none. */
export interface Usage {
  tokensIn: number | null
  tokensOut: number | null
  /** Cost the provider itself reported (OpenRouter's usage.cost), in USD. */
  costUsd: number | null
}

/** A finished non-streaming upstream response, still in the upstream's wire format. */
export interface Completion {
  wire: Wire
  body: Record<string, unknown>
  /** The body exactly as received, when it was read as text (passed through when nothing changes). */
  text?: string
  responseId: string | null
  servedModel: string | null
  usage: Usage
}

/** One server-sent event as it came off the wire. */
export interface SseEvent {
  event: string | null
  data: string
}

/** Facts gathered from a stream as its events pass through. */
export interface StreamFacts {
  responseId: string | null
  servedModel: string | null
  usage: Usage
  /** Events carrying generated content (deltas). */
  chunks: number
  /**
   * Some event so far carried generated content: text, a tool call (its name
   * or arguments) or reasoning. Not a role-only chunk or `message_start`: this
   * marks the first token, where the first event may come well before it.
   */
  content: boolean
  /** The upstream sent its proper end (`[DONE]` or `message_stop`). */
  done: boolean
  /** The upstream sent an error event. */
  error: string | null
  /** The HTTP-like code the error event gave (OpenRouter's `error.code`), if any. */
  errorCode: number | null
  /** The error event is one a client of the provider's own API raises on as sent (so it may be passed on as it is). */
  errorRaisable: boolean
}

export interface Adapter {
  readonly wire: Wire
  /** The URL called for a base URL. */
  endpoint(baseUrl: string): string
  /** Headers that authenticate and version the call (content-type included), and any the client's request carries on. */
  headers(apiKey: string | undefined, request?: ClientRequest): Record<string, string>
  /** The upstream body for a client request, with `model` set; translates across wires. */
  body(request: ClientRequest, model: string, target?: Pick<Target, 'streamUsage' | 'provider' | 'sendReasoning' | 'defaultMaxTokens'>): Record<string, unknown>
  /** Reads an upstream JSON response; throws MalformedResponseError when it is not one. */
  completion(json: unknown): Completion
  /** Folds one upstream stream event into the facts. */
  observe(event: SseEvent, facts: StreamFacts): void
}

/** Thrown by adapters when an upstream body is not what the wire format promises. */
export class MalformedResponseError extends Error {
  override name = 'MalformedResponseError'
  constructor(
    message: string,
    /** The usage the answer reported, when it did: an answer without a choice may still have been billed. */
    readonly usage?: Usage,
  ) {
    super(message)
  }
}

/**
 * Thrown by adapters when an upstream answered 200 with an error in place of its answer: OpenRouter
 * (a failure after generation began), vLLM (`object: "error"`), a choice that ended in `error`.
 * `code` is the error's own HTTP-like code, when it gave one.
 */
export class AnswerError extends Error {
  override name = 'AnswerError'
  constructor(
    message: string,
    readonly code: number | undefined,
  ) {
    super(message)
  }
}

export function emptyUsage(): Usage {
  return { tokensIn: null, tokensOut: null, costUsd: null }
}

export function newStreamFacts(): StreamFacts {
  return { responseId: null, servedModel: null, usage: emptyUsage(), chunks: 0, content: false, done: false, error: null, errorCode: null, errorRaisable: false }
}

/** Narrowing helpers for untyped JSON. */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

export function intOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? Math.trunc(value) : null
}

/**
 * A count the upstream reports (tokens): a whole number from 0 to 2^53 - 1 (a fraction cut off),
 * else null, as if it had reported none. A negative or absurd count is no fact to store or pass on.
 */
export function countOrNull(value: unknown): number | null {
  if (typeof value !== 'number' || !(value >= 0)) return null
  const whole = Math.trunc(value)
  return Number.isSafeInteger(whole) ? whole : null
}

/** An amount the upstream reports (a cost in USD): finite and not negative, else null. */
export function amountOrNull(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : null
}

export function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null
}

export function isNonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0
}

/** Appends a path to a base URL, keeping any query string after it. */
export function joinPath(baseUrl: string, path: string): string {
  const url = new URL(baseUrl)
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${path}`
  return url.toString()
}

/** A URL as stored in a row's `endpoint`: no query string, no credentials. */
export function publicEndpoint(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    u.search = ''
    u.hash = ''
    return u.toString()
  } catch {
    // Not a URL the parser takes: still no query, fragment or userinfo.
    return (url.split(/[?#]/)[0] ?? url).replace(/\/\/[^/@]*@/, '//')
  }
}
