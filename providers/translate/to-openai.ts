/**
 * Translation into the OpenAI chat-completions wire format: an Anthropic
 * Messages request becomes a chat-completions request, and an Anthropic
 * `message` response becomes a `chat.completion`.
 * Pure functions over JSON; tested against documented fixtures.
 */
import { type Completion, countOrNull, isRecord } from '../types.ts'
import { reasoningFor } from './reasoning.ts'

type Json = Record<string, unknown>

/**
 * The request fields that go to an OpenAI-compatible upstream as they are (the same name and
 * meaning in both APIs). The rest is translated below or dropped: strict upstreams refuse a field
 * they do not know, and Anthropic's list grows (`cache_control`, `output_config`, ...).
 */
const SAME_IN_OPENAI = new Set(['temperature', 'top_p'])

/**
 * Anthropic Messages request -> OpenAI chat-completions request, for `provider` (whose own
 * reasoning, kept in the client's history as witness's thinking blocks, goes back to it).
 */
export function openaiRequestFromAnthropic(body: Json, model: string, provider?: string): Json {
  const messages: Json[] = []
  const system = anthropicText(body.system)
  if (system) messages.push({ role: 'system', content: system })

  for (const message of Array.isArray(body.messages) ? body.messages : []) {
    if (!isRecord(message)) continue
    const blocks: Json[] =
      typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : (Array.isArray(message.content) ? message.content.filter(isRecord) : [])
    if (message.role === 'assistant') {
      const text = blocks.filter((b) => b.type === 'text').map((b) => String(b.text ?? '')).join('')
      const toolCalls = blocks
        .filter((b) => b.type === 'tool_use')
        .map((b) => ({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } }))
      const reasoning = reasoningFor(blocks, provider)
      messages.push({ role: 'assistant', content: text || null, ...(reasoning ? { [reasoning.field]: reasoning.text } : {}), ...(toolCalls.length ? { tool_calls: toolCalls } : {}) })
    } else {
      // Tool results become `tool` messages; they must directly follow the assistant turn. A tool
      // message holds text only (a text document a tool returned joins it): an image or a PDF a tool
      // returned (a screenshot; Claude Code's Read) follows them in the user turn, and a failed call
      // says so in its text (OpenAI has no is_error).
      const returned: Json[] = []
      for (const block of blocks.filter((b) => b.type === 'tool_result')) {
        const carried = (Array.isArray(block.content) ? block.content.filter(isRecord) : []).filter((b) => b.type === 'image' || b.type === 'document').flatMap(openaiPart)
        const documents = carried.flatMap((p) => (p.type === 'text' ? [String(p.text)] : []))
        const text = [anthropicText(block.content), ...documents].filter((t) => t !== '').join('\n')
        messages.push({ role: 'tool', tool_call_id: block.tool_use_id, content: block.is_error === true ? `Error: ${text}` : text })
        returned.push(...carried.filter((p) => p.type !== 'text'))
      }
      const parts = [...returned, ...blocks.filter((b) => b.type !== 'tool_result').flatMap(openaiPart)]
      if (parts.length === 0) continue
      const onlyText = parts.every((p) => p.type === 'text')
      // Text blocks are apart (Claude Code sends its <system-reminder> as one before the prompt): one line each.
      messages.push({ role: 'user', content: onlyText ? parts.map((p) => p.text).join('\n') : parts })
    }
  }

  const out: Json = {}
  for (const [key, value] of Object.entries(body)) {
    if (SAME_IN_OPENAI.has(key) && value !== null) out[key] = value
  }
  out.model = model
  out.messages = messages
  if (typeof body.max_tokens === 'number') out.max_tokens = body.max_tokens
  if (Array.isArray(body.stop_sequences) && body.stop_sequences.length) out.stop = body.stop_sequences
  if (isRecord(body.metadata) && typeof body.metadata.user_id === 'string') out.user = body.metadata.user_id
  // Tools Anthropic defines (`web_search_20250305`, `bash_20250124`, ...) carry no schema: a server
  // tool runs at Anthropic, and the model elsewhere knows neither its input nor how to call it. As a
  // function without parameters it would be called with none, and the client could not run it.
  const tools = Array.isArray(body.tools) ? body.tools.filter(isRecord).filter((tool) => tool.type === undefined || tool.type === 'custom') : []
  if (tools.length) {
    out.tools = tools.map((tool) => ({
      type: 'function',
      function: {
        name: tool.name,
        ...(typeof tool.description === 'string' ? { description: tool.description } : {}),
        parameters: isRecord(tool.input_schema) ? tool.input_schema : { type: 'object', properties: {} },
      },
    }))
  }
  // A choice goes only with the tools it chooses among: OpenAI refuses `tool_choice` without `tools`,
  // and one naming a tool left out above (Anthropic's own) is left to the model.
  const named = new Set(tools.map((tool) => tool.name))
  if (isRecord(body.tool_choice) && tools.length) {
    const c = body.tool_choice
    if (c.type === 'auto') out.tool_choice = 'auto'
    else if (c.type === 'any') out.tool_choice = 'required'
    else if (c.type === 'none') out.tool_choice = 'none'
    else if (c.type === 'tool' && named.has(c.name)) out.tool_choice = { type: 'function', function: { name: c.name } }
    if (c.disable_parallel_tool_use === true) out.parallel_tool_calls = false
  }
  const schema = outputSchemaOf(body)
  if (schema) out.response_format = { type: 'json_schema', json_schema: { name: 'output', schema, strict: true } }
  return out
}

