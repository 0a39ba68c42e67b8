/**
 * GET /v1/models: the chains, as model objects, so clients can discover
 * them. OpenAI's list shape, or Anthropic's when the client sends
 * `anthropic-version` (as the Anthropic SDK does).
 */
import type { Context } from 'hono'
import type { Config } from '../config.ts'

export function modelsRoute(deps: { config: () => Config; startedAtS: number }) {
  return (c: Context) => {
    const chains = [...deps.config().chains.keys()]
    if (c.req.header('anthropic-version')) {
      const createdAt = new Date(deps.startedAtS * 1000).toISOString()
      return c.json({
        data: chains.map((id) => ({ type: 'model', id, display_name: `witness chain ${id}`, created_at: createdAt })),
        has_more: false,
        first_id: chains[0] ?? null,
        last_id: chains.at(-1) ?? null,
      })
    }
    return c.json({ object: 'list', data: chains.map((id) => ({ id, object: 'model', created: deps.startedAtS, owned_by: 'witness' })) })
  }
}
