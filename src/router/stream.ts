/**
 * A stream after its first event: passes upstream events to the client as
 * they arrive (translated to the client's wire format), enforces the idle
 * and whole-stream timeouts, and owns the attempt's row. The row is
 * finished and committed before the stream's last event (its normal end or
 * an error event) is sent; a client that goes away aborts the upstream
 * request and finishes the row too. Exactly one of these endings happens.
 *
 * The idle timeout is one timer per session, re-armed when it fires early,
 * not one timer per event. It measures silence: any bytes from the upstream
 * (an SSE comment sent to keep the stream open, too) restart it.
 */
import type { OpenedStream } from '../../providers/call.ts'
import { redactedClip } from '../../providers/call.ts'
import type { StreamTranslator } from '../../providers/translate/stream.ts'
import { frame } from '../../providers/sse.ts'
import { type Adapter, MalformedResponseError, type SseEvent, isRecord } from '../../providers/types.ts'
import type { Redactor } from '../redaction.ts'
import { receiptFor } from '../proof/receipt.ts'
import { mapStrings } from '../text.ts'
import type { AttemptOutcome } from '../telemetry/store.ts'
import type { AttemptRecord, RequestScope } from './attempt-record.ts'
import { finishAttempt } from './attempt-record.ts'
import type { LiveCalls } from './live-calls.ts'

/**
 * How a stream ended: it finished (`[DONE]`, `message_stop`), it failed
 * (cut, stalled, an error event, malformed: the provider's doing), the
 * client left (or witness's stop cut it), or the client stopped reading and
 * the whole-stream limit ran out while the session waited on it (`unread`).
 * Neither of the last two says anything of the provider, nor of the config.
 */
export type StreamEnd = 'success' | 'failed' | 'left' | 'unread'

export interface StreamSession {
  /** The client's SSE body. */
  body: ReadableStream<Uint8Array>
  /** Settles once the row is finished, however the stream ended, with how it ended. */
  settled: Promise<StreamEnd>
}

export interface StreamSessionInit {
  opened: OpenedStream
  adapter: Adapter
  translator: StreamTranslator
  /** Aborts the upstream request. */
  controller: AbortController
  record: AttemptRecord
  scope: RequestScope
  /** sha256 of the body sent upstream (the reader hashes what comes back). */
  requestSha256: string | null
  provider: string
  /** Cuts what upstream messages must not carry (API key, prompt text); built on an error's path only. */
  redactor: () => Redactor
  /** The answer's id and model as the row keeps them (the call's credentials cut out: providers/call.ts withoutCredentials). */
  storedIds: (ids: { responseId: string | null; servedModel: string | null }) => { responseId: string | null; servedModel: string | null }
  idleTimeoutMs: number
  timeoutMs: number
  /** Where the session registers itself while it runs (the router's stop ends it). */
  live?: LiveCalls
}

/**
 * An upstream's JSON event with every string in it redacted, re-encoded (redacting the encoded text
 * could cut an escape sequence in two and break the JSON); null when its data is not JSON.
 */
function redactedEvent(event: SseEvent, redact: Redactor): SseEvent | null {
  let json: unknown
  try {
    json = JSON.parse(event.data)
  } catch {
    return null
  }
  return { event: event.event && redact(event.event), data: JSON.stringify(mapStrings(json, redact)) }
}

type Ids = { responseId: string | null; servedModel: string | null }

/** `event` with the answer's id and model (top level, or in an Anthropic `message`) given as `to` where they are as `from`. */
function withIds(event: SseEvent, from: Ids, to: Ids): SseEvent {
  let json: unknown
  try {
    json = JSON.parse(event.data)
  } catch {
    return event
  }
  const swap = (holder: unknown) => {
    if (!isRecord(holder)) return
    if (from.responseId !== null && holder.id === from.responseId) holder.id = to.responseId
    if (from.servedModel !== null && holder.model === from.servedModel) holder.model = to.servedModel
  }
  swap(json)
  if (isRecord(json)) swap(json.message)
  return { event: event.event, data: JSON.stringify(json) }
}

/** Why witness itself stopped reading the upstream. */
class Stop {
  constructor(readonly kind: 'idle' | 'total' | 'client' | 'broken') {}
}

