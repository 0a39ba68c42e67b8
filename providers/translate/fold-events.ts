/**
 * The inverse of completion-events.ts: a whole event stream from an upstream
 * that streamed an answer it was not asked to stream, folded back into the
 * JSON answer it carries, in the same wire format. It was paid for, so it is
 * served rather than thrown away and paid for again elsewhere. The adapter
 * then reads the folded answer as any other (`completion`). Error events are
 * the adapter's to find (`observe`, as in a live stream) before the fold.
 */
import { usageIn } from '../openai-usage.ts'
import { eventJson } from '../sse.ts'
import { MalformedResponseError, type SseEvent, type Wire, isRecord } from '../types.ts'

type Json = Record<string, unknown>

/** The answer `events` carry whole; throws MalformedResponseError when they carry none (cut before their end, not the wire's events). */
export function foldEvents(wire: Wire, events: readonly SseEvent[]): Json {
  return wire === 'openai' ? foldOpenai(events) : foldAnthropic(events)
}

interface OpenaiChoice {
  index: number
  text: Record<'content' | 'reasoning_content' | 'reasoning' | 'refusal', string | null>
  calls: Json[]
  annotations: unknown[]
  finish: unknown
}

/** `chat.completion.chunk`s -> a `chat.completion`: each choice's deltas joined, its tool calls' arguments joined by index. */
function foldOpenai(events: readonly SseEvent[]): Json {
  let head: Json | null = null
  let usage: unknown
  const choices = new Map<number, OpenaiChoice>()
  for (const event of events) {
    if (event.data === '[DONE]') break
    const json = eventJson(event)
    head ??= json
    // Wherever the provider puts it (in the choice: Kimi; in x_groq: Groq), as in a live stream.
    usage = usageIn(json) ?? usage
    for (const choice of Array.isArray(json.choices) ? json.choices.filter(isRecord) : []) {
      const index = typeof choice.index === 'number' ? choice.index : 0
      let into = choices.get(index)
      if (!into) {
        into = { index, text: { content: null, reasoning_content: null, reasoning: null, refusal: null }, calls: [], annotations: [], finish: null }
        choices.set(index, into)
      }
      const delta = isRecord(choice.delta) ? choice.delta : {}
      for (const field of ['content', 'reasoning_content', 'reasoning', 'refusal'] as const) {
        if (typeof delta[field] === 'string') into.text[field] = (into.text[field] ?? '') + delta[field]
      }
      if (Array.isArray(delta.annotations)) into.annotations.push(...delta.annotations)
      for (const call of Array.isArray(delta.tool_calls) ? delta.tool_calls.filter(isRecord) : []) foldCall(into.calls, call)
      if (choice.finish_reason) into.finish = choice.finish_reason
    }
  }
  const all = [...choices.values()].sort((a, b) => a.index - b.index)
  if (!head || all.length === 0 || all.some((c) => !c.finish)) throw new MalformedResponseError('an event stream (not asked for) that ended before its answer did')
  return {
    id: head.id,
    object: 'chat.completion',
    created: head.created,
    model: head.model,
    choices: all.map((c) => {
      const message: Json = { role: 'assistant', content: c.text.content }
      for (const field of ['reasoning_content', 'reasoning', 'refusal'] as const) if (c.text[field] !== null) message[field] = c.text[field]
      if (c.annotations.length) message.annotations = c.annotations
      // Indexes are the upstream's: one that skipped an index leaves no hole in the list.
      const calls = c.calls.filter(Boolean)
      if (calls.length) message.tool_calls = calls
      return { index: c.index, message, finish_reason: c.finish }
    }),
    ...(usage === undefined ? {} : { usage }),
  }
}

/** One streamed tool-call delta into the calls so far: a new index starts a call, the rest add to its arguments. */
function foldCall(calls: Json[], delta: Json): void {
  const index = typeof delta.index === 'number' ? delta.index : calls.length
  const fn = isRecord(delta.function) ? delta.function : {}
  const call = (calls[index] ??= { id: delta.id, type: 'function', function: { name: fn.name, arguments: '' } })
  const into = call.function as Json
  if (typeof delta.id === 'string' && delta.id !== '') call.id = delta.id
  if (typeof fn.name === 'string' && fn.name !== '') into.name = fn.name
  if (typeof fn.arguments === 'string') into.arguments = `${into.arguments as string}${fn.arguments}`
}

/** Messages events -> a Messages `message`: message_start's message, its blocks with their deltas applied, message_delta's stop and usage. */
function foldAnthropic(events: readonly SseEvent[]): Json {
  let message: Json | null = null
  const blocks: Json[] = []
  const json = new Map<number, string>()
  let stopped = false
  for (const event of events) {
    const data = eventJson(event)
    switch (data.type) {
      case 'message_start':
        if (!isRecord(data.message)) throw new MalformedResponseError('message_start without its message')
        message = { ...data.message, content: blocks }
        break
      case 'content_block_start':
        if (typeof data.index === 'number' && isRecord(data.content_block)) blocks[data.index] = { ...data.content_block }
        break
      case 'content_block_delta': {
        const block = typeof data.index === 'number' ? blocks[data.index] : undefined
        const delta = isRecord(data.delta) ? data.delta : {}
        if (!block) throw new MalformedResponseError('a content_block_delta for a block that was not started')
        if (delta.type === 'text_delta') block.text = `${(block.text as string | undefined) ?? ''}${String(delta.text ?? '')}`
        else if (delta.type === 'thinking_delta') block.thinking = `${(block.thinking as string | undefined) ?? ''}${String(delta.thinking ?? '')}`
        else if (delta.type === 'signature_delta') block.signature = delta.signature
        else if (delta.type === 'citations_delta') block.citations = [...(Array.isArray(block.citations) ? block.citations : []), delta.citation]
        else if (delta.type === 'input_json_delta') json.set(data.index as number, (json.get(data.index as number) ?? '') + String(delta.partial_json ?? ''))
        break
      }
      case 'message_delta':
        if (!message) break
        if (isRecord(data.delta)) Object.assign(message, data.delta)
        if (isRecord(data.usage)) message.usage = { ...(isRecord(message.usage) ? message.usage : {}), ...data.usage }
        break
      case 'message_stop':
        stopped = true
        break
    }
  }
  if (!message || !stopped) throw new MalformedResponseError('an event stream (not asked for) that ended before its message_stop')
  for (const [index, text] of json) {
    // Deltas of nothing leave the input the block's start gave (as the Anthropic SDK and stream.ts read it).
    if (text.trim() === '') {
      if (!isRecord(blocks[index]!.input)) blocks[index]!.input = {}
      continue
    }
    try {
      blocks[index]!.input = JSON.parse(text)
    } catch {
      throw new MalformedResponseError("a tool_use block's streamed input is not JSON")
    }
  }
  message.content = blocks.filter(Boolean)
  return message
}
