/** The adapter for each wire format. */
import { anthropicAdapter } from './anthropic.ts'
import { openaiAdapter } from './openai.ts'
import type { Adapter, Wire } from './types.ts'

export const ADAPTERS: Record<Wire, Adapter> = {
  openai: openaiAdapter,
  anthropic: anthropicAdapter,
}
