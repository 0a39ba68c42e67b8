/**
 * POST /v1/messages/count_tokens: Anthropic's token count, which Claude Code
 * calls for its context meter and to know when to compact. witness counts
 * itself (providers/estimate-tokens.ts) and calls no provider, so no row is
 * written; `X-Witness-Estimate: true` says the number is an estimate.
 * `model` must name a chain, as for /v1/messages, and an agent token's
 * request may name no other agent (403 `agent_mismatch`, as there); with no
 * token, no agent need be named (a context meter calls it bare).
 */
import type { Context } from 'hono'
import * as v from 'valibot'
import { estimateInputTokens } from '../../providers/estimate-tokens.ts'
import { principalOf } from '../auth/middleware.ts'
import type { Config } from '../config.ts'
import { UnknownChainError } from '../errors.ts'
import { MessagesInput } from './messages.ts'
import { readJsonObject, resolveAgent, validate } from './request-body.ts'

const CountTokensSchema = v.looseObject(MessagesInput)

export function countTokensRoute(deps: { config: () => Config }) {
  return async (c: Context) => {
    if (principalOf(c).kind === 'agent') resolveAgent(c, [{ from: 'the X-Agent-Name header', value: c.req.header('x-agent-name') }], '', false)
    const body = await readJsonObject(c)
    const input = validate(CountTokensSchema, body, 'count_tokens request')
    const chains = deps.config().chains
    if (!chains.has(input.model)) throw new UnknownChainError(input.model, [...chains.keys()])
    c.header('X-Witness-Estimate', 'true')
    return c.json({ input_tokens: estimateInputTokens(body) })
  }
}
