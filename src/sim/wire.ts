/**
 * What the simulator says, in each provider's exact wire format: JSON
 * responses, error bodies and server-sent event sequences for the OpenAI
 * chat-completions and Anthropic Messages APIs.
 */
import type { Directives } from './directives.ts'

type Json = Record<string, unknown>
export type SimWire = 'openai' | 'anthropic'

export interface Reply {
  id: string
  model: string
  text: string
  tool: string | null
  tokensIn: number
  tokensOut: number
}

/** Decides the reply's text and token counts from the request. */
export function planReply(wire: SimWire, body: Json, d: Directives, seq: number): Reply {
  const messages = Array.isArray(body.messages) ? (body.messages as Json[]) : []
  const last = messages.at(-1)
  const blocks = Array.isArray(last?.content) ? (last.content as Json[]) : []
  const textOf = (content: unknown) =>
    typeof content === 'string' ? content : Array.isArray(content) ? (content as Json[]).map((p) => (typeof p.text === 'string' ? p.text : '')).join(' ') : ''
  // A tool result closes the round trip: answer it in text instead of calling the tool again.
  const toolResult = last?.role === 'tool' ? textOf(last.content) : textOf(blocks.find((b) => b.type === 'tool_result')?.content)
  const text = d.reply ?? (toolResult ? `sim reply to tool result: ${toolResult.slice(0, 60)}` : `sim reply to: ${textOf(last?.content).slice(0, 60)}`)
  const words = (s: string) => Math.max(1, s.split(/\s+/).filter(Boolean).length)
  const [tokensIn, tokensOut] = d.tokens ?? [words(JSON.stringify(messages)), words(text)]
  return {
    id: wire === 'openai' ? `chatcmpl-sim${seq}` : `msg_sim${seq}`,
    model: d.served ?? d.model,
    text,
    tool: toolResult ? null : d.tool,
    tokensIn,
    tokensOut,
  }
}

export function jsonResponse(wire: SimWire, r: Reply, d: Directives, createdS: number): Json {
  if (wire === 'anthropic') {
    const content: Json[] = r.tool
      ? [{ type: 'text', text: r.text }, { type: 'tool_use', id: `toolu_sim_${r.id}`, name: r.tool, input: { city: 'Paris' } }]
      : [{ type: 'text', text: r.text }]
    return {
      id: r.id,
      type: 'message',
      role: 'assistant',
      model: r.model,
      content,
      stop_reason: r.tool ? 'tool_use' : 'end_turn',
      stop_sequence: null,
      ...(d.noUsage ? {} : { usage: { input_tokens: r.tokensIn, output_tokens: r.tokensOut } }),
    }
  }
  const message: Json = r.tool
    ? { role: 'assistant', content: null, tool_calls: [{ id: `call_sim_${r.id}`, type: 'function', function: { name: r.tool, arguments: '{"city":"Paris"}' } }] }
    : { role: 'assistant', content: r.text }
  return {
    id: r.id,
    object: 'chat.completion',
    created: createdS,
    model: r.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: r.tool ? 'tool_calls' : 'stop' }],
    ...(d.noUsage ? {} : { usage: usage(r, d) }),
  }
}

function usage(r: Reply, d: Directives): Json {
  return {
    prompt_tokens: r.tokensIn,
    completion_tokens: r.tokensOut,
    total_tokens: r.tokensIn + r.tokensOut,
    ...(d.costUsd !== null ? { cost: d.costUsd } : {}),
  }
}

export function errorResponse(wire: SimWire, status: number, message: string): Json {
  const type = status === 429 ? 'rate_limit_error' : status === 401 ? 'authentication_error' : status >= 500 ? 'api_error' : 'invalid_request_error'
  if (wire === 'anthropic') return { type: 'error', error: { type: status === 529 ? 'overloaded_error' : type, message } }
  return { error: { message, type, code: status === 429 ? 'rate_limit_exceeded' : null } }
}

/** The events of a streamed reply, as SSE text frames, content split into `chunks` deltas. */
export function streamFrames(wire: SimWire, r: Reply, d: Directives, createdS: number, includeUsage: boolean): { frames: string[]; contentStart: number } {
  const pieces = split(r.text, Math.max(1, d.chunks))
  const frames: string[] = []
  if (wire === 'anthropic') {
    const ev = (type: string, data: Json) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`
    frames.push(ev('message_start', {
      message: { id: r.id, type: 'message', role: 'assistant', model: r.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: d.noUsage ? 0 : r.tokensIn, output_tokens: 1 } },
    }))
    frames.push(ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }))
    frames.push(ev('ping', {}))
    const contentStart = frames.length
    for (const piece of pieces) frames.push(ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: piece } }))
    frames.push(ev('content_block_stop', { index: 0 }))
    if (r.tool) {
      frames.push(ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: `toolu_sim_${r.id}`, name: r.tool, input: {} } }))
      frames.push(ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '{"city": "Paris"}' } }))
      frames.push(ev('content_block_stop', { index: 1 }))
    }
    frames.push(ev('message_delta', { delta: { stop_reason: r.tool ? 'tool_use' : 'end_turn', stop_sequence: null }, usage: { output_tokens: d.noUsage ? 0 : r.tokensOut } }))
    if (!d.noDone) frames.push(ev('message_stop', {}))
    return { frames, contentStart }
  }
  const chunk = (delta: Json, finish: string | null, extra: Json = {}) =>
    `data: ${JSON.stringify({ id: r.id, object: 'chat.completion.chunk', created: createdS, model: r.model, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...extra })}\n\n`
  frames.push(chunk({ role: 'assistant', content: '' }, null))
  const contentStart = frames.length
  for (const piece of pieces) frames.push(chunk({ content: piece }, null))
  if (r.tool) {
    frames.push(chunk({ tool_calls: [{ index: 0, id: `call_sim_${r.id}`, type: 'function', function: { name: r.tool, arguments: '{"city":"Paris"}' } }] }, null))
  }
  frames.push(chunk({}, r.tool ? 'tool_calls' : 'stop'))
  if (includeUsage && !d.noUsage) {
    frames.push(`data: ${JSON.stringify({ id: r.id, object: 'chat.completion.chunk', created: createdS, model: r.model, choices: [], usage: usage(r, d) })}\n\n`)
  }
  if (!d.noDone) frames.push('data: [DONE]\n\n')
  return { frames, contentStart }
}

function split(text: string, n: number): string[] {
  const size = Math.max(1, Math.ceil(text.length / n))
  const out: string[] = []
  for (let i = 0; i < n; i++) out.push(text.slice(i * size, (i + 1) * size))
  return out
}
