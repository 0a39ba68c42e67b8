/**
 * The lock file that keeps two runs of one job (archive, sync) from
 * overlapping, whether they come from `serve` or the command line.
 *
 * The lock is an OS file lock, taken by holding an exclusive SQLite
 * transaction on a tiny database file. The kernel drops it when its holder
 * exits or is killed, so a stale lock from a killed run can never block the
 * next one (no pid checks, no pid reuse to get wrong). A second file beside
 * it says who holds it, for the message.
 */
import { Database } from 'bun:sqlite'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { dirname } from 'node:path'
import { JobBusyError } from '../errors.ts'

export interface JobLock {
  readonly path: string
  release(): void
}

/** Takes the lock at `path`, or throws JobBusyError naming the holder; `by` names the holder for that message (default: the job's own run). */
export function takeJobLock(job: string, path: string, now: () => number = Date.now, by?: string): JobLock {
  mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path, { create: true })
  db.exec('PRAGMA busy_timeout = 0')
  try {
    db.exec('BEGIN EXCLUSIVE')
  } catch (error) {
    db.close()
    if ((error as { code?: string }).code === 'SQLITE_BUSY') throw new JobBusyError(job, path, holderOf(path))
    throw error
  }
  writeFileSync(`${path}.holder`, `pid ${process.pid}${by ? ` (${by})` : ''} on ${hostname()} since ${new Date(now()).toISOString()}\n`)
  return heldOn(db, path)
}

/** The lock held by `db`'s open transaction on the lock file, released by ending it. */
function heldOn(db: Database, path: string): JobLock {
  let held = true
  return {
    path,
    release() {
      if (!held) return
      held = false
      db.exec('ROLLBACK')
      db.close()
    },
  }
}

function holderOf(path: string): string | null {
  try {
    return readFileSync(`${path}.holder`, 'utf8').trim() || null
  } catch {
    return null
  }
}

/**
 * Whether some process holds the lock at `path` now. Only looks: it takes nothing, writes nothing
 * and creates no file (no lock file: never held). A file it may not open counts as not held.
 */
export function jobLockHeld(path: string): boolean {
  if (!existsSync(path)) return false
  let db: Database
  try {
    db = new Database(path, { readonly: true })
  } catch {
    return false
  }
  try {
    db.exec('PRAGMA busy_timeout = 0')
    if (!takeSharedLock(db)) return true
    db.exec('ROLLBACK')
    return false
  } catch {
    return false
  } finally {
    db.close()
  }
}

/** Takes a shared lock on the lock file (a read transaction left open); false when a holder's exclusive one refuses it. */
function takeSharedLock(db: Database): boolean {
  try {
    db.exec('BEGIN')
    db.query('SELECT count(*) FROM sqlite_master').get()
    return true
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK')
    if ((error as { code?: string }).code === 'SQLITE_BUSY') return false
    throw error
  }
}

/** Takes a job's lock, waiting (looking again every 200 ms) up to `maxMs` while another run holds it. */
export async function waitForJobLock(job: string, path: string, maxMs: number, by?: string): Promise<JobLock> {
  const deadline = Date.now() + maxMs
  for (;;) {
    try {
      return takeJobLock(job, path, Date.now, by)
    } catch (error) {
      if (!(error instanceof JobBusyError) || Date.now() >= deadline) throw error
      await Bun.sleep(200)
    }
  }
}

/**
 * Keeps a job from running while its files are read, for a reader who may not write beside them
 * (the lock file, and who holds it, cannot be written): a shared lock on the lock file, which the
 * job's exclusive one waits for (and which waits for the job's, up to `maxMs`, looking again every
 * 200 ms; then JobBusyError). No lock file: the job never ran there, and nothing is held.
 */
export async function waitToReadJobFiles(job: string, path: string, maxMs: number): Promise<JobLock> {
  if (!existsSync(path)) return { path, release() {} }
  const db = new Database(path, { readonly: true })
  db.exec('PRAGMA busy_timeout = 0')
  const deadline = Date.now() + maxMs
  for (;;) {
    let taken: boolean
    try {
      taken = takeSharedLock(db)
    } catch (error) {
      db.close()
      throw error
    }
    if (taken) break
    if (Date.now() >= deadline) {
      db.close()
      throw new JobBusyError(job, path, holderOf(path))
    }
    await Bun.sleep(200)
  }
  return heldOn(db, path)
}
