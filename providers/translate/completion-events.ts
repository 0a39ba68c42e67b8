/**
 * A whole answer as the stream its provider would have sent. Some upstreams
 * ignore `stream: true` and answer a complete JSON completion; it is a
 * paid-for answer, so witness serves it as a stream rather than throwing it
 * away and paying again elsewhere. The events are in the upstream's own wire
 * format, so the adapter reads them (id, model, usage) and the stream
 * translator turns them into the client's format, as for any stream.
 */
import { textOf } from './to-anthropic.ts'
import { type Completion, type SseEvent, countOrNull, isRecord } from '../types.ts'

type Json = Record<string, unknown>

/** The events of a stream carrying `completion` whole, in its own wire format, ending with its proper end. */
export function completionEvents(completion: Completion): SseEvent[] {
  return completion.wire === 'openai' ? openaiEvents(completion.body) : anthropicEvents(completion.body)
}

/** A `chat.completion` as chunks: per choice its message in one delta, then its finish; the usage chunk; `[DONE]`. */
function openaiEvents(body: Json): SseEvent[] {
  const base: Json = { id: body.id, object: 'chat.completion.chunk', created: body.created, model: body.model }
  if (body.system_fingerprint !== undefined) base.system_fingerprint = body.system_fingerprint
  const data = (json: Json): SseEvent => ({ event: null, data: JSON.stringify(json) })
  const events: SseEvent[] = []
  const choices = Array.isArray(body.choices) ? body.choices.filter(isRecord) : []
  choices.forEach((choice, at) => {
    const index = typeof choice.index === 'number' ? choice.index : at
    const message = isRecord(choice.message) ? choice.message : {}
    const delta: Json = { role: 'assistant' }
    // Reasoning under the name the provider gave it (reasoning_content, reasoning), then the answer.
    for (const field of ['reasoning_content', 'reasoning', 'refusal'] as const) if (typeof message[field] === 'string') delta[field] = message[field]
    delta.content = typeof message.content === 'string' ? message.content : message.content == null ? null : textOf(message.content)
    // Web search's url_citation annotations, as OpenAI streams them (in a delta).
    if (Array.isArray(message.annotations) && message.annotations.length) delta.annotations = message.annotations
    const calls = Array.isArray(message.tool_calls) ? message.tool_calls.filter(isRecord) : []
    if (calls.length) delta.tool_calls = calls.map((call, i) => ({ index: i, ...call }))
    events.push(data({ ...base, choices: [{ index, delta, logprobs: choice.logprobs ?? null, finish_reason: null }] }))
    events.push(data({ ...base, choices: [{ index, delta: {}, logprobs: null, finish_reason: choice.finish_reason ?? 'stop' }] }))
  })
  if (isRecord(body.usage)) events.push(data({ ...base, choices: [], usage: body.usage }))
  events.push({ event: null, data: '[DONE]' })
  return events
}

/** A Messages API `message` as its events: message_start, each content block, message_delta, message_stop. */
function anthropicEvents(message: Json): SseEvent[] {
  const event = (type: string, json: Json): SseEvent => ({ event: type, data: JSON.stringify({ type, ...json }) })
  const usage = isRecord(message.usage) ? message.usage : {}
  const events: SseEvent[] = [
    event('message_start', { message: { ...message, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 0 } } }),
  ]
  const blocks = Array.isArray(message.content) ? message.content.filter(isRecord) : []
  blocks.forEach((block, index) => {
    const delta = (json: Json) => events.push(event('content_block_delta', { index, delta: json }))
    switch (block.type) {
      case 'text': {
        // Citations as Anthropic streams them: an empty list in the start, then one citations_delta each.
        const citations = Array.isArray(block.citations) ? block.citations : []
        events.push(event('content_block_start', { index, content_block: { type: 'text', text: '', ...(citations.length ? { citations: [] } : {}) } }))
        for (const citation of citations) delta({ type: 'citations_delta', citation })
        if (typeof block.text === 'string' && block.text) delta({ type: 'text_delta', text: block.text })
        break
      }
      case 'thinking':
        events.push(event('content_block_start', { index, content_block: { type: 'thinking', thinking: '', signature: '' } }))
        if (typeof block.thinking === 'string' && block.thinking) delta({ type: 'thinking_delta', thinking: block.thinking })
        if (typeof block.signature === 'string' && block.signature) delta({ type: 'signature_delta', signature: block.signature })
        break
      case 'tool_use':
      case 'server_tool_use':
        events.push(event('content_block_start', { index, content_block: { ...block, input: {} } }))
        delta({ type: 'input_json_delta', partial_json: JSON.stringify(block.input ?? {}) })
        break
      default:
        // Blocks that stream whole in their start (redacted_thinking, a server tool's result).
        events.push(event('content_block_start', { index, content_block: block }))
    }
    events.push(event('content_block_stop', { index }))
  })
  const outputTokens = countOrNull(usage.output_tokens) ?? 0
  events.push(event('message_delta', { delta: { stop_reason: message.stop_reason ?? 'end_turn', stop_sequence: message.stop_sequence ?? null }, usage: { output_tokens: outputTokens } }))
  events.push(event('message_stop', {}))
  return events
}
