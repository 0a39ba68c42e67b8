/**
 * A model's reasoning across the two APIs. Kimi and DeepSeek send it as
 * `reasoning_content`, vLLM (since late 2025), OpenRouter, Ollama and Groq
 * as `reasoning`; in thinking mode Kimi and DeepSeek refuse a history whose
 * assistant tool-call turn lacks it. An Anthropic client gets it as a
 * `thinking` block, signed with witness's mark naming the field and the
 * provider (`witness.reasoning_content.kimi`). Sent back in the client's
 * history, the block goes to that provider again in the field it came in
 * (unless its config says `send_reasoning: false`: Groq refuses the field),
 * and is left out for any other: a strict OpenAI-compatible API refuses a
 * field it does not know, and Anthropic refuses a signature it did not make.
 */
import { isNonEmptyString, isRecord } from '../types.ts'

/** The fields reasoning comes in, the one Kimi and DeepSeek want back first. */
const FIELDS = ['reasoning_content', 'reasoning'] as const
export type ReasoningField = (typeof FIELDS)[number]

const MARKS = FIELDS.map((field) => `witness.${field}.`)

/** The signature of a thinking block made from `provider`'s reasoning, as it came (`field`). */
export function reasoningSignature(provider: string, field: ReasoningField = 'reasoning_content'): string {
  return `witness.${field}.${provider}`
}

/** The reasoning an OpenAI-compatible message or delta carries, and its field; null when none. */
export function reasoningOf(message: Record<string, unknown>): { text: string; field: ReasoningField } | null {
  for (const field of FIELDS) {
    const text = message[field]
    if (isNonEmptyString(text)) return { text, field }
  }
  return null
}

/** The reasoning to send `provider` with an assistant turn: its own thinking blocks, joined, in the field they came in; null when none. */
export function reasoningFor(blocks: readonly Record<string, unknown>[], provider: string | undefined): { text: string; field: ReasoningField } | null {
  if (provider === undefined) return null
  for (const field of FIELDS) {
    const own = blocks.filter((b) => b.type === 'thinking' && b.signature === reasoningSignature(provider, field) && typeof b.thinking === 'string')
    if (own.length) return { text: own.map((b) => b.thinking as string).join(''), field }
  }
  return null
}

/** Whether a content block is a thinking block witness made (Anthropic itself would refuse its signature). */
export function isWitnessThinking(block: unknown): boolean {
  return isRecord(block) && block.type === 'thinking' && typeof block.signature === 'string' && MARKS.some((mark) => (block.signature as string).startsWith(mark))
}
