/**
 * Streaming translation: turns the upstream's server-sent events into the
 * client's wire format, event by event. The event that ends a stream
 * (`[DONE]`, `message_stop`) is held back and only produced by `finish()`,
 * which the router calls after the row is committed; `fail()` produces a
 * proper error event instead.
 */
import { frame } from '../sse.ts'
import { type ReasoningField, reasoningOf, reasoningSignature } from './reasoning.ts'
import { type SseEvent, type Wire, countOrNull, isNonEmptyString, isRecord } from '../types.ts'
import { anthropicCacheReads, anthropicInputTokens, finishFromStopReason, openaiUsageOf } from './to-openai.ts'
import { anthropicUsageOf, newMessageId, newToolUseId, stopReasonFromFinish } from './to-anthropic.ts'
import { openaiCachedTokens, openaiUsage, usageIn } from '../openai-usage.ts'

type Json = Record<string, unknown>

export interface StreamTranslator {
  /** Client frames for one upstream event (terminal events held back). */
  push(event: SseEvent): string[]
  /** Frames that end a successful stream. */
  finish(): string[]
  /** An error event in the client's format (the stream is then closed without its normal end). */
  fail(type: string, message: string): string[]
}

export interface TranslatorOptions {
  /** The client asked for the usage chunk (OpenAI `stream_options.include_usage`). */
  includeUsage: boolean
  createdS: number
  /** The model witness asked the upstream for: named in a translated stream until the upstream names its own. */
  model: string
  /** The provider streaming (its reasoning becomes thinking blocks it alone gets back: reasoning.ts). */
  provider: string
}

export function streamTranslator(from: Wire, to: Wire, options: TranslatorOptions): StreamTranslator {
  if (from === 'openai' && to === 'openai') return openaiPassthrough(options)
  if (from === 'anthropic' && to === 'anthropic') return anthropicPassthrough()
  if (from === 'anthropic' && to === 'openai') return anthropicToOpenai(options)
  return openaiToAnthropic(options)
}

function parse(event: SseEvent): Json | null {
  try {
    const json: unknown = JSON.parse(event.data)
    return isRecord(json) ? json : null
  } catch {
    return null
  }
}

export function openaiErrorFrame(type: string, message: string): string {
  return `data: ${JSON.stringify({ error: { message, type, code: type, param: null } })}\n\n`
}

export function anthropicErrorFrame(type: string, message: string): string {
  return `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type, message } })}\n\n`
}

function openaiPassthrough(options: TranslatorOptions): StreamTranslator {
  // A client that asked for usage reads it in a chunk of its own at the end (`choices: []`, the
  // SDKs' `chunk.usage`). A provider that put it elsewhere (Kimi in the choice, Groq in x_groq) and
  // sent no such chunk gets one made from it before [DONE]; one that sent both (Groq) is left as it is.
  let usageChunkSent = false
  let usageElsewhere: Json | null = null
  return {
    push(event) {
      if (event.data === '[DONE]') return []
      if (event.data.includes('"usage"')) {
        const json = parse(event)
        // The usage-only chunk witness asked for on the client's behalf is not the client's.
        if (!options.includeUsage) {
          if (json && Array.isArray(json.choices) && json.choices.length === 0 && isRecord(json.usage)) return []
        } else if (json && isRecord(json.usage)) {
          usageChunkSent = true
        } else if (json) {
          const usage = usageIn(json)
          if (usage) usageElsewhere = { id: json.id, object: 'chat.completion.chunk', created: json.created, model: json.model, choices: [], usage }
        }
      }
      return [frame(event)]
    },
    finish: () => [...(usageElsewhere && !usageChunkSent ? [`data: ${JSON.stringify(usageElsewhere)}\n\n`] : []), 'data: [DONE]\n\n'],
    fail: (type, message) => [openaiErrorFrame(type, message)],
  }
}

function anthropicPassthrough(): StreamTranslator {
  let stop: string | null = null
  // The output count message_start gave, for a message_delta that gives none.
  let outputTokens = 0
  return {
    push(event) {
      const type = event.event ?? parse(event)?.type
      if (type === 'message_stop') {
        stop = frame(event)
        return []
      }
      // A proxy's stream may leave `usage` out of message_start or message_delta; the Anthropic SDKs'
      // stream helpers read it unguarded (and throw), so it goes with the counts known (0 where none).
      if (type === 'message_start' || type === 'message_delta') {
        const json = parse(event)
        const holder = json && (type === 'message_start' ? json.message : json)
        if (isRecord(holder)) {
          if (isRecord(holder.usage)) outputTokens = countOrNull(holder.usage.output_tokens) ?? outputTokens
          else {
            holder.usage = type === 'message_start' ? { input_tokens: 0, output_tokens: 0 } : { output_tokens: outputTokens }
            return [frame({ event: event.event, data: JSON.stringify(json) })]
          }
        }
      }
      return [frame(event)]
    },
    finish: () => [stop ?? `event: message_stop\ndata: {"type":"message_stop"}\n\n`],
    fail: (type, message) => [anthropicErrorFrame(type, message)],
  }
}

