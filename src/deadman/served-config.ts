/**
 * Which config the router at a config path last ran: `<config>.serve.hash`
 * holds its sha256, written when a server starts on it (once it holds its
 * database) and at every reload. It stays when the server stops or dies, so
 * a watchdog that finds the router down can tell a config in the file that
 * ran (or crashed the start-up) from one pushed and never applied.
 */
import { readFileSync } from 'node:fs'
import { writeFileDurably } from '../jobs/durable-file.ts'

export function servedHashPath(configPath: string): string {
  return `${configPath}.serve.hash`
}

/** Records that the server at `configPath` runs (or is starting on) the config with this hash. */
export function writeServedHash(configPath: string, hash: string): void {
  writeFileDurably(servedHashPath(configPath), new TextEncoder().encode(`${hash}\n`))
}

/** The hash of the config the server at `configPath` last ran, or null when none has said (or it cannot be read). */
export function readServedHash(configPath: string): string | null {
  try {
    return /^([0-9a-f]{64})\s*$/.exec(readFileSync(servedHashPath(configPath), 'utf8'))?.[1] ?? null
  } catch {
    return null
  }
}
