/**
 * The last-known-good snapshot of a config file: `<config>.last-good` next
 * to the config, with its hash in `<config>.last-good.sha256` (the
 * `sha256sum` format, so `sha256sum -c` checks it). Found by name alone, so
 * a watchdog can restore it without parsing a broken config. Every write is
 * a temp file renamed into place: a crash never leaves half a file.
 */
import { closeSync, existsSync, fsyncSync, lstatSync, openSync, readFileSync, realpathSync, renameSync, statSync, writeSync } from 'node:fs'
import { basename } from 'node:path'
import { sha256 } from '../config.ts'

export interface Snapshot {
  path: string
  bytes: Uint8Array
  /** sha256 of the snapshot's bytes. */
  hash: string
  /** The hash recorded beside it when it was promoted (`<snapshot>.sha256`); null when that file is missing or unreadable. */
  recordedHash?: string | null
}

export function lastGoodPath(configPath: string): string {
  return `${configPath}.last-good`
}

/** The snapshot next to `configPath`, or null when none has been promoted. */
export function readLastGood(configPath: string): Snapshot | null {
  const path = lastGoodPath(configPath)
  if (!existsSync(path)) return null
  const bytes = readFileSync(path)
  let recordedHash: string | null = null
  try {
    recordedHash = /^([0-9a-f]{64})\s/.exec(readFileSync(`${path}.sha256`, 'utf8'))?.[1] ?? null
  } catch {
    // missing: recordedHash stays null
  }
  return { path, bytes, hash: sha256(bytes), recordedHash }
}

/** Why a snapshot must not be restored (it is not what was promoted), or null when it matches its recorded hash. */
export function snapshotProblem(snapshot: Snapshot): string | null {
  if (!snapshot.recordedHash) return `${snapshot.path}.sha256 is missing or unreadable, so the snapshot cannot be checked`
  if (snapshot.recordedHash !== snapshot.hash) return `${snapshot.path} does not match ${basename(snapshot.path)}.sha256 (it was changed after it was promoted)`
  return null
}

/** Saves `bytes` (a config that passed its health checks) as the last-known-good snapshot, as private as the config file. */
export function promoteLastGood(configPath: string, bytes: Uint8Array): Snapshot {
  const path = lastGoodPath(configPath)
  const hash = sha256(bytes)
  const mode = existsSync(configPath) ? statSync(configPath).mode & 0o777 : undefined
  replaceFile(path, bytes, mode)
  replaceFile(`${path}.sha256`, `${hash}  ${basename(path)}\n`, mode)
  return { path, bytes, hash, recordedHash: hash }
}

/**
 * Copies the snapshot over the config file (through a symlink, onto the file it points to: a
 * deploy that updates the link's target is not cut off); returns the hashes before and after.
 */
export function restoreLastGood(configPath: string, snapshot: Snapshot): { oldHash: string | null; newHash: string } {
  const oldHash = existsSync(configPath) ? sha256(readFileSync(configPath)) : null
  const target = existsSync(configPath) && lstatSync(configPath).isSymbolicLink() ? realpathSync(configPath) : configPath
  replaceFile(target, snapshot.bytes)
  return { oldHash, newHash: snapshot.hash }
}

/** Writes a file atomically (and durably), keeping the mode of the file it replaces (or `newMode` for a new one). */
function replaceFile(path: string, data: Uint8Array | string, newMode?: number): void {
  const temp = `${path}.tmp-${process.pid}`
  const mode = newMode ?? (existsSync(path) ? statSync(path).mode & 0o777 : 0o644)
  const fd = openSync(temp, 'w', mode)
  try {
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temp, path)
}

/** The first 8 hex digits and an ellipsis, as hashes appear in messages. */
export function shortHash(hash: string | null): string {
  return hash ? `${hash.slice(0, 8)}…` : 'unknown'
}
