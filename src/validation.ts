/**
 * Validation shared by config and requests: the agent-name schema, and
 * turning valibot issues into witness's `Issue` list (one entry per
 * problem, each with the dotted path of what is wrong: `chains.default[1].provider`).
 */
import * as v from 'valibot'
import type { Issue } from './errors.ts'

/** Agent names as they appear in rows (and in `auth.agents`): short, printable, no spaces. */
export const AgentName = v.pipe(
  v.string(),
  v.regex(/^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$/, 'agent names are 1-128 letters, digits, ".", "_", "-", "@" or ":"'),
)

export function toIssues(issues: readonly v.BaseIssue<unknown>[]): Issue[] {
  return issues.map((issue) => ({ path: pathOf(issue), message: plainMessage(issue) }))
}

/** valibot's own words where they are plain; an unknown key and a missing one said as such. */
function plainMessage(issue: v.BaseIssue<unknown>): string {
  if ((issue.type === 'strict_object' || issue.type === 'strict_tuple') && issue.expected === 'never') return 'unknown key (there is none such here)'
  if (issue.type === 'object' || issue.type === 'strict_object' || issue.type === 'loose_object') {
    if (issue.received === 'undefined' && issue.expected?.startsWith('"')) return 'required, and missing'
  }
  return issue.message
}

function pathOf(issue: v.BaseIssue<unknown>): string {
  return pathText((issue.path ?? []).map((item) => item.key as string | number))
}

/** Keys as an issue's path: `chains.default[2].model`. */
export function pathText(keys: readonly (string | number)[]): string {
  let out = ''
  for (const key of keys) {
    if (typeof key === 'number') out += `[${key}]`
    else out += out ? `.${key}` : key
  }
  return out
}

/**
 * A string, or an array checked by `list`. A union would name the whole field when one item of
 * the array is wrong ("Expected (string | Array) but received Array"); this names the item.
 */
export function textOrList<S extends v.GenericSchema>(list: S, message: string) {
  return v.lazy((input) => (Array.isArray(input) ? list : v.string(message)))
}
