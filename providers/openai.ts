/**
 * The `openai` adapter: any OpenAI-compatible chat-completions API (OpenAI,
 * OpenRouter, Kimi, Groq, Gemini's compatible endpoint, Ollama, vLLM, ...).
 * An OpenAI body is forwarded untouched except for `model`; an Anthropic body
 * is translated.
 */
import { errorTextOf } from './error-text.ts'
import { openaiUsage, usageIn } from './openai-usage.ts'
import { openaiRequestFromAnthropic } from './translate/to-openai.ts'
import {
  type Adapter, type ClientRequest, type Completion, type SseEvent, type StreamFacts,
  AnswerError, MalformedResponseError, intOrNull, isNonEmptyString, joinPath, isRecord, stringOrNull,
} from './types.ts'

export const openaiAdapter: Adapter = {
  wire: 'openai',

  endpoint(baseUrl) {
    return joinPath(baseUrl, '/chat/completions')
  },

  headers(apiKey) {
    const headers: Record<string, string> = { 'content-type': 'application/json' }
    if (apiKey) headers.authorization = `Bearer ${apiKey}`
    return headers
  },

  body(request: ClientRequest, model: string, target) {
    const body = request.wire === 'openai' ? { ...request.body, model } : openaiRequestFromAnthropic(request.body, model, target?.sendReasoning === false ? undefined : target?.provider)
    if (request.stream) {
      body.stream = true
      // Ask for the usage chunk so the row gets token counts; the stream layer
      // strips it again when the client did not ask for it. Not where the
      // provider refuses the field (stream_usage: false): then only what the client sent goes.
      if (target?.streamUsage !== false) {
        const options = isRecord(body.stream_options) ? body.stream_options : {}
        body.stream_options = { ...options, include_usage: true }
      }
    } else {
      delete body.stream_options
      if (body.stream === true) body.stream = false
    }
    return body
  },

  completion(json: unknown): Completion {
    const failed = errorIn(json)
    if (failed) throw failed
    if (!isRecord(json) || !Array.isArray(json.choices)) {
      throw new MalformedResponseError('response is not a chat.completion (no choices array)')
    }
    // No choice is no answer (the SDKs' helpers throw on it): the provider failed, so the chain falls back.
    if (!json.choices.some(isRecord)) throw new MalformedResponseError('an answer without a choice', openaiUsage(usageIn(json)))
    return {
      wire: 'openai',
      body: json,
      responseId: stringOrNull(json.id),
      servedModel: stringOrNull(json.model),
      usage: openaiUsage(json.usage),
    }
  },

  observe(event: SseEvent, facts: StreamFacts) {
    if (event.data === '[DONE]') {
      // A stream of no choice at all (its usage chunk alone, or nothing) carried no answer.
      if (facts.chunks === 0) throw new MalformedResponseError('the stream ended without a choice')
      facts.done = true
      return
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(event.data)
    } catch {
      // An error by its event name with text for its data (a proxy's): an error all the same.
      if (event.event === 'error') {
        facts.error = event.data.trim() || 'upstream error event'
        return
      }
      throw new MalformedResponseError('stream event is not JSON')
    }
    // Google's APIs may send an error as a one-element array (`[{"error":{…}}]`), in a stream too.
    const sole = Array.isArray(parsed) && parsed.length === 1 && isRecord(parsed[0]) && errorIn(parsed[0]) ? parsed[0] : null
    const json = sole ?? parsed
    if (!isRecord(json)) throw new MalformedResponseError('stream event is not a JSON object')
    // An error is one by its event name too (`event: error` with `{"message":…}`, as some gateways
    // send mid-stream): the OpenAI SDKs throw on it, so whatever comes after it is no answer.
    const failed = errorIn(json) ?? (event.event === 'error' ? new AnswerError(errorTextOf(json) ?? 'upstream error event', codeOf(json)) : null)
    if (failed) {
      facts.error = failed.message
      facts.errorCode = failed.code ?? null
      // What the OpenAI SDKs raise on: a top-level `error`, or an `error` event. Any other error
      // (vLLM's `object: "error"`, Groq's `x_groq.error`, an array) would end their stream unsaid.
      facts.errorRaisable = sole === null && (event.event === 'error' || Boolean(json.error))
      return
    }
    facts.responseId ??= stringOrNull(json.id)
    facts.servedModel ??= stringOrNull(json.model)
    const usage = usageIn(json)
    if (usage) facts.usage = openaiUsage(usage)
    if (Array.isArray(json.choices) && json.choices.some(isRecord)) {
      facts.chunks++
      if (!facts.content) facts.content = json.choices.some(carriesContent)
    }
  },
}

/** Whether a streamed choice's delta holds generated content (not just a role or a finish reason). */
function carriesContent(choice: unknown): boolean {
  const delta = isRecord(choice) ? choice.delta : null
  if (!isRecord(delta)) return false
  return (
    isNonEmptyString(delta.content) ||
    isNonEmptyString(delta.refusal) ||
    isNonEmptyString(delta.reasoning_content) ||
    isNonEmptyString(delta.reasoning) ||
    (Array.isArray(delta.tool_calls) && delta.tool_calls.length > 0) ||
    isRecord(delta.function_call)
  )
}

/**
 * An error where an answer or an event should be: a top-level `error` (OpenRouter, after generation
 * began), vLLM's `{"object":"error"}`, a choice that ended in `error` (OpenRouter's
 * `finish_reason: "error"` with `choices[].error`), or Groq's `x_groq.error` (a stream it stopped
 * early). Null for an answer.
 */
function errorIn(json: unknown): AnswerError | null {
  if (!isRecord(json)) return null
  // An error that says something: a message, or a code (an empty `error: {}` beside an answer is none).
  const error = json.error
  if ((typeof error === 'string' && error !== '') || (isRecord(error) && ((typeof error.message === 'string' && error.message !== '') || typeof error.code === 'number'))) {
    return new AnswerError(errorTextOf(json) ?? 'upstream sent an error', codeOf(error))
  }
  if (json.object === 'error') return new AnswerError(errorTextOf(json) ?? 'upstream sent an error', intOrNull(json.code) ?? undefined)
  if (isRecord(json.x_groq) && isNonEmptyString(json.x_groq.error)) return new AnswerError(json.x_groq.error, undefined)
  const choice = Array.isArray(json.choices) ? json.choices.find((c) => isRecord(c) && (c.finish_reason === 'error' || isRecord(c.error))) : undefined
  if (!isRecord(choice)) return null
  const message = isRecord(choice.error) ? errorTextOf({ error: choice.error }) : null
  return new AnswerError(message ?? 'the answer ended with finish_reason "error"', codeOf(choice.error))
}

function codeOf(error: unknown): number | undefined {
  return isRecord(error) ? (intOrNull(error.code) ?? undefined) : undefined
}
