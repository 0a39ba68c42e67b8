/**
 * POST /v1/infer: witness's own inference API. An OpenAI chat-completions
 * body plus `chain` and `agent`, answered with the message and the full
 * story of the rows written for it (or, with `"stream": true`, OpenAI-format
 * chunks).
 */
import type { Context } from 'hono'
import * as v from 'valibot'
import { completionAsOpenAI } from '../../providers/translate/to-openai.ts'
import { isRecord } from '../../providers/types.ts'
import { receiptFor } from '../proof/receipt.ts'
import type { DispatchDeps } from '../router/dispatch.ts'
import { answer } from './inference.ts'
import { OpenAIBody } from './openai-body.ts'
import { AgentName, readJsonObject, resolveAgent, validate } from './request-body.ts'

export const InferRequestSchema = v.looseObject({
  chain: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(64)), 'default'),
  agent: v.optional(AgentName),
  ...OpenAIBody,
})

export function inferRoute(deps: DispatchDeps) {
  return async (c: Context) => {
    const body = await readJsonObject(c)
    const input = validate(InferRequestSchema, body, '/v1/infer request')
    const agent = resolveAgent(
      c,
      [
        { from: 'the "agent" field', value: input.agent },
        { from: 'the X-Agent-Name header', value: c.req.header('x-agent-name') },
      ],
      'set "agent" in the body or the X-Agent-Name header',
      true,
    )
    const { chain: _chain, agent: _agent, ...upstreamBody } = body
    const request = { wire: 'openai' as const, body: upstreamBody, stream: input.stream === true }
    return answer(c, deps, { agent, chain: input.chain, request, api: 'infer' }, (result) => {
      const completion = completionAsOpenAI(result.completion, Math.floor(deps.clock.now() / 1000))
      const choice = Array.isArray(completion.choices) && isRecord(completion.choices[0]) ? completion.choices[0] : {}
      const usage = result.completion.usage
      return c.json({
        request_id: result.requestId,
        chain: result.chain,
        provider: result.step.provider.name,
        model: result.step.model,
        served_model: result.completion.servedModel,
        response_id: result.completion.responseId,
        message: choice.message ?? null,
        finish_reason: choice.finish_reason ?? null,
        usage: { tokens_in: usage.tokensIn, tokens_out: usage.tokensOut, ...(usage.costUsd !== null ? { cost_usd: usage.costUsd } : {}) },
        latency_ms: result.latencyMs,
        attempts: result.attempts,
        receipt: receiptFor(result.machine, result.attempts),
      })
    })
  }
}
