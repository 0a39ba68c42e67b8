/** Shared command-line plumbing: usage errors and common flags. */
/** A mistake in how a command was called: exit 2 with the usage. */
export class UsageError extends Error {
  override name = 'UsageError'
}

/** A command: takes its arguments, returns the process exit code. */
export interface Command {
  summary: string
  run(args: string[]): Promise<number>
}

export function portOf(text: string): number {
  const port = Number(text)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be 0-65535, got "${text}"`)
  return port
}

/** Runs a parseArgs call, turning its errors (unknown flag, missing value) into a UsageError. */
export function parsed<T>(parse: () => T): T {
  try {
    return parse()
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
}

export function positiveIntOf(flag: string, text: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer, got "${text}"`)
  return n
}
