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

/**
 * The shape for a request, from its path alone, so an error raised before
 * any route ran (open mode's 403/415, a 401, a 404) is shaped like the
 * route's own: /v1/messages and below answer as Anthropic, /v1/chat/completions
 * as OpenAI, /v1/infer as witness. Other /v1 paths (/v1/models, an endpoint
 * witness lacks) answer as the client's API: Anthropic when it sends
 * `anthropic-version` (as the Anthropic SDK always does), OpenAI otherwise.
 */
export function errorShapeFor(path: string, anthropicVersion: string | undefined): ErrorShape {
  if (under(path, '/v1/messages')) return 'anthropic'
  if (under(path, '/v1/chat/completions')) return 'openai'
  if (under(path, '/v1/infer') || !under(path, '/v1')) return 'witness'
  return anthropicVersion === undefined ? 'openai' : 'anthropic'
}

function under(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}/`)
}

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
