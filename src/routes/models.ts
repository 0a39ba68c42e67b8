/**
 * GET /v1/models and GET /v1/models/:id: the chains, as model objects, so
 * clients can discover them (`models.list()`, `models.retrieve(id)`).
 * OpenAI's shape, or Anthropic's when the client sends `anthropic-version`
 * (as the Anthropic SDK does). An unknown id is a 404 in that API's shape.
 */
import type { Context } from 'hono'
import type { Config } from '../config.ts'
import { UnknownChainError } from '../errors.ts'

export function modelsRoute(deps: { config: () => Config; startedAtS: number }) {
  return (c: Context) => {
    const chains = [...deps.config().chains.keys()]
    const model = modelShape(c, deps.startedAtS)
    if (c.req.header('anthropic-version')) {
      return c.json({ data: chains.map(model), has_more: false, first_id: chains[0] ?? null, last_id: chains.at(-1) ?? null })
    }
    return c.json({ object: 'list', data: chains.map(model) })
  }
}

export function modelRoute(deps: { config: () => Config; startedAtS: number }) {
  return (c: Context) => {
    const id = c.req.param('id') ?? ''
    const chains = deps.config().chains
    if (!chains.has(id)) throw new UnknownChainError(id, [...chains.keys()])
    return c.json(modelShape(c, deps.startedAtS)(id))
  }
}

/** One chain as a model object, in the shape of the API the client speaks. */
function modelShape(c: Context, startedAtS: number): (id: string) => Record<string, unknown> {
  if (c.req.header('anthropic-version')) {
    const createdAt = new Date(startedAtS * 1000).toISOString()
    return (id) => ({ type: 'model', id, display_name: `witness chain ${id}`, created_at: createdAt })
  }
  return (id) => ({ id, object: 'model', created: startedAtS, owned_by: 'witness' })
}
