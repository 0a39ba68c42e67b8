/**
 * Translation into the Anthropic Messages wire format: an OpenAI
 * chat-completions request becomes a Messages request, and an OpenAI
 * `chat.completion` response becomes an Anthropic `message`.
 * Pure functions over JSON; tested against documented fixtures.
 */
import { openaiCachedTokens, openaiUsage } from '../openai-usage.ts'
import { type Completion, isNonEmptyString, isRecord } from '../types.ts'
import { isWitnessThinking, reasoningOf, reasoningSignature } from './reasoning.ts'

type Json = Record<string, unknown>

/** max_tokens for an OpenAI client's request that sets none (a provider's default_max_tokens overrides it). */
export const DEFAULT_MAX_TOKENS = 4096

/**
 * The request fields that go to Anthropic as they are: the same name and meaning in both APIs
 * (`top_p`), or Messages fields a client sends on purpose (`top_k`, `thinking`; `stop_sequences` joins `stop`).
 * The rest is translated below or dropped: the Messages API refuses a field it does not know
 * ("Extra inputs are not permitted"), and OpenAI's list grows (`prompt_cache_key`,
 * `safety_identifier`, `verbosity`, ...), so a deny-list let each new one fail the fallback.
 */
const SAME_IN_ANTHROPIC = new Set(['top_p', 'top_k', 'thinking'])

/** OpenAI chat-completions request -> Anthropic Messages request (`maxTokens` when the client set none). */
export function anthropicRequestFromOpenAI(body: Json, model: string, maxTokens = DEFAULT_MAX_TOKENS): Json {
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
    } else {
      // The user's, and a role Anthropic has no counterpart for (`function`, OpenAI's old tool
      // result; Llama's `ipython`): that speaks to the model all the same, so it goes as the user's.
      push('user', userBlocks(message.content))
    }
  }

  const out: Json = { model, messages }
  // A null is unsaid (openai-node sends its nullable fields so), as for temperature below; the Messages API takes no null there.
  for (const [key, value] of Object.entries(body)) {
    if (SAME_IN_ANTHROPIC.has(key) && value !== null) out[key] = value
  }
  // A conversation of system messages alone (OpenAI answers it) has no turn for Anthropic, which
  // requires one: the instructions are the user's turn then.
  if (messages.length === 0 && system.some((text) => text !== '')) messages.push({ role: 'user', content: [{ type: 'text', text: system.join('\n\n') }] })
  else if (system.length) out.system = system.join('\n\n')
  out.max_tokens = firstNumber(body.max_completion_tokens, body.max_tokens) ?? maxTokens
  if (typeof body.temperature === 'number') out.temperature = Math.min(1, body.temperature)
  // Anthropic refuses a stop sequence of whitespace alone (OpenAI's completion-style "\n"): left out.
  const stops = [body.stop, body.stop_sequences].flat().filter((stop) => typeof stop === 'string' && stop.trim() !== '')
  if (stops.length) out.stop_sequences = stops
  // Anthropic's metadata holds only user_id (OpenAI's is any key-value map, for stored completions).
  const userId = typeof body.user === 'string' ? body.user : isRecord(body.metadata) && typeof body.metadata.user_id === 'string' ? body.metadata.user_id : null
  if (userId !== null) out.metadata = { user_id: userId }

  if (Array.isArray(body.tools)) {
    // Function tools only: a custom tool (free-form input, `type: "custom"`) has no schema Anthropic could take.
    out.tools = body.tools.filter((tool): tool is Json => isRecord(tool) && (tool.type === undefined || tool.type === 'function')).map((tool) => {
      const fn = isRecord(tool.function) ? tool.function : {}
      return {
        name: fn.name,
        ...(typeof fn.description === 'string' ? { description: fn.description } : {}),
        input_schema: isRecord(fn.parameters) ? fn.parameters : { type: 'object', properties: {} },
      }
    })
  }
  // OpenAI's allowed_tools: the model may call only the tools it names (`required`: one of them), the
  // rest of `tools` staying in the prompt's cache there. Anthropic has no such list: the others are left out.
  const allowed = allowedTools(body.tool_choice)
  if (allowed && Array.isArray(out.tools)) out.tools = out.tools.filter((tool) => isRecord(tool) && allowed.names.has(tool.name as string))
  // Anthropic refuses a tool_choice without tools (openai-node clients set parallel_tool_calls on every call).
  const choice = Array.isArray(out.tools) && out.tools.length > 0 ? toolChoice(allowed ? allowed.mode : body.tool_choice, body.parallel_tool_calls) : undefined
  if (Array.isArray(out.tools) && out.tools.length === 0) delete out.tools
  if (choice) out.tool_choice = choice
  const format = outputFormatOf(body.response_format)
  if (format) out.output_config = { format }
  // An OpenAI client never has the thinking blocks Anthropic signed (its answers carry none).
  if (thinkingUnmet(out.thinking, messages)) delete out.thinking
  return out
}

/**
 * Whether `thinking` is on while the last assistant turn is a tool call that does not begin with a
 * thinking block: Anthropic refuses that ("a final assistant message must start with a thinking
 * block"), so the second turn of a tool loop would fail. That turn goes without extended thinking.
 * Off (`disabled`) is left as it is: dropping it would turn thinking back on where that is the default.
 */
