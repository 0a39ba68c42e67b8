/**
 * POST /v1/messages: the Anthropic Messages API, so an agent using the
 * official SDK changes only its base URL. `model` names a chain; each step
 * gets the request in its provider's wire format and the answer comes back
 * as an Anthropic message (or its event stream).
 */
import type { Context } from 'hono'
import * as v from 'valibot'
import { completionAsAnthropic } from '../../providers/translate/to-anthropic.ts'
import type { DispatchDeps } from '../router/dispatch.ts'
import { answer } from './inference.ts'
import { readJsonObject, resolveAgent, validate } from './request-body.ts'
import { textOrList } from '../validation.ts'

const Blocks = v.array(v.looseObject({ type: v.pipe(v.string(), v.minLength(1)) }))

/** What a Messages request and a count of its tokens (count-tokens.ts) both carry. */
export const MessagesInput = {
  model: v.pipe(v.string(), v.minLength(1, 'model names a witness chain (GET /v1/models lists them)')),
  messages: v.pipe(
    v.array(v.looseObject({ role: v.picklist(['user', 'assistant']), content: textOrList(Blocks, 'content is text or an array of content blocks') })),
    v.minLength(1, 'at least one message is required'),
  ),
  system: v.optional(textOrList(Blocks, 'system is text or an array of text blocks')),
  tools: v.nullish(v.array(v.looseObject({}))),
}

export const MessagesSchema = v.looseObject({
  ...MessagesInput,
  max_tokens: v.pipe(v.number(), v.integer(), v.minValue(1)),
  // Read by the translation toward an OpenAI step, which would drop or pass on a wrong type unsaid: a 400,
  // as Anthropic answers it. A null is unsaid (an adapter's way), as on the OpenAI route.
  temperature: v.nullish(v.number()),
  top_p: v.nullish(v.number()),
  top_k: v.nullish(v.pipe(v.number(), v.integer(), v.minValue(0))),
  stop_sequences: v.nullish(v.array(v.string())),
  stream: v.optional(v.boolean()),
  metadata: v.optional(v.looseObject({ user_id: v.optional(v.nullable(v.string())) })),
})

export function messagesRoute(deps: DispatchDeps) {
  return async (c: Context) => {
    const body = await readJsonObject(c)
    const input = validate(MessagesSchema, body, 'messages request')
    const agent = resolveAgent(
      c,
      [
        { from: 'the X-Agent-Name header', value: c.req.header('x-agent-name') },
        { from: 'metadata.user_id', value: input.metadata?.user_id, hint: true },
      ],
      "send an X-Agent-Name header, or set metadata.user_id to the agent's name",
      false,
    )
    return answer(c, deps, { agent, chain: input.model, request: { wire: 'anthropic', body, stream: input.stream === true, anthropicBeta: c.req.header('anthropic-beta') }, api: 'messages' }, (result) => {
      const message = completionAsAnthropic(result.completion, result.step.provider.name)
      return c.json({ ...message, model: result.completion.servedModel ?? result.step.model })
    })
  }
}
