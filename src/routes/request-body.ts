/**
 * Reading and validating request bodies: JSON parse errors and schema
 * problems become a 400 `invalid_request` listing each path; never a 500.
 */
import type { Context } from 'hono'
import * as v from 'valibot'
import { InvalidRequestError } from '../errors.ts'
import { AgentName, toIssues } from '../validation.ts'

export { AgentName }

/** Parses the body as a JSON object. */
export async function readJsonObject(c: Context): Promise<Record<string, unknown>> {
  const text = await c.req.text()
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (error) {
    throw new InvalidRequestError(`request body is not valid JSON: ${(error as Error).message}`)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidRequestError('request body must be a JSON object')
  }
  return value as Record<string, unknown>
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
