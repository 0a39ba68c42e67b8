/**
 * What a step of the other wire could not carry of a request. Translated
 * toward Anthropic, these parts of an OpenAI-format request would be left
 * out, and the model would answer a question it was not asked (an audio
 * clip, a file given by its id, functions it could not call) or the client
 * would not get what it asked for (several choices, log probabilities,
 * spoken audio), with a 200 all the same. Such a step is skipped without a
 * call (src/router/chain.ts), as one without its API key is: a fallback row
 * says why, and the next step may take the request.
 *
 * What the other API does without, and the answer barely changes, is still
 * translated or dropped (to-anthropic.ts): a `json_object` format (the
 * prompt asks for JSON), a seed, penalties.
 */
import { type Wire, isRecord } from '../types.ts'
import { base64DataUrl } from './to-anthropic.ts'

/** Why a step of wire `to` cannot take `body` (sent as `from`), or null when it can. */
export function untranslatable(body: Record<string, unknown>, from: Wire, to: Wire): string | null {
  if (from !== 'openai' || to !== 'anthropic') return null
  if (typeof body.n === 'number' && body.n > 1) return `n: ${body.n} (Anthropic answers one choice)`
  if (body.logprobs === true || (typeof body.top_logprobs === 'number' && body.top_logprobs > 0)) return 'logprobs (Anthropic gives none)'
  if (Array.isArray(body.modalities) && body.modalities.includes('audio')) return 'audio output (Anthropic answers text)'
  if (Array.isArray(body.functions) && body.functions.length > 0 && !Array.isArray(body.tools)) return 'the legacy functions (send tools)'
  const messages = Array.isArray(body.messages) ? body.messages : []
  for (const [i, message] of messages.entries()) {
    // A tool result Anthropic cannot pair with its call (some upstreams take one without an id).
    if (isRecord(message) && message.role === 'tool' && (typeof message.tool_call_id !== 'string' || message.tool_call_id === '')) return `a tool message without its tool_call_id (messages[${i}])`
    // Text of the other roles is read as text; a user turn's parts become blocks (to-anthropic.ts userBlocks).
    if (!isRecord(message) || ['system', 'developer', 'assistant', 'tool'].includes(message.role as string) || !Array.isArray(message.content)) continue
    for (const [j, part] of message.content.entries()) {
      if (!isRecord(part)) continue
      if (part.type === 'input_audio') return `input_audio content (messages[${i}].content[${j}])`
      if (part.type === 'file' && !(isRecord(part.file) && typeof part.file.file_data === 'string' && base64DataUrl(part.file.file_data))) {
        return `a file by its id (messages[${i}].content[${j}]: Anthropic takes its data)`
      }
    }
  }
  return null
}
