/**
 * A drill's client: sends one inference request to witness on one of its
 * three APIs, streaming or not, reads the whole answer and says how it
 * ended, with the request id and log ids witness gave it.
 */

/** Which inference endpoint: POST /v1/infer, /v1/chat/completions or /v1/messages. */
export type Api = 'infer' | 'chat' | 'messages'

export const API_PATHS: Record<Api, string> = {
  infer: '/v1/infer',
  chat: '/v1/chat/completions',
  messages: '/v1/messages',
}

/** One request per API and mode (streaming or not), each on the chain `chainFor` picks. */
export function everyApi(chainFor: (api: Api, stream: boolean) => string): Pick<CallSpec, 'api' | 'stream' | 'chain'>[] {
  return (['infer', 'chat', 'messages'] as const).flatMap((api) => [false, true].map((stream) => ({ api, stream, chain: chainFor(api, stream) })))
}

export interface CallSpec {
  api: Api
  stream: boolean
  chain: string
  agent: string
  /** The client gives up after this long (a request that has not ended by then got no answer). */
  deadlineMs: number
  /** The client itself goes away after this long (a deliberate disconnect). */
  abortAfterMs?: number
}

/**
 * How the answer ended: `complete` (a JSON body, or a stream that ended with
 * its final event), `error-event` (a stream ended by an error event),
 * `cut` (the body stopped early), `refused` (no connection: the server is
 * down), `timeout` (nothing ended by the deadline), `aborted` (the client
 * left on purpose).
 */
export type Ending = 'complete' | 'error-event' | 'cut' | 'refused' | 'timeout' | 'aborted'

export interface CallResult {
  spec: CallSpec
  /** HTTP status, null when no response came. */
  status: number | null
  requestId: string | null
  logIds: number[]
  /** The witness error type of an error answer. */
  errorType: string | null
  ending: Ending
  /** What went wrong on the client side, for problem reports. */
  detail: string
  startedAt: number
  endedAt: number
}

/** The body each API expects, for a chain and an agent. */
export function requestBody(spec: Pick<CallSpec, 'api' | 'stream' | 'chain' | 'agent'>, content = 'Say hello.'): Record<string, unknown> {
  const messages = [{ role: 'user', content }]
  switch (spec.api) {
    case 'infer':
      return { chain: spec.chain, agent: spec.agent, messages, stream: spec.stream }
    case 'chat':
      return { model: spec.chain, messages, stream: spec.stream }
    case 'messages':
      return { model: spec.chain, max_tokens: 64, messages, stream: spec.stream }
  }
}

/** Sends the request and reads the answer to its end (or the deadline). */
export async function call(baseUrl: string, spec: CallSpec): Promise<CallResult> {
  const startedAt = Date.now()
  const controller = new AbortController()
  let why: 'timeout' | 'aborted' | null = null
  const deadline = setTimeout(() => {
    why = 'timeout'
    controller.abort()
  }, spec.deadlineMs)
  const leave = spec.abortAfterMs === undefined ? undefined : setTimeout(() => {
    why ??= 'aborted'
    controller.abort()
  }, spec.abortAfterMs)
  const result: CallResult = { spec, status: null, requestId: null, logIds: [], errorType: null, ending: 'refused', detail: '', startedAt, endedAt: 0 }
  try {
    const res = await fetch(`${baseUrl}${API_PATHS[spec.api]}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-name': spec.agent },
      body: JSON.stringify(requestBody(spec)),
      signal: controller.signal,
    })
    result.status = res.status
    result.requestId = res.headers.get('x-witness-request-id')
    result.logIds = (res.headers.get('x-witness-log-ids') ?? '').split(',').filter(Boolean).map(Number)
    result.ending = 'cut'
    const text = await res.text()
    const isStream = res.status === 200 && (res.headers.get('content-type') ?? '').startsWith('text/event-stream')
    if (isStream) result.ending = streamEnding(text)
    else {
      result.ending = 'complete'
      if (res.status !== 200) result.errorType = errorTypeOf(text)
    }
    if (result.ending === 'cut') result.detail = `stream ended without a final or error event: …${text.slice(-200)}`
  } catch (error) {
    if (why) result.ending = why
    else result.detail = (error as Error).message
  } finally {
    clearTimeout(deadline)
    clearTimeout(leave)
    result.endedAt = Date.now()
  }
  return result
}

/** How an SSE body ended, in either API's format. */
export function streamEnding(text: string): Ending {
  const events = text.split('\n\n').map((e) => e.trim()).filter(Boolean)
  const last = events.at(-1) ?? ''
  if (last === 'data: [DONE]' || last.startsWith('event: message_stop')) return 'complete'
  if (last.startsWith('event: error') || /^data: \{"error":/.test(last)) return 'error-event'
  return 'cut'
}

/** The witness error type in any of the three error shapes. */
export function errorTypeOf(text: string): string | null {
  try {
    const body = JSON.parse(text) as { error?: { type?: unknown; code?: unknown } }
    const type = body.error?.code ?? body.error?.type
    return typeof type === 'string' ? type : null
  } catch {
    return null
  }
}
