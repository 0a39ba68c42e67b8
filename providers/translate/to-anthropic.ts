/**
 * Translation into the Anthropic Messages wire format: an OpenAI
 * chat-completions request becomes a Messages request, and an OpenAI
 * `chat.completion` response becomes an Anthropic `message`.
 * Pure functions over JSON; tested against documented fixtures.
 */
import { type Completion, isRecord } from '../types.ts'

type Json = Record<string, unknown>

const DEFAULT_MAX_TOKENS = 4096

/** Fields with no Anthropic equivalent; dropped rather than sent to fail. */
const OPENAI_ONLY = new Set([
  'n', 'logprobs', 'top_logprobs', 'seed', 'frequency_penalty', 'presence_penalty', 'logit_bias',
  'response_format', 'stream_options', 'user', 'parallel_tool_calls', 'service_tier', 'store',
  'max_completion_tokens', 'modalities', 'prediction', 'reasoning_effort', 'messages', 'tools',
  'tool_choice', 'stop', 'max_tokens', 'model', 'functions', 'function_call', 'web_search_options',
])

/** OpenAI chat-completions request -> Anthropic Messages request. */
export function anthropicRequestFromOpenAI(body: Json, model: string): Json {
  const system: string[] = []
  const messages: { role: 'user' | 'assistant'; content: Json[] }[] = []
  const push = (role: 'user' | 'assistant', blocks: Json[]) => {
    if (blocks.length === 0) return
    const last = messages.at(-1)
    if (last && last.role === role) last.content.push(...blocks)
    else messages.push({ role, content: blocks })
  }

  for (const message of Array.isArray(body.messages) ? body.messages : []) {
    if (!isRecord(message)) continue
    const role = message.role
    if (role === 'system' || role === 'developer') {
      system.push(textOf(message.content))
    } else if (role === 'user') {
      push('user', userBlocks(message.content))
    } else if (role === 'assistant') {
      const blocks: Json[] = []
      const text = textOf(message.content)
      if (text) blocks.push({ type: 'text', text })
      for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
        if (!isRecord(call) || !isRecord(call.function)) continue
        blocks.push({
          type: 'tool_use',
          id: anthropicToolId(call.id),
          name: call.function.name,
          input: parseArguments(call.function.arguments),
        })
      }
      push('assistant', blocks)
    } else if (role === 'tool') {
      push('user', [{ type: 'tool_result', tool_use_id: anthropicToolId(message.tool_call_id), content: textOf(message.content) }])
    }
  }

  const out: Json = { model, messages }
  for (const [key, value] of Object.entries(body)) {
    if (!OPENAI_ONLY.has(key)) out[key] = value
  }
  if (system.length) out.system = system.join('\n\n')
  out.max_tokens = firstNumber(body.max_completion_tokens, body.max_tokens) ?? DEFAULT_MAX_TOKENS
  if (typeof body.temperature === 'number') out.temperature = Math.min(1, body.temperature)
  if (typeof body.stop === 'string') out.stop_sequences = [body.stop]
  else if (Array.isArray(body.stop)) out.stop_sequences = body.stop
  if (typeof body.user === 'string') out.metadata = { ...(isRecord(body.metadata) ? body.metadata : {}), user_id: body.user }

  if (Array.isArray(body.tools)) {
    out.tools = body.tools.filter(isRecord).map((tool) => {
      const fn = isRecord(tool.function) ? tool.function : {}
      return {
        name: fn.name,
        ...(typeof fn.description === 'string' ? { description: fn.description } : {}),
        input_schema: isRecord(fn.parameters) ? fn.parameters : { type: 'object', properties: {} },
      }
    })
  }
  const choice = toolChoice(body.tool_choice, body.parallel_tool_calls)
  if (choice) out.tool_choice = choice
  return out
}

/** Any completion as an Anthropic `message` (passed through when it already is one). */
export function completionAsAnthropic(completion: Completion): Json {
  return completion.wire === 'anthropic' ? completion.body : anthropicMessageFromOpenAI(completion.body)
}