export function startStreamSession(init: StreamSessionInit): StreamSession {
  const { opened, adapter, translator, controller, record, scope } = init
  const { clock } = scope
  const facts = opened.facts
  const encoder = new TextEncoder()
  // The events read before the session began (observed already): passed on first, in order.
  const first: SseEvent[] = [...opened.first]
  let ended = false
  let settle!: (how: StreamEnd) => void
  const settled = new Promise<StreamEnd>((resolve) => (settle = resolve))
  // Set when the client went away (or witness's stop cut the stream): then the ending is nobody's failure.
  let left = false
  // Set when the whole-stream limit ran out while the client was not reading (an event waiting for it):
  // the time went to the client, so that timeout is no failure of the provider's either.
  let unread = false

  const elapsed = () => Math.round(clock.monotonic() - opened.startedAt)
  // Time to first token: the first event is often a role-only chunk or message_start.
  let firstTokenMs: number | null = opened.firstContentMs
  const remaining = Math.max(1, init.timeoutMs - elapsed())
  let client: ReadableStreamDefaultController<Uint8Array> | null = null
  let pulling = false
  // Since when the session has been waiting for the upstream's next event (null: not waiting).
  let waitingSince: number | null = null
  // Why witness stopped reading the upstream, once it has.
  let stopped: Stop | null = null
  // The whole-stream limit holds even when the client stops reading (then nothing pulls, so the
  // session ends the stream itself); while a pull waits on the upstream, that pull ends it.
  const totalTimer = setTimeout(() => {
    stopUpstream(new Stop('total'))
    if (!pulling) {
      unread = true
      void end(client, outcome('timeout', totalMessage()), translator.fail('stream_timeout', totalMessage()))
    }
  }, remaining)
  const totalMessage = () => `timeout after ${init.timeoutMs} ms (stream, ${facts.chunks} chunks)`
  // The idle limit: one timer, re-armed for what is left of the limit when it fires early.
  let idleTimer: ReturnType<typeof setTimeout> | undefined
  const watchIdle = (ms: number) => {
    idleTimer = setTimeout(() => {
      if (ended || stopped) return
      // Any bytes while waiting count: a keep-alive comment is the provider saying it is still there.
      const waited = waitingSince === null ? 0 : performance.now() - Math.max(waitingSince, opened.reader.lastBytesAt)
      if (waited >= init.idleTimeoutMs) stopUpstream(new Stop('idle'))
      else watchIdle(init.idleTimeoutMs - waited)
    }, ms)
  }
  watchIdle(init.idleTimeoutMs)

  function stopUpstream(reason: Stop) {
    stopped ??= reason
    controller.abort(reason)
    void opened.reader.cancel(reason)
  }

  function outcome(status: AttemptOutcome['status'], errorMessage: string | null): AttemptOutcome {
    const { responseId, servedModel } = init.storedIds(facts)
    return {
      status,
      tokensIn: facts.usage.tokensIn,
      tokensOut: facts.usage.tokensOut,
      latencyMs: elapsed(),
      errorMessage,
      httpStatus: 200,
      responseId,
      servedModel,
      firstByteMs: opened.firstByteMs,
      firstTokenMs,
      costUsd: facts.usage.costUsd,
      requestSha256: init.requestSha256,
      responseSha256: opened.reader.digest(),
    }
  }

  /** The one ending: commit the row, then send the last frames (if the client is still there). */
  async function end(stream: ReadableStreamDefaultController<Uint8Array> | null, result: AttemptOutcome, frames: string[]) {
    if (ended) return
    ended = true
    init.live?.delete(stopForRouter)
    clearTimeout(totalTimer)
    clearTimeout(idleTimer)
    await finishAttempt(scope, record, result)
    if (stream) {
      try {
        // The receipt rides as an SSE comment (which SDKs ignore) just before the last event.
        stream.enqueue(encoder.encode(`: witness-receipt ${receiptFor(scope.machine, scope.attempts)}\n\n`))
        for (const f of frames) stream.enqueue(encoder.encode(f))
        stream.close()
      } catch {
        // the client went away while the row was being committed
      }
    }
    settle(left ? 'left' : unread ? 'unread' : result.status === 'success' ? 'success' : 'failed')
  }

  /** The upstream's next event; a stop (idle, total, client) surfaces as that Stop, however the read settled. */
  async function next(): Promise<SseEvent | null> {
    waitingSince = performance.now()
    try {
      const event = await opened.reader.next()
      if (stopped) throw stopped
      return event
    } catch (error) {
      throw stopped ?? error
    } finally {
      waitingSince = null
    }
  }

  // The answer's id and model as the row keeps them (storedIds), looked at again only when the
  // upstream names new ones: an upstream that echoes the call's credentials there (a broken or
  // hostile one echoing its Authorization) must not pass them on to the agent either.
  let named: { responseId: string | null; servedModel: string | null } = { responseId: null, servedModel: null }
  let stored = named
  function ownIds(event: SseEvent): SseEvent {
    if (facts.responseId !== named.responseId || facts.servedModel !== named.servedModel) {
      named = { responseId: facts.responseId, servedModel: facts.servedModel }
      stored = init.storedIds(named)
    }
    return stored === named ? event : withIds(event, named, stored)
  }

  /** Handles one upstream event; true when frames went to the client or the stream ended. */
  async function step(stream: ReadableStreamDefaultController<Uint8Array>): Promise<boolean> {
    try {
      let event: SseEvent | null
      if (first.length > 0) {
        event = first.shift()!
      } else {
        event = await next()
        if (ended) return true
        if (event) {
          adapter.observe(event, facts)
          if (firstTokenMs === null && facts.content) firstTokenMs = elapsed()
        }
      }
      if (event === null) {
        const last = adapter.wire === 'openai' ? '[DONE]' : 'message_stop'
        const message = `stream interrupted after ${facts.chunks} chunks (ended without ${last})`
        await end(stream, outcome('error', message), translator.fail('stream_interrupted', message))
        return true
      }
      if (facts.error !== null) {
        const redact = init.redactor()
        const message = `stream interrupted after ${facts.chunks} chunks (upstream error event: ${redactedClip(redact, facts.error)})`
        // Nothing reads the upstream after its error: close it, or a provider still generating keeps the socket (and bills).
        stopUpstream(new Stop('broken'))
        // A client of the same API gets the provider's own error event (its type tells an overload
        // from a bad request), with witness's keys cut out; another API's client gets one in its format.
        const own = adapter.wire === scope.request.wire && facts.errorRaisable ? redactedEvent(event, redact) : null
        const frames = own ? [frame(own)] : translator.fail('upstream_error', message)
        await end(stream, outcome('error', message), frames)
        return true
      }
      const frames = translator.push(ownIds(event))
      for (const f of frames) stream.enqueue(encoder.encode(f))
      if (facts.done) {
        void opened.reader.cancel()
        await end(stream, outcome('success', null), translator.finish())
        return true
      }
      return frames.length > 0
    } catch (error) {
      if (ended) return true
      const reason = controller.signal.reason
      const stop = error instanceof Stop ? error : reason instanceof Stop ? reason : null
      if (stop?.kind === 'client') return true
      let status: AttemptOutcome['status'] = 'error'
      let message: string
      if (stop?.kind === 'idle') {
        status = 'timeout'
        message = `stream idle for ${init.idleTimeoutMs} ms after ${facts.chunks} chunks`
      } else if (stop?.kind === 'total') {
        status = 'timeout'
        message = totalMessage()
      } else if (error instanceof MalformedResponseError) {
        message = `stream interrupted after ${facts.chunks} chunks (malformed event: ${error.message})`
        stopUpstream(new Stop('broken'))
      } else {
        message = `stream interrupted after ${facts.chunks} chunks (connection closed by upstream)`
      }
      await end(stream, outcome(status, message), translator.fail(status === 'timeout' ? 'stream_timeout' : 'stream_interrupted', message))
      return true
    }
  }

  const body = new ReadableStream<Uint8Array>({
    start(stream) {
      client = stream
    },
    async pull(stream) {
      // A pull must deliver something (or end the stream): the stream will not
      // ask again on its own, so events that translate to nothing are skipped here.
      let delivered = false
      pulling = true
      try {
        while (!ended && !delivered) delivered = await step(stream)
      } finally {
        pulling = false
      }
    },
    cancel: clientGone,
  })

  /** The client went away: stop the upstream and finish the row with what was seen. */
  async function clientGone() {
    if (ended) return
    left = true
    const who = scope.stopping() ? 'witness stopped' : 'client disconnected'
    const ending = end(null, outcome('error', `${who} after ${facts.chunks} chunks`), [])
    stopUpstream(new Stop('client'))
    await ending
  }

  /** The router is stopping: end with an error event the client can read, then let go of the upstream. */
  async function stopForRouter() {
    if (ended) return settled.then(() => {})
    left = true // the provider did nothing wrong: no failure for the breaker or the deadman switch
    const message = `witness stopped after ${facts.chunks} chunks`
    const ending = end(client, outcome('error', message), translator.fail('witness_stopped', `${message}; retry the request`))
    stopUpstream(new Stop('client'))
    await ending
  }
  init.live?.add(stopForRouter)

  // A client that disconnects before the body is read at all still ends the session.
  if (scope.signal.aborted) void clientGone()
  else scope.signal.addEventListener('abort', () => void clientGone(), { once: true })
  return { body, settled }
}
