/**
 * Token usage in the OpenAI wire format, wherever a provider puts it: the
 * top-level `usage` (OpenAI, OpenRouter, Gemini, vLLM, Ollama), inside the
 * streamed choice (Moonshot's Kimi), or in Groq's `x_groq.usage` (its streams'
 * last chunk). One reading for the row and for a translated answer, so the
 * client of the other API is told what the row records.
 */
import { type Usage, amountOrNull, countOrNull, isRecord } from './types.ts'

/** The usage object an answer or a stream event carries, or null. */
export function usageIn(json: Record<string, unknown>): Record<string, unknown> | null {
  if (isRecord(json.usage)) return json.usage
  const choice = Array.isArray(json.choices) && isRecord(json.choices[0]) ? json.choices[0] : null
  if (choice && isRecord(choice.usage)) return choice.usage
  if (isRecord(json.x_groq) && isRecord(json.x_groq.usage)) return json.x_groq.usage
  return null
}

/**
 * OpenAI-style usage -> Usage (output with its reasoning, below). `cost` is OpenRouter's own figure in USD; with the operator's own
 * provider key (`is_byok`) it is only OpenRouter's fee, and the provider's bill is
 * `cost_details.upstream_inference_cost`: the cost recorded is both.
 */
export function openaiUsage(usage: unknown): Usage {
  if (!isRecord(usage)) return { tokensIn: null, tokensOut: null, costUsd: null }
  let costUsd = amountOrNull(usage.cost)
  const upstream = isRecord(usage.cost_details) ? amountOrNull(usage.cost_details.upstream_inference_cost) : null
  if (usage.is_byok === true && upstream !== null) costUsd = (costUsd ?? 0) + upstream
  const tokensIn = countOrNull(usage.prompt_tokens)
  let tokensOut = countOrNull(usage.completion_tokens)
  // Output counts its reasoning (OpenAI's rule). Some layers (in front of Gemini; xAI) leave the
  // reasoning tokens out of completion_tokens while total_tokens counts them. They are added only
  // where they are what the total holds beyond prompt and completion: a gap may be input too
  // (Gemini's tool-use tokens, a cache), billed at another rate.
  const total = countOrNull(usage.total_tokens)
  const details = isRecord(usage.completion_tokens_details) ? usage.completion_tokens_details : null
  const reasoning = details ? countOrNull(details.reasoning_tokens) : null
  if (tokensIn !== null && tokensOut !== null && reasoning && total === tokensIn + tokensOut + reasoning) tokensOut += reasoning
  return { tokensIn, tokensOut, costUsd }
}

/** Prompt tokens an OpenAI-compatible provider read from its cache (null when it says nothing of a cache). */
export function openaiCachedTokens(usage: Record<string, unknown>): number | null {
  const details = isRecord(usage.prompt_tokens_details) ? usage.prompt_tokens_details : null
  return details ? countOrNull(details.cached_tokens) : null
}
