/**
 * What a step of the other wire could not carry of a request. Translated
 * toward Anthropic, these parts of an OpenAI-format request would be left
 * out, and the model would answer a question it was not asked (an audio
 * clip, a file given by its id, tools it could not call) or the client
 * would not get what it asked for (several choices, log probabilities,
 * spoken audio), with a 200 all the same; or Anthropic would refuse what
 * it was sent (a document type it does not read, a tool result with no
 * call), a 502 for the client. Such a step is skipped without a call
 * (src/router/chain.ts), as one without its API key is: a fallback row
 * says why, and the next step may take the request. When no step can, the
 * client is told (400).
 *
 * What the other API does without, and the answer barely changes, is still
 * translated or dropped (to-anthropic.ts): a `json_object` format (the
 * prompt asks for JSON), a seed, penalties.
 */
import { type Wire, isRecord } from '../types.ts'
import { base64DataUrl, isTextMediaType } from './to-anthropic.ts'

/** The image types the Messages API reads. */
const ANTHROPIC_IMAGES = new Set(['image/jpeg', 'image/png', 'image/gif', 'image/webp'])

/** Why a step of wire `to` cannot take `body` (sent as `from`), or null when it can. */
export function untranslatable(body: Record<string, unknown>, from: Wire, to: Wire): string | null {
  if (from !== 'openai' || to !== 'anthropic') return null
  if (typeof body.n === 'number' && body.n > 1) return `n: ${body.n} (Anthropic answers one choice)`
  if (body.logprobs === true || (typeof body.top_logprobs === 'number' && body.top_logprobs > 0)) return 'logprobs (Anthropic gives none)'
  if (Array.isArray(body.modalities) && body.modalities.includes('audio')) return 'audio output (Anthropic answers text)'
  if (Array.isArray(body.functions) && body.functions.length > 0) return 'the legacy functions (send tools)'
  const tools = Array.isArray(body.tools) ? body.tools : []
  for (const [i, tool] of tools.entries()) {
    if (isRecord(tool) && tool.type !== undefined && tool.type !== 'function') return `a ${String(tool.type)} tool (tools[${i}]: Anthropic takes function tools)`
  }
  if (isRecord(body.tool_choice) && body.tool_choice.type !== undefined && !['function', 'allowed_tools'].includes(body.tool_choice.type as string)) {
    return `a tool_choice of type ${String(body.tool_choice.type)}`
  }
  const messages = Array.isArray(body.messages) ? body.messages : []
  for (const [i, message] of messages.entries()) {
    const why = messageProblem(message, `messages[${i}]`)
    if (why) return why
  }
  return null
}

/** What of one message Anthropic cannot be given, or null. */
function messageProblem(message: unknown, path: string): string | null {
  if (!isRecord(message)) return null
  if (message.role === 'assistant') {
    // The result that follows would point at a call Anthropic never saw, which it refuses.
    if (isRecord(message.function_call)) return `a legacy function_call (${path})`
    for (const [j, call] of (Array.isArray(message.tool_calls) ? message.tool_calls : []).entries()) {
      if (isRecord(call) && call.type !== undefined && call.type !== 'function') return `a ${String(call.type)} tool call (${path}.tool_calls[${j}])`
    }
    return null
  }
  // A tool result Anthropic cannot pair with its call (some upstreams take one without an id).
  if (message.role === 'tool') return typeof message.tool_call_id === 'string' && message.tool_call_id !== '' ? null : `a tool message without its tool_call_id (${path})`
  // Text of the other roles is read as text; a user turn's parts become blocks (to-anthropic.ts userBlocks).
  if (['system', 'developer'].includes(message.role as string) || !Array.isArray(message.content)) return null
  for (const [j, part] of message.content.entries()) {
    const why = partProblem(part)
    if (why) return `${why} (${path}.content[${j}])`
  }
  return null
}

/** What of a user turn's content part Anthropic cannot be given, or null. */
function partProblem(part: unknown): string | null {
  if (!isRecord(part)) return null
  if (part.type === 'input_audio') return 'input_audio content'
  if (part.type === 'file') {
    const data = isRecord(part.file) && typeof part.file.file_data === 'string' ? base64DataUrl(part.file.file_data) : null
    if (!data) return 'a file given by its id or without a data URL (Anthropic takes the file itself, as data:…;base64,…)'
    const { mediaType } = data
    const readable = mediaType === 'application/pdf' || isTextMediaType(mediaType) || ANTHROPIC_IMAGES.has(mediaType)
    return readable ? null : `a file of type ${mediaType} (Anthropic reads PDF, text and images)`
  }
  if (part.type === 'image_url') {
    const url = isRecord(part.image_url) ? part.image_url.url : part.image_url
    if (typeof url !== 'string' || !url.startsWith('data:')) return null
    const data = base64DataUrl(url)
    if (!data || !ANTHROPIC_IMAGES.has(data.mediaType)) return `an image of type ${data?.mediaType ?? 'not base64'} (Anthropic reads JPEG, PNG, GIF and WebP)`
  }
  return null
}
