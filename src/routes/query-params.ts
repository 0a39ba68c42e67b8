/** The query string as one value per name; a name given twice is a 400 (which one would win is a guess). */
import type { Context } from 'hono'
import { InvalidRequestError } from '../errors.ts'

export function readQuery(c: Context): Record<string, string> {
  const all = c.req.queries()
  const repeated = Object.keys(all).filter((name) => all[name]!.length > 1)
  if (repeated.length) {
    throw new InvalidRequestError(
      `parameter given more than once: ${repeated.join(', ')}`,
      repeated.map((path) => ({ path, message: 'given more than once' })),
    )
  }
  return Object.fromEntries(Object.entries(all).map(([name, values]) => [name, values[0]!]))
}
