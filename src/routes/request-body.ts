/**
 * Reading and validating request bodies: bytes that are not UTF-8, JSON
 * parse errors, nesting deeper than MAX_JSON_DEPTH and schema problems
 * become a 400 `invalid_request` listing each path; never a 500.
 */
import type { Context } from 'hono'
import * as v from 'valibot'
import { InvalidRequestError } from '../errors.ts'
import { AgentName, toIssues } from '../validation.ts'

export { AgentName }

/** How deep a request body may nest; deeper is refused before anything else looks at it. */
export const MAX_JSON_DEPTH = 128

const UTF8 = new TextDecoder('utf-8', { fatal: true })

/** Parses the body as a JSON object. */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  let text: string
  try {
    text = UTF8.decode(await c.req.arrayBuffer())
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
  const deep = tooDeep(value, MAX_JSON_DEPTH)
  if (deep !== null) {
    throw new InvalidRequestError(`request body nests deeper than ${MAX_JSON_DEPTH} levels`, [{ path: deep, message: `nested deeper than ${MAX_JSON_DEPTH} levels` }])
  }
  return value as Record<string, unknown>
}

interface JsonNode {
  value: unknown
  depth: number
  key: string | number | null
  parent: JsonNode | null
}

/** The path of the first value nested deeper than `max` levels, or null. Iterative: depth cannot overflow the stack. */
export function tooDeep(root: unknown, max: number): string | null {
  const stack: JsonNode[] = [{ value: root, depth: 0, key: null, parent: null }]
  while (stack.length > 0) {
    const node = stack.pop()!
    const { value, depth } = node
    if (value === null || typeof value !== 'object') continue
    if (depth >= max) return pathOf(node)
    if (Array.isArray(value)) value.forEach((item, i) => stack.push({ value: item, depth: depth + 1, key: i, parent: node }))
    else for (const [key, item] of Object.entries(value)) stack.push({ value: item, depth: depth + 1, key, parent: node })
  }
  return null
}

/** A node's path (`messages[0].content`), built from the node up: only for the one path reported. */
function pathOf(node: JsonNode): string {
  const keys: (string | number)[] = []
  for (let n: JsonNode | null = node; n && n.key !== null; n = n.parent) keys.unshift(n.key)
  return keys.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('')
}

/** Validates with a schema; a failure lists every problem with its path. */
export function validate<S extends v.GenericSchema>(schema: S, value: unknown, what: string): v.InferOutput<S> {
  const result = v.safeParse(schema, value)
  if (!result.success) {
    const issues = toIssues(result.issues)
    throw new InvalidRequestError(`invalid ${what}: ${issues.map((i) => `${i.path || '(body)'}: ${i.message}`).join('; ')}`, issues)
  }
  return result.output
}

/**
 * The agent's name from the places a client may give it, in order of
 * precedence. With `mustAgree`, every place that names one must name the
 * same agent (400 otherwise); without it, the first found wins.
 */
export function resolveAgent(candidates: { from: string; value: unknown }[], help: string, mustAgree: boolean): string {
  const given = candidates.filter((c) => c.value !== undefined && c.value !== null && c.value !== '')
  const first = given[0]
  if (!first) throw new InvalidRequestError(`no agent named: ${help}`, [{ path: 'agent', message: 'required' }])
  const name = validate(AgentName, first.value, `agent name (${first.from})`)
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
