/**
 * What an attempt cost. A cost the provider reported itself (OpenRouter's
 * `usage.cost`, stored in request_log_meta.cost_usd) wins; otherwise the
 * configured price (USD per million tokens, looked up as `provider/model`,
 * then `model`) times the reported token counts. Neither: unknown (null),
 * never a guess.
 */
import type { Pricing } from '../config-schema.ts'

export interface Price {
  input_per_mtok: number
  output_per_mtok: number
}

/** The configured price for a model served by a provider, or null. */
export function priceFor(pricing: Pricing, provider: string, model: string): Price | null {
  for (const key of [`${provider}/${model}`, model]) {
    if (Object.hasOwn(pricing, key)) return pricing[key]!
  }
  return null
}

/** USD for the given token counts at `price`. */
export function tokenCost(price: Price, tokensIn: number, tokensOut: number): number {
  return (tokensIn * price.input_per_mtok + tokensOut * price.output_per_mtok) / 1_000_000
}