function thinkingUnmet(thinking: unknown, messages: readonly unknown[]): boolean {
  if (!isRecord(thinking) || thinking.type === 'disabled') return false
  const last = messages.findLast((m) => isRecord(m) && m.role === 'assistant')
  const blocks = isRecord(last) && Array.isArray(last.content) ? last.content.filter(isRecord) : []
  return blocks.some((b) => b.type === 'tool_use') && blocks[0]?.type !== 'thinking' && blocks[0]?.type !== 'redacted_thinking'
}

/**
 * OpenAI structured outputs (`response_format` of type `json_schema`) as Anthropic's
 * (`output_config.format`): the answer is then a text block holding JSON that matches the schema,
 * as from OpenAI. `json_object` has no counterpart and is left out: OpenAI itself requires the
 * messages to ask for JSON with it, so the prompt already does.
 */
function outputFormatOf(format: unknown): Json | undefined {
  if (!isRecord(format) || format.type !== 'json_schema' || !isRecord(format.json_schema) || !isRecord(format.json_schema.schema)) return undefined
  return { type: 'json_schema', schema: format.json_schema.schema }
}

/** Any completion as an Anthropic `message` (passed through when it already is one); `provider` served it. */
export function completionAsAnthropic(completion: Completion, provider: string): Json {
  return completion.wire === 'anthropic' ? completion.body : anthropicMessageFromOpenAI(completion.body, provider)
}

/** OpenAI `chat.completion` -> Anthropic `message` (first choice); `provider`'s reasoning becomes a thinking block. */
export function anthropicMessageFromOpenAI(completion: Json, provider: string): Json {
  const choice = Array.isArray(completion.choices) && isRecord(completion.choices[0]) ? completion.choices[0] : {}
  const message = isRecord(choice.message) ? choice.message : {}
  const content: Json[] = []
  const reasoning = reasoningOf(message)
  if (reasoning) content.push({ type: 'thinking', thinking: reasoning.text, signature: reasoningSignature(provider, reasoning.field) })
  // A refusal comes as its own field, the content null: its text is the answer, and the stop reason says so.
  const refusal = isNonEmptyString(message.refusal) ? message.refusal : null
  const text = textOf(message.content) + (refusal ?? '')
  if (text) content.push({ type: 'text', text })
  for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
    if (!isRecord(call) || !isRecord(call.function)) continue
    // Anthropic clients answer a call by its id: one sent empty (Gemini) gets one.
    const id = isNonEmptyString(call.id) ? call.id : newToolUseId()
    content.push({ type: 'tool_use', id, name: call.function.name, input: parseArguments(call.function.arguments) })
  }
  const calls = content.some((block) => block.type === 'tool_use')
  const usage = isRecord(completion.usage) ? completion.usage : {}
  // Output as the row counts it (its reasoning added where a layer left it out), so client and row agree.
  const counted = openaiUsage(usage)
  return {
    id: isNonEmptyString(completion.id) ? completion.id : newMessageId(),
    type: 'message',
    role: 'assistant',
    model: completion.model,
    content,
    stop_reason: stopReasonFromFinish(choice.finish_reason, calls, refusal !== null),
    stop_sequence: null,
    usage: anthropicUsageOf(
      counted.tokensIn ?? 0,
      counted.tokensOut ?? 0,
      openaiCachedTokens(usage),
    ),
  }
}

/** Anthropic usage: `input_tokens` leaves out what was read from the cache, which `cache_read_input_tokens` counts. */
export function anthropicUsageOf(promptTokens: number, outputTokens: number, cached: number | null): Json {
  if (cached === null) return { input_tokens: promptTokens, output_tokens: outputTokens }
  return { input_tokens: Math.max(0, promptTokens - cached), cache_read_input_tokens: cached, output_tokens: outputTokens }
}

/**
 * OpenAI finish_reason -> Anthropic stop_reason. An answer that calls tools stops for `tool_use`
 * whatever its finish_reason: Gemini's OpenAI endpoint, and OpenAI itself when `tool_choice` names
 * a function, say `stop`, and Anthropic clients run their tools only on `tool_use`; so does one
 * that says no reason at all (a Messages answer always has one). One that refused (OpenAI's
 * `refusal` field), and called none, stops for `refusal`.
 */
export function stopReasonFromFinish(reason: unknown, calledTools = false, refused = false): string {
  if (refused && !calledTools) return 'refusal'
  if (calledTools && reason !== 'length' && reason !== 'content_filter') return 'tool_use'
  switch (reason) {
    case 'length': return 'max_tokens'
    case 'tool_calls':
    case 'function_call': return 'tool_use'
    case 'content_filter': return 'refusal'
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
    } else if (part.type === 'file' && isRecord(part.file)) {
      const document = documentBlock(part.file)
      if (document) blocks.push(document)
    }
  }
  return blocks
}

/**
 * An OpenAI file part's inline data as a document: a PDF as it is, a text (or JSON) file as its
 * text (the only base64 document Anthropic takes is a PDF), an image as an image. A file id means
 * nothing to Anthropic.
 */
