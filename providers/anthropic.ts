/**
 * The `anthropic` adapter: the Anthropic Messages API. An Anthropic body is
 * forwarded untouched except for `model` (and what other providers' turns
 * left in its history that Anthropic would refuse: tool ids, witness's
 * thinking blocks); an OpenAI body is translated (system, text, images, tool
 * use and tool results).
 */
import { errorTextOf } from './error-text.ts'
import { eventJson } from './sse.ts'
import { acceptedByAnthropic, anthropicRequestFromOpenAI } from './translate/to-anthropic.ts'
import { anthropicInputTokens } from './translate/to-openai.ts'
import {
  type Adapter, type ClientRequest, type Completion, type SseEvent, type StreamFacts, type Usage,
  MalformedResponseError, countOrNull, isNonEmptyString, joinPath, isRecord, stringOrNull,
} from './types.ts'

export const ANTHROPIC_VERSION = '2023-06-01'

export const anthropicAdapter: Adapter = {
  wire: 'anthropic',

  endpoint(baseUrl) {
    return joinPath(baseUrl, '/messages')
  },

  headers(apiKey, request) {
    const headers: Record<string, string> = { 'content-type': 'application/json', 'anthropic-version': ANTHROPIC_VERSION }
    if (apiKey) headers['x-api-key'] = apiKey
    // The betas an Anthropic client asked for (1M context, context management, ...): its body may use them.
    if (request?.wire === 'anthropic' && request.anthropicBeta) headers['anthropic-beta'] = request.anthropicBeta
    return headers
  },

  body(request: ClientRequest, model: string, target) {
    const body = request.wire === 'anthropic' ? acceptedByAnthropic({ ...request.body, model }) : anthropicRequestFromOpenAI(request.body, model, target?.defaultMaxTokens)
    if (request.stream) body.stream = true
    else delete body.stream
    return body
  },

  completion(json: unknown): Completion {
    if (!isRecord(json) || json.type !== 'message' || !Array.isArray(json.content)) {
      throw new MalformedResponseError('response is not a Messages API message')
    }
    return {
      wire: 'anthropic',
      body: json,
      responseId: stringOrNull(json.id),
      servedModel: stringOrNull(json.model),
      usage: anthropicUsage(json.usage),
    }
  },

  observe(event: SseEvent, facts: StreamFacts) {
    const json = eventJson(event)
    // An error is one by its event name too: a proxy may send `event: error` with only `{"error":{…}}`.
    const type = event.event === 'error' ? 'error' : json.type
    switch (type) {
      case 'message_start': {
        const message = isRecord(json.message) ? json.message : {}
        facts.responseId ??= stringOrNull(message.id)
        facts.servedModel ??= stringOrNull(message.model)
        // Its output_tokens is the count so far (1, before any text): the count is message_delta's. A
        // stream cut before that has no known count (null), not the placeholder; one that ends whole
        // with no count in its message_delta (a proxy's) keeps this one.
        const usage = anthropicUsage(message.usage)
        facts.usage = { ...facts.usage, tokensIn: usage.tokensIn }
        startCounts.set(facts, usage.tokensOut)
        break
      }
      case 'content_block_start':
        if (!facts.content) facts.content = startCarriesContent(json.content_block)
        break
      case 'content_block_delta':
        facts.chunks++
        if (!facts.content) facts.content = deltaCarriesContent(json.delta)
        break
      case 'message_delta': {
        const usage = isRecord(json.usage) ? json.usage : {}
        const out = countOrNull(usage.output_tokens)
        if (out !== null) facts.usage = { ...facts.usage, tokensOut: out }
        const input = anthropicInputTokens(usage)
        if (input !== null) facts.usage = { ...facts.usage, tokensIn: input }
        break
      }
      case 'message_stop':
        facts.done = true
        if (facts.usage.tokensOut === null) facts.usage = { ...facts.usage, tokensOut: startCounts.get(facts) ?? null }
        break
      case 'error':
        facts.error = errorTextOf(json) ?? 'upstream error event'
        facts.errorRaisable = true
        break
    }
  },
}

/** The output count each stream's message_start gave, kept for a whole stream whose message_delta gives none. */
const startCounts = new WeakMap<StreamFacts, number | null>()

/** A block's start carries content when it is a tool call (its name) or opens with text already in it. */
function startCarriesContent(block: unknown): boolean {
  if (!isRecord(block)) return false
  if (block.type === 'text') return isNonEmptyString(block.text)
  if (block.type === 'thinking') return isNonEmptyString(block.thinking)
  return block.type === 'tool_use' || block.type === 'server_tool_use'
}

/** A delta carries content when it adds text, tool-call arguments or reasoning. */
function deltaCarriesContent(delta: unknown): boolean {
  return isRecord(delta) && (isNonEmptyString(delta.text) || isNonEmptyString(delta.partial_json) || isNonEmptyString(delta.thinking))
}

export function anthropicUsage(usage: unknown): Usage {
  if (!isRecord(usage)) return { tokensIn: null, tokensOut: null, costUsd: null }
  return { tokensIn: anthropicInputTokens(usage), tokensOut: countOrNull(usage.output_tokens), costUsd: null }
}
