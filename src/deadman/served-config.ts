/**
 * What the server at a config path last ran: `<config>.serve.json` holds
 * the sha256 of its config and the database it was given with `serve --db`
 * (null: the config's `database`) and the directory of the code it runs,
 * written when a server starts on it (once
 * it holds its database) and at every reload, and `stopped_at` added when it
 * stops cleanly. It stays when the server stops or dies, so a watchdog that
 * finds the router down can tell a config in the file that ran (or crashed
 * the start-up) from one pushed and never applied, and a router stopped on
 * purpose from one that died, and writes its row into the database the
 * router uses.
 */
import { readFileSync } from 'node:fs'
import * as v from 'valibot'
import { sha256 } from '../hash.ts'
import { writeFileDurably } from '../jobs/durable-file.ts'

export const ServedSchema = v.object({
  /** sha256 of the config the server started on or reloaded to. */
  config_hash: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
  /** The absolute path of the database `serve --db` gave it, which it keeps whatever the config says; null: the config's `database`. */
  database_override: v.nullable(v.pipe(v.string(), v.minLength(1))),
  /**
   * The real path of the project directory the server runs from (symbolic links resolved, as Bun
   * loads modules): a deploy that switched the code under a link tells from it whether the server
   * runs the new code yet. Absent in files written before it was added.
   */
  code_dir: v.optional(v.string()),
  /**
   * Whether that config has `auth`: a reload does not take a file without it then (live-config.ts),
   * which the watchdog must know to tell a config pushed and waiting for a reload from one waiting
   * for a restart. Absent in files written before it was added.
   */
  auth: v.optional(v.boolean()),
  /** When the server stopped cleanly, asked to (SIGTERM, SIGINT): absent while it runs, and after a crash. */
  stopped_at: v.optional(v.string()),
})

export type Served = v.InferOutput<typeof ServedSchema>

export function servedPath(configPath: string): string {
  return `${configPath}.serve.json`
}

/** Records what the server at `configPath` runs (or is starting on). */
export function writeServed(configPath: string, served: Served): void {
  writeFileDurably(servedPath(configPath), new TextEncoder().encode(`${JSON.stringify(served)}\n`))
}

/** What the server at `configPath` last ran, or null when none has said (or it cannot be read). */
export function readServed(configPath: string): Served | null {
  try {
    const parsed = v.safeParse(ServedSchema, JSON.parse(readFileSync(servedPath(configPath), 'utf8')))
    return parsed.success ? parsed.output : null
  } catch {
    return null
  }
}

/**
 * A start that died reading its config (not valid YAML, not a valid config) after a clean stop: the
 * router was started again, so that stop is over, and the file is the config it died starting on (as
 * for any other failed start). Without this the watchdog took the router for one stopped on purpose
 * and never restored the snapshot. A router that did not stop cleanly needs nothing: its note stands.
 */
export function noteFailedStartAfterStop(configPath: string, code_dir: string): void {
  const served = readServed(configPath)
  if (!served?.stopped_at) return
  let bytes: Uint8Array
  try {
    bytes = readFileSync(configPath)
  } catch {
    return // no file to have died on: nothing new to note
  }
  const { stopped_at: _, auth: __, ...kept } = served
  writeServed(configPath, { ...kept, config_hash: sha256(bytes), code_dir })
}

