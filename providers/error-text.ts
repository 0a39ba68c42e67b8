/**
 * The human part of an upstream's error body, whichever shape it comes in:
 * `{"error":{"message":…}}` (OpenAI, Anthropic, Groq), `{"error":"…"}`
 * (Ollama), `{"message":…}` and `{"object":"error","message":…}` (vLLM), a
 * one-element array of those (Gemini), and OpenRouter's
 * `error.metadata.raw`, where the real reason behind "Provider returned
 * error" is, with `metadata.provider_name` (only the message it names: the
 * rest may quote the prompt). Moderation details (`flagged_input`) hold
 * prompt text and are never read.
 */
import { isRecord } from './types.ts'

/** The message in an error body already parsed as JSON; null when it holds none. */
export function errorTextOf(json: unknown): string | null {
  if (Array.isArray(json) && json.length === 1) return errorTextOf(json[0])
  if (!isRecord(json)) return null
  const error = json.error
  if (typeof error === 'string') return error
  if (isRecord(error)) {
    const message = typeof error.message === 'string' ? error.message : null
    return withOpenRouterCause(message, error.metadata)
  }
  return typeof json.message === 'string' ? json.message : null
}

/**
 * An error body, parsed once: its message as text (its JSON's message; JSON that names none,
 * written again the way witness writes JSON, so that an echo of the prompt escaped another way,
 * `\u00eb` or `\/`, takes the form redaction looks for; or the text itself when it is not JSON),
 * and its JSON (undefined when it is not JSON), for what else it says (retry-after.ts).
 */
export function errorBody(text: string): { message: string; json: unknown } {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { message: text.trim(), json: undefined }
  }
  return { message: errorTextOf(json) ?? JSON.stringify(json), json }
}

/** OpenRouter's `error.metadata`: which provider failed (`provider_name`) and its own words (`raw`). */
function withOpenRouterCause(message: string | null, metadata: unknown): string | null {
  if (!isRecord(metadata)) return message
  const who = typeof metadata.provider_name === 'string' ? metadata.provider_name : null
  // Of a JSON body, only the message it names: the rest of it (a validation error's `input`, say)
  // may quote the prompt. Plain text ("… is temporarily rate-limited upstream") is the message.
  const raw = metadata.raw
  let cause: string | null = null
  if (typeof raw === 'string') {
    try {
      cause = errorTextOf(JSON.parse(raw))
    } catch {
      cause = raw.trim() || null
    }
  } else if (isRecord(raw)) cause = errorTextOf(raw)
  if (cause === message) cause = null
  if (!who && !cause) return message
  const said = [who, cause].filter(Boolean).join(': ')
  return message ? `${message} (${said})` : said
}
