/**
 * The last-known-good snapshot of a config file: `<config>.last-good` next
 * to the config, with its hash in `<config>.last-good.sha256` (the
 * `sha256sum` format, so `sha256sum -c` checks it). Found by name alone, so
 * a watchdog can restore it without parsing a broken config. Every write is
 * a temp file renamed into place: a crash never leaves half a file.
 *
 * A promotion replaces two files, and no rename does both: the new hash is
 * staged first (`<config>.last-good.sha256.next`), then the snapshot, then
 * the staged hash renamed over the old one. Killed anywhere in between, the
 * old pair still matches, or the snapshot matches the staged hash: that new
 * pair is valid, and the next read completes it.
 */
import { closeSync, existsSync, fchmodSync, fchownSync, fsyncSync, lstatSync, openSync, readFileSync, readdirSync, realpathSync, renameSync, rmSync, statSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { sha256 } from '../hash.ts'
import { syncDir } from '../jobs/durable-file.ts'
import { processAlive } from '../process-alive.ts'

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
  const hash = sha256(bytes)
  let recordedHash = hashIn(`${path}.sha256`)
  // A promotion killed between its renames: the snapshot is the one whose hash it staged. Its pair
  // is completed (best effort: a reader that may not write still takes the snapshot as promoted).
  if (recordedHash !== hash && hashIn(stagedHashPath(path)) === hash) {
    recordedHash = hash
    try {
      renameSync(stagedHashPath(path), `${path}.sha256`)
      syncDir(dirname(path))
    } catch {
      // read-only here, or the promotion finished it meanwhile
    }
  }
  return { path, bytes, hash, recordedHash }
}

/** Where a promotion stages the new snapshot's hash until the snapshot is in place. */
function stagedHashPath(snapshotPath: string): string {
  return `${snapshotPath}.sha256.next`
}

/** The hash a `.sha256` file records, or null when it is missing, unreadable or malformed. */
function hashIn(path: string): string | null {
  try {
    return /^([0-9a-f]{64})\s/.exec(readFileSync(path, 'utf8'))?.[1] ?? null
  } catch {
    return null
  }
}

/** Why a snapshot must not be restored (it is not what was promoted), or null when it matches its recorded hash. */
export function snapshotProblem(snapshot: Snapshot): string | null {
  if (!snapshot.recordedHash) return `${snapshot.path}.sha256 is missing or unreadable, so the snapshot cannot be checked`
  if (snapshot.recordedHash !== snapshot.hash) return `${snapshot.path} does not match ${basename(snapshot.path)}.sha256 (it was changed after it was promoted)`
  return null
}

/**
 * Saves `bytes` (a config that passed its health checks) as the last-known-good snapshot, as private
 * as the config file. Crash-safe across its two files (see the top of this file).
 */
export function promoteLastGood(configPath: string, bytes: Uint8Array): Snapshot {
  const path = lastGoodPath(configPath)
  const hash = sha256(bytes)
  removeLeftovers(path, '\\.sha256(?:\\.next)?')
  const staged = stagedHashPath(path)
  replaceFile(staged, `${hash}  ${basename(path)}\n`, configPath)
  replaceFile(path, bytes, configPath)
  try {
    renameSync(staged, `${path}.sha256`)
  } catch (error) {
    // A reader completed the pair first (readLastGood): it is in place all the same.
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || hashIn(`${path}.sha256`) !== hash) throw error
  }
  syncDir(dirname(path))
  return { path, bytes, hash, recordedHash: hash }
}

/**
 * Temp files beside `path` left by a process killed while writing them (not a live one's): those of
 * `path` itself and of the files named `path` + a suffix `suffixes` (a regular expression) matches.
 */
function removeLeftovers(path: string, suffixes = ''): void {
  const dir = dirname(path)
  const temp = new RegExp(`^${escaped(basename(path))}(?:${suffixes})?\\.tmp-(\\d+)$`)
  for (const entry of readdirSync(dir)) {
    const pid = temp.exec(entry)?.[1]
    if (pid !== undefined && !processAlive(Number(pid)) && isFile(join(dir, entry))) rmSync(join(dir, entry), { force: true })
  }
}

function isFile(path: string): boolean {
  try {
    return lstatSync(path).isFile()
  } catch {
    return false // gone meanwhile
  }
}

function escaped(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * Copies the snapshot over the config file (through a symlink, onto the file it points to: a
 * deploy that updates the link's target is not cut off); returns the hashes before and after.
 * What it replaces, unless that is the snapshot already, is first kept beside the config as
 * `<config>.rolled-back-<first 12 hex digits of its sha256>` (`keptAs`): a config pushed and
 * never run, overwritten by a rollback, is not lost.
 */
export function restoreLastGood(configPath: string, snapshot: Snapshot): { oldHash: string | null; newHash: string; keptAs: string | null } {
  const old = existsSync(configPath) ? readFileSync(configPath) : null
  const oldHash = old === null ? null : sha256(old)
  const target = old !== null && lstatSync(configPath).isSymbolicLink() ? realpathSync(configPath) : configPath
  // A restore killed -9 left its copies: the config's (beside its target) and the kept config's.
  removeLeftovers(target)
  removeLeftovers(configPath, '\\.rolled-back-[0-9a-f]{12}')
  let keptAs: string | null = null
  if (old !== null && oldHash !== snapshot.hash) {
    keptAs = `${configPath}.rolled-back-${oldHash!.slice(0, 12)}`
    replaceFile(keptAs, old, target)
    pruneKept(configPath)
  }
  replaceFile(target, snapshot.bytes)
  return { oldHash, newHash: snapshot.hash, keptAs }
}

/** How many configs a rollback replaced are kept beside the config, the newest. */
export const KEPT_ROLLED_BACK = 10

/** Removes the copies of replaced configs beyond the newest KEPT_ROLLED_BACK (each distinct config rolled back leaves one). */
function pruneKept(configPath: string): void {
  const dir = dirname(configPath)
  const kept = new RegExp(`^${escaped(basename(configPath))}\\.rolled-back-[0-9a-f]{12}$`)
  const copies = readdirSync(dir)
    .filter((entry) => kept.test(entry))
    .map((entry) => ({ path: join(dir, entry), at: statSync(join(dir, entry)).mtimeMs }))
    .sort((a, b) => b.at - a.at)
  for (const copy of copies.slice(KEPT_ROLLED_BACK)) rmSync(copy.path, { force: true })
}

/**
 * Writes a file atomically (and durably) with the mode of `like` (by default the file it replaces;
 * 0644 when there is none) whatever the umask, and, run as root, its owner: a rollback run by hand
 * as root must not leave the service user a config it cannot read or replace.
 */
function replaceFile(path: string, data: Uint8Array | string, like = path): void {
  const temp = `${path}.tmp-${process.pid}`
  const model = existsSync(like) ? statSync(like) : null
  const mode = model ? model.mode & 0o777 : 0o644
  const fd = openSync(temp, 'w', mode)
  try {
    fchmodSync(fd, mode)
    if (model && process.getuid?.() === 0) fchownSync(fd, model.uid, model.gid)
    writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(temp, path)
}

/** The first 12 hex digits and an ellipsis (none for a hash no longer than that), as hashes appear in messages and on the dashboard. */
export function shortHash(hash: string | null): string {
  if (!hash) return 'unknown'
  return hash.length > 12 ? `${hash.slice(0, 12)}…` : hash
}