/** OpenAI `chat.completion` -> Anthropic `message` (first choice). */
export function anthropicMessageFromOpenAI(completion: Json): Json {
  const choice = Array.isArray(completion.choices) && isRecord(completion.choices[0]) ? completion.choices[0] : {}
  const message = isRecord(choice.message) ? choice.message : {}
  const content: Json[] = []
  const text = textOf(message.content)
  if (text) content.push({ type: 'text', text })
  for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
    if (!isRecord(call) || !isRecord(call.function)) continue
    content.push({ type: 'tool_use', id: call.id, name: call.function.name, input: parseArguments(call.function.arguments) })
  }
  const usage = isRecord(completion.usage) ? completion.usage : {}
  return {
    id: completion.id,
    type: 'message',
    role: 'assistant',
    model: completion.model,
    content,
    stop_reason: stopReasonFromFinish(choice.finish_reason),
    stop_sequence: null,
    usage: {
      input_tokens: typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0,
      output_tokens: typeof usage.completion_tokens === 'number' ? usage.completion_tokens : 0,
    },
  }
}

/** OpenAI finish_reason -> Anthropic stop_reason. */
export function stopReasonFromFinish(reason: unknown): string | null {
  switch (reason) {
    case 'stop': return 'end_turn'
    case 'length': return 'max_tokens'
    case 'tool_calls':
    case 'function_call': return 'tool_use'
    case 'content_filter': return 'refusal'
    case null:
    case undefined: return null
    default: return 'end_turn'
  }
}

function userBlocks(content: unknown): Json[] {
  if (typeof content === 'string') return content ? [{ type: 'text', text: content }] : []
  if (!Array.isArray(content)) return []
  const blocks: Json[] = []
  for (const part of content) {
    if (!isRecord(part)) continue
    if (part.type === 'text' && typeof part.text === 'string') blocks.push({ type: 'text', text: part.text })
    else if (part.type === 'image_url') {
      const url = isRecord(part.image_url) ? part.image_url.url : part.image_url
      if (typeof url === 'string') blocks.push(imageBlock(url))
    }
  }
  return blocks
}

function imageBlock(url: string): Json {
  const data = /^data:([^;,]+);base64,(.*)$/s.exec(url)
  if (data) return { type: 'image', source: { type: 'base64', media_type: data[1], data: data[2] } }
  return { type: 'image', source: { type: 'url', url } }
}

/** The text of an OpenAI content field (string or parts). */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return content
    .map((part) => (isRecord(part) && typeof part.text === 'string' ? part.text : ''))
    .join('')
}

function parseArguments(args: unknown): unknown {
  if (isRecord(args)) return args
  if (typeof args !== 'string' || args.trim() === '') return {}
  try {
    return JSON.parse(args)
  } catch {
    return { _raw: args }
  }
}

function toolChoice(choice: unknown, parallel: unknown): Json | undefined {
  const extra = parallel === false ? { disable_parallel_tool_use: true } : {}
  if (choice === 'auto') return { type: 'auto', ...extra }
  if (choice === 'none') return { type: 'none' }
  if (choice === 'required') return { type: 'any', ...extra }
  if (isRecord(choice) && isRecord(choice.function)) return { type: 'tool', name: choice.function.name, ...extra }
  return parallel === false ? { type: 'auto', ...extra } : undefined
}

function firstNumber(...values: unknown[]): number | undefined {
  for (const value of values) if (typeof value === 'number') return value
  return undefined
}

/**
 * A tool call id as Anthropic accepts it (`^[a-zA-Z0-9_-]+$`). Other providers' ids (Kimi's
 * `functions.get_weather:0`) would be refused, so a conversation that used tools could not fall
 * back to an Anthropic step. Other characters become `_`, with a short hash of the id so two ids
 * never meet; the same id always maps the same way, in its call and in its result.
 */
export function anthropicToolId(id: unknown): unknown {
  if (typeof id !== 'string' || /^[a-zA-Z0-9_-]+$/.test(id)) return id
  return `${id.replace(/[^a-zA-Z0-9_-]/g, '_')}_${Bun.hash(id).toString(36).slice(0, 8)}`
}