/** An Anthropic content block as an OpenAI content part: text, an image, or a document's text (none for the rest). */
function openaiPart(b: Json): Json[] {
  if (b.type === 'text') return [{ type: 'text', text: b.text }]
  const s = isRecord(b.source) ? b.source : null
  // One given by an id of Anthropic's Files API goes as a file id: no other provider knows it, so the
  // step fails (and its row says why) rather than the model answering without it.
  if ((b.type === 'document' || b.type === 'image') && s?.type === 'file' && typeof s.file_id === 'string') return [{ type: 'file', file: { file_id: s.file_id } }]
  if (b.type === 'image' && s) {
    const url = s.type === 'base64' ? `data:${s.media_type};base64,${s.data}` : s.url
    return typeof url === 'string' ? [{ type: 'image_url', image_url: { url } }] : []
  }
  const title = typeof b.title === 'string' && b.title ? b.title : null
  // A plain-text document goes as its text, and so does one given as content blocks.
  const text = b.type === 'document' ? (s?.type === 'text' && typeof s.data === 'string' ? s.data : s?.type === 'content' ? anthropicText(s.content) : null) : null
  if (text !== null) return [{ type: 'text', text: title ? `${title}\n\n${text}` : text }]
  // A PDF goes as a file part (OpenAI, OpenRouter, Gemini), by its data or its URL (OpenRouter takes
  // one). An upstream that takes neither refuses the request, and the row says so; dropping it, the
  // model would answer without having read it.
  if (b.type === 'document' && s?.type === 'base64' && typeof s.data === 'string') {
    const mediaType = typeof s.media_type === 'string' ? s.media_type : 'application/pdf'
    return [{ type: 'file', file: { filename: title ?? 'document.pdf', file_data: `data:${mediaType};base64,${s.data}` } }]
  }
  if (b.type === 'document' && s?.type === 'url' && typeof s.url === 'string') return [{ type: 'file', file: { filename: title ?? 'document.pdf', file_data: s.url } }]
  return []
}

/**
 * The schema of Anthropic structured outputs (`output_config.format`, or the beta's
 * `output_format`), which becomes OpenAI's `response_format` (strict, as Anthropic's always is).
 */
function outputSchemaOf(body: Json): Json | undefined {
  const format = isRecord(body.output_config) && body.output_config.format !== undefined ? body.output_config.format : body.output_format
  return isRecord(format) && format.type === 'json_schema' && isRecord(format.schema) ? format.schema : undefined
}

