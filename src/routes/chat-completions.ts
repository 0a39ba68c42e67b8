/**
 * POST /v1/chat/completions: the OpenAI chat-completions API, so an agent
 * using the official SDK changes only its base URL. `model` names a chain;
 * the body goes through it like /v1/infer (same rows, fallback, headers).
 */
import type { Context } from 'hono'
import * as v from 'valibot'
import { completionAsOpenAI } from '../../providers/translate/to-openai.ts'
import type { DispatchDeps } from '../router/dispatch.ts'
import { answer } from './inference.ts'
import { OpenAIBody } from './openai-body.ts'
import { readJsonObject, resolveAgent, validate } from './request-body.ts'

export const ChatCompletionsSchema = v.looseObject({
  ...OpenAIBody,
  model: v.pipe(v.string(), v.minLength(1, 'model names a witness chain (GET /v1/models lists them)')),
  user: v.nullish(v.string()),
})

export function chatCompletionsRoute(deps: DispatchDeps) {
  return async (c: Context) => {
    const body = await readJsonObject(c)
    const input = validate(ChatCompletionsSchema, body, 'chat completions request')
    const agent = resolveAgent(
      c,
      [
        { from: 'the X-Agent-Name header', value: c.req.header('x-agent-name') },
        { from: 'the "user" field', value: input.user, hint: true },
      ],
      'send an X-Agent-Name header, or set "user" to the agent\'s name',
      false,
    )
    return answer(c, deps, { agent, chain: input.model, request: { wire: 'openai', body, stream: input.stream === true }, api: 'chat.completions' }, (result) => {
      const { completion } = result
      // An OpenAI upstream's answer already names the model that served it: pass its bytes through.
      if (completion.wire === 'openai' && completion.servedModel !== null && completion.text !== undefined) {
        return c.body(completion.text, 200, { 'content-type': 'application/json' })
      }
      return c.json({ ...completionAsOpenAI(completion, Math.floor(deps.clock.now() / 1000)), model: completion.servedModel ?? result.step.model })
    })
  }
}
