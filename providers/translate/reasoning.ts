/**
 * A model's reasoning across the two APIs. Kimi and DeepSeek (and vLLM's
 * reasoning parsers) send it as `reasoning_content`, and in thinking mode
 * they refuse a history whose assistant tool-call turn lacks it. An
 * Anthropic client gets it as a `thinking` block, signed with witness's
 * mark naming the provider (`witness.reasoning_content.kimi`). Sent back in
 * the client's history, the block becomes `reasoning_content` again for that
 * provider, and is left out for any other: a strict OpenAI-compatible API
 * refuses the field, and Anthropic refuses a signature it did not make.
 */
import { isRecord } from '../types.ts'

const MARK = 'witness.reasoning_content.'

/** The signature of a thinking block made from `provider`'s reasoning_content. */
export function reasoningSignature(provider: string): string {
  return `${MARK}${provider}`
}

/** The reasoning an OpenAI-compatible message or delta carries; null when none. */
export function reasoningOf(message: Record<string, unknown>): string | null {
  return typeof message.reasoning_content === 'string' && message.reasoning_content !== '' ? message.reasoning_content : null
}

/** The reasoning to send `provider` with an assistant turn: its own thinking blocks, joined; null when none. */
export function reasoningFor(blocks: readonly Record<string, unknown>[], provider: string | undefined): string | null {
  if (provider === undefined) return null
  const own = blocks.filter((b) => b.type === 'thinking' && b.signature === reasoningSignature(provider) && typeof b.thinking === 'string')
  return own.length ? own.map((b) => b.thinking as string).join('') : null
}

/** Whether a content block is a thinking block witness made (Anthropic itself would refuse its signature). */
export function isWitnessThinking(block: unknown): boolean {
  return isRecord(block) && block.type === 'thinking' && typeof block.signature === 'string' && block.signature.startsWith(MARK)
}