/** Any completion as an OpenAI `chat.completion` (passed through when it already is one). */
export function completionAsOpenAI(completion: Completion, createdS: number): Json {
  return completion.wire === 'openai' ? completion.body : openaiCompletionFromAnthropic(completion.body, createdS)
}

/** Anthropic `message` -> OpenAI `chat.completion`. */
export function openaiCompletionFromAnthropic(message: Json, createdS: number): Json {
  const blocks = Array.isArray(message.content) ? message.content.filter(isRecord) : []
  const text = blocks.filter((b) => b.type === 'text').map((b) => String(b.text ?? '')).join('')
  // Extended thinking, in the field Kimi, DeepSeek and LiteLLM use (OpenAI's API has none). Its
  // signature has no place there, so Anthropic will not take it back (to-anthropic.ts, thinkingUnmet).
  const reasoning = blocks.filter((b) => b.type === 'thinking' && typeof b.thinking === 'string').map((b) => b.thinking).join('')
  const toolCalls = blocks
    .filter((b) => b.type === 'tool_use')
    .map((b) => ({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } }))
  const usage = isRecord(message.usage) ? message.usage : {}
  const tokensIn = anthropicInputTokens(usage)
  const tokensOut = countOrNull(usage.output_tokens)
  const told = openaiUsageOf(tokensIn, tokensOut, anthropicCacheReads(usage))
  return {
    id: message.id,
    object: 'chat.completion',
    created: createdS,
    model: message.model,
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: text || null,
          ...(reasoning ? { reasoning_content: reasoning } : {}),
          ...(toolCalls.length ? { tool_calls: toolCalls } : {}),
        },
        finish_reason: finishFromStopReason(message.stop_reason),
        logprobs: null,
      },
    ],
    ...(told ? { usage: told } : {}),
  }
}

/** Anthropic stop_reason -> OpenAI finish_reason. */
export function finishFromStopReason(reason: unknown): string | null {
  switch (reason) {
    case 'end_turn':
    case 'stop_sequence':
    case 'pause_turn': return 'stop'
    case 'max_tokens':
    case 'model_context_window_exceeded': return 'length'
    case 'tool_use': return 'tool_calls'
    case 'refusal': return 'content_filter'
    case null:
    case undefined: return null
    default: return 'stop'
  }
}

/** Input tokens Anthropic read from its cache (null when it says nothing of a cache). */
export function anthropicCacheReads(usage: Record<string, unknown>): number | null {
  return countOrNull(usage.cache_read_input_tokens)
}

/**
 * OpenAI usage: prompt tokens include those read from the cache, which `prompt_tokens_details.cached_tokens` counts.
 * Null when the upstream reported neither count: OpenAI's `usage` is optional, and a client told 0 would
 * disagree with the row (NULL). One count alone is told with 0 for the other.
 */
export function openaiUsageOf(tokensIn: number | null, tokensOut: number | null, cachedIn: number | null): Json | null {
  if (tokensIn === null && tokensOut === null) return null
  const usage: Json = { prompt_tokens: tokensIn ?? 0, completion_tokens: tokensOut ?? 0, total_tokens: (tokensIn ?? 0) + (tokensOut ?? 0) }
  if (cachedIn !== null) usage.prompt_tokens_details = { cached_tokens: cachedIn }
  return usage
}

/** All input tokens Anthropic reports: plain, cache writes and cache reads. */
export function anthropicInputTokens(usage: Record<string, unknown>): number | null {
  const input = countOrNull(usage.input_tokens)
  if (input === null) return null
  return countOrNull(input + (countOrNull(usage.cache_creation_input_tokens) ?? 0) + (countOrNull(usage.cache_read_input_tokens) ?? 0))
}

/** The text of an Anthropic `system` or `content` field (string or blocks): its text blocks, a line apart. */
export function anthropicText(value: unknown): string {
  if (typeof value === 'string') return value
  if (!Array.isArray(value)) return ''
  return value.flatMap((b) => (isRecord(b) && typeof b.text === 'string' ? [b.text] : [])).join('\n')
}