/** Anthropic Messages events -> OpenAI chat.completion.chunk frames. */
function anthropicToOpenai(options: TranslatorOptions): StreamTranslator {
  let id = 'chatcmpl-witness'
  let model = options.model
  // Null until the upstream gives a count (the row's NULL; the client is then told no usage).
  let tokensIn: number | null = null
  let tokensOut: number | null = null
  // message_start's output count, for a whole stream whose message_delta gives none (as the row keeps it).
  let startOut: number | null = null
  let cachedIn: number | null = null
  const toolIndex = new Map<number, number>()
  // Tool blocks that have had no JSON yet, with the input their start carried: a tool called without input must
  // still get "{}" (as OpenAI sends), not "", and one whose start held its whole input (as a proxy may send it, with
  // no input_json_delta) gets that input, as the Anthropic SDK reads it (deltas, when they come, replace it).
  const noArgumentsYet = new Map<number, string>()
  const chunk = (delta: Json, finish: string | null = null) =>
    `data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: options.createdS, model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`
  return {
    push(event) {
      const json = parse(event)
      if (!json) return []
      switch (json.type) {
        case 'message_start': {
          const message = isRecord(json.message) ? json.message : {}
          id = typeof message.id === 'string' ? message.id : id
          model = typeof message.model === 'string' ? message.model : model
          const usage = isRecord(message.usage) ? message.usage : {}
          // Cache writes and reads are input too, as in the non-streaming answer and the row.
          tokensIn = anthropicInputTokens(usage)
          startOut = countOrNull(usage.output_tokens)
          cachedIn = anthropicCacheReads(usage)
          return [chunk({ role: 'assistant', content: '' })]
        }
        case 'content_block_start': {
          const block = isRecord(json.content_block) ? json.content_block : {}
          // A text block may open with text already in it (the adapter counts it as content): it is the answer's too.
          if (block.type === 'text') return isNonEmptyString(block.text) ? [chunk({ content: block.text })] : []
          if (block.type === 'thinking') return isNonEmptyString(block.thinking) ? [chunk({ reasoning_content: block.thinking })] : []
          if (block.type !== 'tool_use' || typeof json.index !== 'number') return []
          const index = toolIndex.size
          toolIndex.set(json.index, index)
          noArgumentsYet.set(json.index, isRecord(block.input) ? JSON.stringify(block.input) : '{}')
          return [chunk({ tool_calls: [{ index, id: block.id, type: 'function', function: { name: block.name, arguments: '' } }] })]
        }
        case 'content_block_delta': {
          const delta = isRecord(json.delta) ? json.delta : {}
          if (delta.type === 'text_delta') return [chunk({ content: delta.text })]
          // Extended thinking, as the non-streaming answer carries it (to-openai.ts); its signature has no place.
          if (delta.type === 'thinking_delta') return isNonEmptyString(delta.thinking) ? [chunk({ reasoning_content: delta.thinking })] : []
          if (delta.type === 'input_json_delta' && typeof json.index === 'number') {
            if (typeof delta.partial_json !== 'string' || delta.partial_json === '') return []
            noArgumentsYet.delete(json.index)
            return [chunk({ tool_calls: [{ index: toolIndex.get(json.index) ?? 0, function: { arguments: delta.partial_json } }] })]
          }
          return []
        }
        case 'content_block_stop': {
          const whole = typeof json.index === 'number' ? noArgumentsYet.get(json.index) : undefined
          if (whole === undefined) return []
          noArgumentsYet.delete(json.index as number)
          return [chunk({ tool_calls: [{ index: toolIndex.get(json.index as number) ?? 0, function: { arguments: whole } }] })]
        }
        case 'message_delta': {
          const delta = isRecord(json.delta) ? json.delta : {}
          const usage = isRecord(json.usage) ? json.usage : {}
          tokensOut = countOrNull(usage.output_tokens) ?? tokensOut
          tokensIn = anthropicInputTokens(usage) ?? tokensIn
          cachedIn = anthropicCacheReads(usage) ?? cachedIn
          return delta.stop_reason ? [chunk({}, finishFromStopReason(delta.stop_reason))] : []
        }
        default:
          return []
      }
    },
    finish() {
      const frames: string[] = []
      const usage = openaiUsageOf(tokensIn, tokensOut ?? startOut, cachedIn)
      if (options.includeUsage && usage) {
        frames.push(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created: options.createdS, model, choices: [], usage })}\n\n`)
      }
      frames.push('data: [DONE]\n\n')
      return frames
    },
    fail: (type, message) => [openaiErrorFrame(type, message)],
  }
}

/**
 * Whether a delta at an index (or without one) that already has a call open starts another call.
 * A call goes on in the deltas after its first; some providers send its id again, or another id
 * (Poolside), or its name in every delta (MiniMax), so neither alone starts a call. Gemini's OpenAI
 * endpoint sends parallel calls whole, one a delta, all at index 0 or with no index and an empty id.
 * So once the open call's arguments are whole JSON, another id, or a name with more arguments, does.
 */
function startsAnotherCall(open: { id: string | null; args: string }, id: string | null, fn: Record<string, unknown>): boolean {
  if (!wholeJson(open.args)) return false
  if (id !== null && open.id !== null && id !== open.id) return true
  const more = typeof fn.arguments === 'string' && fn.arguments.trim() !== ''
  return more && (isNonEmptyString(fn.name) || id !== null)
}

/** A tool call streaming from an OpenAI-compatible upstream, and its block in the Messages answer (null: not opened yet). */
interface ToolCall {
  block: number | null
  id: string | null
  name: unknown
  args: string
}

/** Whether a tool call's arguments so far are a whole JSON value (the call is complete). */
function wholeJson(text: string): boolean {
  if (text.trim() === '') return false
  try {
    JSON.parse(text)
    return true
  } catch {
    return false
  }
}

/** OpenAI chat.completion.chunk frames -> Anthropic Messages events. */
function openaiToAnthropic(options: TranslatorOptions): StreamTranslator {
  const ev = (type: string, data: Json) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
  let started = false
  let blockIndex = -1
  let blockType: 'thinking' | 'text' | 'tool_use' | null = null
  /** The tool call each index is streaming (-1: calls sent without an index). */
  const openCalls = new Map<number, ToolCall>()
  /** The call whose block is open, if the open block is a call. */
  let liveCall: ToolCall | null = null
  /**
   * Calls begun while another's arguments were still arriving (an upstream that interleaves parallel
   * calls by index). A Messages stream has one open block at a time, so each waits, its arguments
   * kept, until the calls before it are whole; the rest are sent when the answer ends.
   */
  const waiting: ToolCall[] = []
  let calledTools = false
  let reasoningField: ReasoningField = 'reasoning_content'
  let refused = false
  /** From the upstream's finish_reason; an answer that ends without one is given one (finish below). */
  let stopReason: string | null = null
  let tokensIn = 0
  let tokensOut = 0
  let cachedIn: number | null = null
  const closeBlock = (out: string[]) => {
    // A thinking block ends with its signature (witness's mark: reasoning.ts), as Anthropic's do.
    if (blockType === 'thinking') out.push(ev('content_block_delta', { index: blockIndex, delta: { type: 'signature_delta', signature: reasoningSignature(options.provider, reasoningField) } }))
    if (blockType !== null) out.push(ev('content_block_stop', { index: blockIndex }))
    blockType = null
    liveCall = null
  }
  const openCallBlock = (out: string[], call: ToolCall) => {
    closeBlock(out)
    blockIndex++
    blockType = 'tool_use'
    call.block = blockIndex
    liveCall = call
    // Anthropic clients answer a call by its id: one sent empty gets one.
    out.push(ev('content_block_start', { index: blockIndex, content_block: { type: 'tool_use', id: call.id ?? newToolUseId(), name: call.name, input: {} } }))
    if (call.args !== '') out.push(ev('content_block_delta', { index: blockIndex, delta: { type: 'input_json_delta', partial_json: call.args } }))
  }
  /**
   * Text and reasoning that arrived while a call's arguments were still streaming (an upstream that
   * interleaves them). Sent at once, they would close the call's block on half its JSON, and the
   * rest of its arguments would go to a block already stopped; so they wait for the call to be whole.
   */
  const held: { type: 'thinking' | 'text'; text: string }[] = []
  const callStreaming = () => liveCall !== null && !wholeJson(liveCall.args)
  const sendHeld = (out: string[]) => {
    for (const piece of held.splice(0)) {
      if (blockType !== piece.type) {
        closeBlock(out)
        blockIndex++
        blockType = piece.type
        const block = piece.type === 'thinking' ? { type: 'thinking', thinking: '', signature: '' } : { type: 'text', text: '' }
        out.push(ev('content_block_start', { index: blockIndex, content_block: block }))
      }
      const delta = piece.type === 'thinking' ? { type: 'thinking_delta', thinking: piece.text } : { type: 'text_delta', text: piece.text }
      out.push(ev('content_block_delta', { index: blockIndex, delta }))
    }
  }
  /** Opens the waiting calls' blocks in turn, while the open call is whole (all of them when the answer ends). */
  const sendWaiting = (out: string[], ending: boolean) => {
    while (waiting.length > 0 && (ending || liveCall === null || wholeJson(liveCall.args))) openCallBlock(out, waiting.shift()!)
    if (ending) closeBlock(out)
  }
  // Every Messages stream opens with message_start, even one whose upstream sent nothing before [DONE].
  const start = (out: string[], id: string, model: unknown) => {
    started = true
    out.push(ev('message_start', {
      message: { id, type: 'message', role: 'assistant', model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } },
    }))
  }
  return {
    push(event) {
      if (event.data === '[DONE]') return []
      const json = parse(event)
      if (!json) return []
      const out: string[] = []
      // The upstream's id for the message, or one of witness's when its first chunk has none (some send none at all).
      if (!started) start(out, isNonEmptyString(json.id) ? json.id : newMessageId(), typeof json.model === 'string' && json.model ? json.model : options.model)
      const choice = Array.isArray(json.choices) && isRecord(json.choices[0]) ? json.choices[0] : null
      // Usage as the row reads it (providers/openai-usage.ts), so client and row agree.
      const usage = usageIn(json)
      if (usage) {
        const counted = openaiUsage(usage)
        tokensIn = counted.tokensIn ?? tokensIn
        cachedIn = openaiCachedTokens(usage) ?? cachedIn
        tokensOut = counted.tokensOut ?? tokensOut
      }
      if (!choice) return out
      const delta = isRecord(choice.delta) ? choice.delta : {}
      const reasoning = reasoningOf(delta)
      if (reasoning) {
        reasoningField = reasoning.field
        held.push({ type: 'thinking', text: reasoning.text })
      }
      // A refusal streams as its own field: its text is the answer, and the stop reason says so.
      const refusal = isNonEmptyString(delta.refusal) ? delta.refusal : null
      if (refusal) refused = true
      const text = isNonEmptyString(delta.content) ? delta.content : refusal
      if (text) held.push({ type: 'text', text })
      if (!callStreaming()) sendHeld(out)
      for (const call of Array.isArray(delta.tool_calls) ? delta.tool_calls.filter(isRecord) : []) {
        const slot = typeof call.index === 'number' ? call.index : -1
        const fn = isRecord(call.function) ? call.function : {}
        const id = isNonEmptyString(call.id) ? call.id : null
        let open = openCalls.get(slot)
        if (!open || startsAnotherCall(open, id, fn)) {
          calledTools = true
          open = { block: null, id, name: fn.name, args: '' }
          openCalls.set(slot, open)
          if (callStreaming() || waiting.length > 0) waiting.push(open)
          else openCallBlock(out, open)
        }
        if (typeof fn.arguments === 'string' && fn.arguments !== '') {
          open.args += fn.arguments
          // Only into its block while that is open: pieces after a whole value (whitespace) stay out.
          if (open === liveCall) out.push(ev('content_block_delta', { index: open.block, delta: { type: 'input_json_delta', partial_json: fn.arguments } }))
        }
      }
      if (!callStreaming()) sendHeld(out)
      if (waiting.length > 0 && blockType === 'tool_use') sendWaiting(out, false)
      if (choice.finish_reason) {
        sendHeld(out)
        sendWaiting(out, true)
        stopReason = stopReasonFromFinish(choice.finish_reason, calledTools, refused)
      }
      return out
    },
    finish() {
      const out: string[] = []
      if (!started) start(out, newMessageId(), options.model)
      sendHeld(out)
      sendWaiting(out, true)
      out.push(ev('message_delta', { delta: { stop_reason: stopReason ?? stopReasonFromFinish(null, calledTools, refused), stop_sequence: null }, usage: anthropicUsageOf(tokensIn, tokensOut, cachedIn) }))
      out.push(ev('message_stop', {}))
      return out
    },
    fail(type, message) {
      // What was held for a call cut off with the stream is sent before the error, as it came.
      const out: string[] = []
      if (started) sendHeld(out)
      out.push(anthropicErrorFrame(type, message))
      return out
    },
  }
}
