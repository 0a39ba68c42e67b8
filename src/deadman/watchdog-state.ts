/**
 * The watchdog's memory between runs: consecutive failed checks, kept in a
 * small JSON file next to the config (`<config>.watchdog.json`) or where
 * `--state` says. A missing file is a fresh start; so is an unreadable one, said in the log. Written
 * durably (a power cut leaves the old state or the new, never an empty file).
 */
import { existsSync, readFileSync } from 'node:fs'
import * as v from 'valibot'
import { writeFileDurably } from '../jobs/durable-file.ts'

export const WatchdogStateSchema = v.object({
  failures: v.pipe(v.number(), v.integer(), v.minValue(0)),
  /** Why the last check failed. */
  last_failure: v.nullable(v.string()),
  /** This streak of failures has been reported (alert sent, rollback refused): say it once. */
  reported: v.optional(v.boolean(), false),
  /**
   * A rollback begun (the snapshot about to be restored) and not yet recorded: a run killed meanwhile
   * leaves it for the next, and so does one that could not record it (`outcome`: what its restart
   * did, as that run saw it).
   */
  rollback: v.optional(
    v.nullable(
      v.object({
        id: v.string(),
        old_hash: v.nullable(v.string()),
        new_hash: v.string(),
        reason: v.string(),
        started_at: v.string(),
        outcome: v.optional(v.nullable(v.string()), null),
      }),
    ),
    null,
  ),
  /**
   * A rollback recorded as not in effect (after its restart the router did not run the snapshot: a
   * reload refused, a restart_command that restarted nothing). Its restart is tried again at the next
   * streak of failures, without a new row or alert, until the router runs the snapshot.
   */
  unapplied: v.optional(
    v.nullable(
      v.object({
        id: v.string(),
        old_hash: v.nullable(v.string()),
        new_hash: v.string(),
        recorded_at: v.string(),
        // When the rollback began (absent in states written before it was kept): a clean stop of the
        // router between then and `recorded_at` was its own restart's, not an operator's.
        started_at: v.optional(v.nullable(v.string()), null),
      }),
    ),
    null,
  ),
  updated_at: v.string(),
})

export type WatchdogState = v.InferOutput<typeof WatchdogStateSchema>

export function watchdogStatePath(configPath: string): string {
  return `${configPath}.watchdog.json`
}

/**
 * The state at `path`; a fresh one when there is none. An unreadable file (edited by hand, a failing
 * disk) is a fresh start too, since the watchdog must go on watching, but `warn` says what is
 * forgotten with it (a streak of failures, a rollback begun and not recorded).
 */
export function readWatchdogState(path: string, warn: (line: string) => void): WatchdogState {
  const fresh: WatchdogState = { failures: 0, last_failure: null, reported: false, rollback: null, unapplied: null, updated_at: new Date(0).toISOString() }
  if (!existsSync(path)) return fresh
  let why: string
  try {
    const parsed = v.safeParse(WatchdogStateSchema, JSON.parse(readFileSync(path, 'utf8')))
    if (parsed.success) return parsed.output
    const issue = parsed.issues[0]
    why = `${v.getDotPath(issue) ?? 'its top level'}: ${issue.message}`
  } catch (error) {
    why = (error as Error).message
  }
  warn(`${path} cannot be read (${why}): starting from a fresh state, so a streak of failed checks or a rollback begun and not yet recorded in it is forgotten`)
  return fresh
}

export function writeWatchdogState(path: string, state: WatchdogState): void {
  writeFileDurably(path, new TextEncoder().encode(`${JSON.stringify(state, null, 2)}\n`))
}
