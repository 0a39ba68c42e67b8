/**
 * Errors in each client API's own shape, so official SDKs raise their
 * normal exceptions with a useful message. The witness error type is
 * inside: as `type` and `code` for OpenAI clients, as `error.type` for
 * Anthropic clients, with witness's own details (request id, attempts)
 * alongside.
 */
import type { WitnessError } from '../errors.ts'

/** Which API's error shape a route answers in. */
export type ErrorShape = 'witness' | 'openai' | 'anthropic'

export function shapeError(shape: ErrorShape, error: WitnessError): Record<string, unknown> {
  const { type, message, details } = error
  switch (shape) {
    case 'openai':
      return { error: { message, type, code: type, param: type === 'unknown_chain' ? 'model' : null, ...details } }
    case 'anthropic':
      return { type: 'error', error: { type, message, ...details } }
    default:
      return { error: { type, message, ...details } }
  }
}
