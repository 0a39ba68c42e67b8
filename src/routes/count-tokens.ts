/**
 * POST /v1/messages/count_tokens: Anthropic's token count, which Claude Code
 * calls for its context meter and to know when to compact. witness counts
 * itself (providers/estimate-tokens.ts) and calls no provider, so no row is
 * written; `X-Witness-Estimate: true` says the number is an estimate.
 * `model` must name a chain, as for /v1/messages.
 */
import type { Context } from 'hono'
import * as v from 'valibot'
import { estimateInputTokens } from '../../providers/estimate-tokens.ts'
import type { Config } from '../config.ts'
import { UnknownChainError } from '../errors.ts'
import { MessagesInput } from './messages.ts'
import { readJsonObject, validate } from './request-body.ts'

const CountTokensSchema = v.looseObject(MessagesInput)

export function countTokensRoute(deps: { config: () => Config }) {
  return async (c: Context) => {
    const body = await readJsonObject(c)
    const input = validate(CountTokensSchema, body, 'count_tokens request')
    const chains = deps.config().chains
    if (!chains.has(input.model)) throw new UnknownChainError(input.model, [...chains.keys()])
    c.header('X-Witness-Estimate', 'true')
    return c.json({ input_tokens: estimateInputTokens(body) })
  }
}