function documentBlock(file: Json): Json | null {
  const data = typeof file.file_data === 'string' ? base64DataUrl(file.file_data) : null
  if (!data) return null
  const { mediaType, base64 } = data
  if (mediaType.startsWith('image/')) return { type: 'image', source: { type: 'base64', media_type: mediaType, data: base64 } }
  const title = typeof file.filename === 'string' && file.filename ? { title: file.filename } : {}
  const source = isTextMediaType(mediaType)
    ? { type: 'text', media_type: 'text/plain', data: Buffer.from(base64, 'base64').toString('utf8') }
    : { type: 'base64', media_type: mediaType, data: base64 }
  return { type: 'document', source, ...title }
}

/** Whether a file of this type goes to Anthropic as its text (the only base64 document it takes is a PDF). */
export function isTextMediaType(mediaType: string): boolean {
  return mediaType.startsWith('text/') || mediaType === 'application/json' || mediaType.endsWith('+json')
}

/** An id for a message whose upstream sent none (Anthropic's `message.id` is required). */
export function newMessageId(): string {
  return `msg_${Bun.randomUUIDv7('hex')}`
}

/** An id for a tool call sent without one: Anthropic clients answer a call by its id. */
export function newToolUseId(): string {
  return `toolu_${Bun.randomUUIDv7('hex')}`
}

function imageBlock(url: string): Json {
  const data = base64DataUrl(url)
  if (data) return { type: 'image', source: { type: 'base64', media_type: data.mediaType, data: data.base64 } }
  return { type: 'image', source: { type: 'url', url } }
}

/** `data:<type>[;param=…]…;base64,<data>`, its media type lower-cased; null for anything else. */
export function base64DataUrl(url: string): { mediaType: string; base64: string } | null {
  const data = /^data:([^;,]+)(?:;[^;,]*)*;base64,(.*)$/is.exec(url)
  return data ? { mediaType: data[1]!.toLowerCase(), base64: data[2]! } : null
}

/** The text of an OpenAI content field (string or parts): its text parts, and an assistant turn's `refusal` part. */
export function textOf(content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  return content
    .map((part) => (!isRecord(part) ? '' : typeof part.text === 'string' ? part.text : part.type === 'refusal' && typeof part.refusal === 'string' ? part.refusal : ''))
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

/** OpenAI's `tool_choice: { type: 'allowed_tools', allowed_tools: { mode, tools } }`: the names it allows and its mode, or null. */
function allowedTools(choice: unknown): { names: Set<string>; mode: 'auto' | 'required' } | null {
  if (!isRecord(choice) || choice.type !== 'allowed_tools' || !isRecord(choice.allowed_tools)) return null
  const { mode, tools } = choice.allowed_tools
  const names = (Array.isArray(tools) ? tools : []).map((tool) => (isRecord(tool) && isRecord(tool.function) ? tool.function.name : isRecord(tool) ? tool.name : undefined))
  return { names: new Set(names.filter((name): name is string => typeof name === 'string')), mode: mode === 'required' ? 'required' : 'auto' }
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
 * An Anthropic request whose history Anthropic accepts. An Anthropic client's history may hold
 * what another provider's turns made through witness: tool ids (Kimi hands out
 * `functions.get_weather:0`) and thinking blocks made from its reasoning (reasoning.ts). Sent on as
 * they are, the fallback to an Anthropic step fails with a 400, so the ids are rewritten and those
 * blocks left out. The body is returned as it is when nothing needs it.
 */
export function acceptedByAnthropic(body: Json): Json {
  if (!Array.isArray(body.messages)) return body
  const fixBlock = (block: unknown): unknown => {
    if (!isRecord(block)) return block
    if (block.type === 'tool_use' && anthropicToolId(block.id) !== block.id) return { ...block, id: anthropicToolId(block.id) }
    if (block.type === 'tool_result' && anthropicToolId(block.tool_use_id) !== block.tool_use_id) return { ...block, tool_use_id: anthropicToolId(block.tool_use_id) }
    return block
  }
  let changed = false
  const messages = body.messages.flatMap((message: unknown) => {
    if (!isRecord(message) || !Array.isArray(message.content)) return [message]
    if (!message.content.some((block) => isWitnessThinking(block) || (isRecord(block) && (block.type === 'tool_use' || block.type === 'tool_result')))) return [message]
    // Thinking blocks witness made from another provider's reasoning: Anthropic refuses their signature.
    const content = message.content.filter((block) => !isWitnessThinking(block)).map(fixBlock)
    if (content.length === message.content.length && content.every((block, i) => block === (message.content as unknown[])[i])) return [message]
    changed = true
    // A turn that was nothing but such reasoning goes whole (Anthropic refuses an empty one, and joins the turns around it).
    return content.length ? [{ ...message, content }] : []
  })
  if (!changed) return body
  // The blocks left out may have been what began the tool loop's last turn: then thinking goes too.
  const out: Json = { ...body, messages }
  if (thinkingUnmet(out.thinking, messages)) delete out.thinking
  return out
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
