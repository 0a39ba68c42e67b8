/** Shared command-line plumbing: usage errors and common flags. */
import { existsSync } from 'node:fs'
import type { Config } from '../config.ts'

/** A mistake in how a command was called: exit 2 with the usage. */
export class UsageError extends Error {
  override name = 'UsageError'
  /** Whether the command's usage line helps (a flag was wrong), or only the message does (what a flag names is missing or unreadable). */
  readonly showUsage: boolean
  constructor(message: string, options: { showUsage?: boolean } = {}) {
    super(message)
    this.showUsage = options.showUsage ?? true
  }
}

/** A command: takes its arguments, returns the process exit code. */
export interface Command {
  summary: string
  run(args: string[]): Promise<number>
  /**
   * The exit code when the command fails for any reason other than a usage
   * error (a job that could not finish, a database that cannot be read, a
   * crash). Default 1; did-call uses 2, because its 1 means "no".
   */
  failureExitCode?: number
}

export function portOf(text: string): number {
  // Digits only: Number('') is 0 (a random port), as an unset $PORT in a script would give.
  const port = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN
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

/**
 * A `--db` flag's path, or undefined when it was not given. An empty one is a usage error: SQLite
 * takes an empty path for a temporary database, which has none of witness's tables.
 */
export function dbFlagOf(text: string | undefined): string | undefined {
  if (text === '') throw new UsageError('--db must name a database file, got an empty path')
  return text
}

/** A duration flag: `60s`, `5m`, `500ms`, `1h`, or a bare number of seconds. */
export function durationMsOf(flag: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match?.[2] ?? 's') as 'ms' | 's' | 'm' | 'h']
  const ms = match ? Number(match[1]) * unit : NaN
  if (!Number.isFinite(ms) || ms <= 0) throw new UsageError(`${flag} must be a duration like 60s, 5m or 500ms, got "${text}"`)
  return ms
}

/** A positive whole-number flag. */
export function countOf(flag: string, text: string): number {
  const n = Number(text)
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new UsageError(`${flag} must be a whole number from 1 to 1000, got "${text}"`)
  return n
}

/** A positive whole-number flag, at most 2^53 - 1 (beyond it SQLite refuses the number). */
export function positiveIntOf(flag: string, text: string): number {
  const n = Number(text)
  if (!Number.isSafeInteger(n) || n < 1) throw new UsageError(`${flag} must be a positive integer (at most ${Number.MAX_SAFE_INTEGER}), got "${text}"`)
  return n
}

/** The config's database, for a command that works on it (archive, sync); a usage error when there is none yet. */
export function configuredDatabase(config: Config): string {
  if (!existsSync(config.databasePath)) throw new UsageError(`no database at ${config.databasePath} (the config's database; witness init creates it)`)
  return config.databasePath
}
