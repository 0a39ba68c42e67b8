/**
 * The last-known-good snapshot of a config file: `<config>.last-good` next
 * to the config, with its hash in `<config>.last-good.sha256` (the
 * `sha256sum` format, so `sha256sum -c` checks it). Found by name alone, so
 * a watchdog can restore it without parsing a broken config. Every write is
 * a temp file renamed into place: a crash never leaves half a file.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs'
import { basename } from 'node:path'
import { sha256 } from '../config.ts'

export interface Snapshot {
  path: string
  bytes: Uint8Array
  /** sha256 of the snapshot's bytes. */
  hash: string
}

export function lastGoodPath(configPath: string): string {
  return `${configPath}.last-good`
}

/** The snapshot next to `configPath`, or null when none has been promoted. */
export function readLastGood(configPath: string): Snapshot | null {
  const path = lastGoodPath(configPath)
  if (!existsSync(path)) return null
  const bytes = readFileSync(path)
  return { path, bytes, hash: sha256(bytes) }
}

/** Saves `bytes` (a config that passed its health checks) as the last-known-good snapshot. */
export function promoteLastGood(configPath: string, bytes: Uint8Array): Snapshot {
  const path = lastGoodPath(configPath)
  const hash = sha256(bytes)
  replaceFile(path, bytes)
  replaceFile(`${path}.sha256`, `${hash}  ${basename(path)}\n`)
  return { path, bytes, hash }
}

/** Copies the snapshot over the config file; returns the hashes before and after. */
export function restoreLastGood(configPath: string, snapshot: Snapshot): { oldHash: string | null; newHash: string } {
  const oldHash = existsSync(configPath) ? sha256(readFileSync(configPath)) : null
  replaceFile(configPath, snapshot.bytes)
  return { oldHash, newHash: snapshot.hash }
}

/** Writes a file atomically (and durably), keeping the mode of the file it replaces. */
function replaceFile(path: string, data: Uint8Array | string): void {
  const temp = `${path}.tmp-${process.pid}`
  const mode = existsSync(path) ? statSync(path).mode & 0o777 : 0o644
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
