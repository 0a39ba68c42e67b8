/**
 * Reading and validating request bodies: bytes that are not UTF-8, JSON
 * parse errors, nesting deeper than MAX_JSON_DEPTH, a number too large to
 * pass on and schema problems become a 400
 * `invalid_request` listing each path; never a 500.
 */
import type { Context } from 'hono'
import * as v from 'valibot'
import { principalOf } from '../auth/middleware.ts'
import { AgentMismatchError, ForbiddenError, InvalidRequestError, UnauthorizedError } from '../errors.ts'
import { AgentName, pathText, toIssues } from '../validation.ts'

export { AgentName } from '../validation.ts'

/** How deep a request body may nest; deeper is refused before anything else looks at it. */
export const MAX_JSON_DEPTH = 128

const UTF8 = new TextDecoder('utf-8', { fatal: true })

/**
 * An OpenAI-shaped body's `models`: OpenRouter's list of models to fall back through inside
 * OpenRouter. The chain chooses the model, and the row records it; with `models`, OpenRouter could
 * serve another, so such a request is refused rather than passed on.
 */
export const NoModelList = v.optional(
  v.never(`not taken: the chain chooses the model and the row records it; OpenRouter's "models" would let it serve another. Put the models in a chain instead`),
)

/** Parses the body as a JSON object. */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  let text: string
  try {
    // The body guard has read the bytes already (src/routes/body-guard.ts).
    const bytes: Uint8Array | undefined = c.get('body')
    text = UTF8.decode(bytes ?? (await c.req.arrayBuffer()))
  } catch {
    // Replacing the bad bytes would silently change what goes upstream.
    throw new InvalidRequestError('request body is not valid UTF-8')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new InvalidRequestError(`request body is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRequestError('request body must be a JSON object')
  }
  const unfit = unfitValue(value, MAX_JSON_DEPTH)
  if (unfit !== null) throw new InvalidRequestError(`request body ${unfit.what}`, [{ path: unfit.path, message: unfit.message }])
  return value as Record<string, unknown>
}

interface JsonNode {
  value: unknown
  depth: number
  key: string | number | null
  parent: JsonNode | null
}

/**
 * The first value of a parsed body that cannot go on, or null: one nested deeper than `max` levels,
 * or a number too large for a double (`1e999` parses to Infinity, which JSON.stringify writes as
 * null: `max_tokens: 1e999` would reach the upstream as no limit at all). An integer beyond 2^53
 * goes on rounded to the nearest double (`9223372036854775807`, int64's maximum in a generated tool
 * schema, as `9223372036854775808`), as every JSON parser that reads numbers as doubles has it.
 * Iterative: depth cannot overflow the stack.
 */
function unfitValue(root: unknown, max: number): { path: string; what: string; message: string } | null {
  const stack: JsonNode[] = [{ value: root, depth: 0, key: null, parent: null }]
  while (stack.length > 0) {
    const node = stack.pop()!
    const { value, depth } = node
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) return { path: pathOf(node), what: 'has a number too large for a double', message: 'a number too large to pass on (it would be sent as null)' }
      continue
    }
    if (value === null || typeof value !== 'object') continue
    if (depth >= max) return { path: pathOf(node), what: `nests deeper than ${max} levels`, message: `nested deeper than ${max} levels` }
    if (Array.isArray(value)) value.forEach((item, i) => stack.push({ value: item, depth: depth + 1, key: i, parent: node }))
    else for (const [key, item] of Object.entries(value)) stack.push({ value: item, depth: depth + 1, key, parent: node })
  }
  return null
}

/** A node's path (`messages[0].content`), built from the node up: only for the one path reported. */
function pathOf(node: JsonNode): string {
  const keys: (string | number)[] = []
  for (let n: JsonNode | null = node; n && n.key !== null; n = n.parent) keys.unshift(n.key)
  return pathText(keys)
}

/**
 * Validates with a schema; a failure lists every problem with its path. `root` names a problem
 * with the value itself (the whole body; none for a single value such as an agent name).
 */
export function validate<S extends v.GenericSchema>(schema: S, value: unknown, what: string, root = '(body)'): v.InferOutput<S> {
  const result = v.safeParse(schema, value)
  if (!result.success) {
    const issues = toIssues(result.issues)
    const where = (path: string) => (path || root ? `${path || root}: ` : '')
    throw new InvalidRequestError(`invalid ${what}: ${issues.map((i) => `${where(i.path)}${i.message}`).join('; ')}`, issues)
  }
  return result.output
}

/** A place a request may name its agent; `hint` places only name it when no token does. */
export interface AgentCandidate {
  from: string
  value: unknown
  hint?: boolean
}

/**
 * The agent a request runs as: the one place every inference endpoint (and
 * anything else that writes rows under an agent's name) decides it.
 *
 * With `auth`, it is the agent whose token came with the request (see
 * src/auth/middleware.ts); every explicit name (not a `hint`) must name
 * that one (403 agent_mismatch otherwise), and an operator token or no
 * valid token cannot act as an agent. Without `auth`, the name comes from
 * the candidates, in order of precedence: with `mustAgree`, every place that
 * names one must name the same agent (400 otherwise); without it, the first
 * found wins.
 */
export function resolveAgent(c: Context, candidates: AgentCandidate[], help: string, mustAgree: boolean): string {
  const principal = principalOf(c)
  if (principal.kind === 'anonymous') throw new UnauthorizedError(principal.reason)
  if (principal.kind === 'operator') throw new ForbiddenError(`an operator token cannot act as an agent; use the agent's own token`)
  const given = candidates.filter((c) => c.value !== undefined && c.value !== null && c.value !== '')
  if (principal.kind === 'agent') {
    // The token decides. Fields that only hint at a name in open mode (OpenAI `user`,
    // Anthropic `metadata.user_id`, which SDK users also set to their own end users) are
    // not claims; an explicit agent name that differs is.
    for (const candidate of given.filter((g) => !g.hint)) {
      const named = validate(AgentName, candidate.value, `agent name (${candidate.from})`, '')
      if (named !== principal.name) throw new AgentMismatchError(principal.name, candidate.from, named)
    }
    return principal.name
  }
  const first = given[0]
  if (!first) throw new InvalidRequestError(`no agent named: ${help}`, [{ path: 'agent', message: 'required' }])
  const name = validate(AgentName, first.value, `agent name (${first.from})`, '')
  if (mustAgree) {
    const other = given.find((c) => c.value !== name)
    if (other) {
      throw new InvalidRequestError(`${first.from} names agent "${name}" but ${other.from} names a different agent`, [
        { path: 'agent', message: `does not match ${other.from}` },
      ])
    }
  }
  return name
}
