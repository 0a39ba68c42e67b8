/**
 * The checked part of an OpenAI chat-completions body (POST /v1/chat/completions
 * and /v1/infer). The body goes upstream as the client sent it, unknown fields
 * included, but the fields below are also read by the translation toward an
 * Anthropic step, which would otherwise have to drop or replace a value of the
 * wrong type without a word (`"max_tokens": "many"` sent as 4096, a message
 * whose content is a number sent as none). So a wrong type is a 400 naming its
 * path, as OpenAI answers it, whichever provider the chain starts with. The
 * role is any name: an upstream other than OpenAI may take others.
 */
import * as v from 'valibot'
import { isRecord } from '../../providers/types.ts'
import { textOrList } from '../validation.ts'
import { NoModelList } from './request-body.ts'

const Name = v.pipe(v.string(), v.minLength(1))
const Count = v.nullish(v.pipe(v.number(), v.integer(), v.minValue(1)))
const Real = v.nullish(v.number())

const ContentParts = v.array(v.looseObject({ type: Name }))

/** A call in an assistant turn: a function call names its function (a custom tool's call carries `custom` instead). */
const ToolCall = v.lazy((input) =>
  isRecord(input) && input.type !== undefined && input.type !== 'function' ? v.looseObject({ type: Name }) : v.looseObject({ function: v.looseObject({ name: Name }) }),
)

const Message = v.looseObject({
  // Any role an upstream may take (OpenAI's six; Llama's `ipython` at a vLLM or Ollama).
  role: Name,
  content: v.nullish(textOrList(ContentParts, 'content is text, an array of content parts, or null')),
  tool_calls: v.nullish(v.array(ToolCall)),
  tool_call_id: v.nullish(v.string()),
})

/** The fields of a chat-completions request that witness reads or translates, checked. */
export const OpenAIBody = {
  messages: v.pipe(v.array(Message), v.minLength(1, 'at least one message is required')),
  // openai-node types `stream` (and the numbers) as `| null`; null is taken as left unsaid.
  stream: v.nullish(v.boolean()),
  max_tokens: Count,
  max_completion_tokens: Count,
  // Read to tell whether an Anthropic step can take the request (untranslatable.ts).
  n: Count,
  logprobs: v.nullish(v.boolean()),
  top_logprobs: v.nullish(v.pipe(v.number(), v.integer(), v.minValue(0))),
  temperature: Real,
  top_p: Real,
  stop: v.nullish(textOrList(v.array(v.string()), 'stop is a string, an array of strings, or null')),
  tools: v.nullish(v.array(v.looseObject({ type: Name, function: v.optional(v.looseObject({ name: Name })) }))),
  models: NoModelList,
}
