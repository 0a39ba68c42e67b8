/**
 * How jobs (archive, sync) touch the live database: their own connection,
 * which, like the router's writer, never waits inside SQLite for a lock
 * (that would freeze the event loop of `serve`). A locked database is
 * retried asynchronously, with short sleeps, until a budget is spent.
 */
import { Database } from 'bun:sqlite'
import { DatabaseLockedError } from '../errors.ts'
import { ensureSchema, hasTable } from '../telemetry/schema.ts'
import { isBusy } from '../telemetry/writer.ts'

/** Opens an existing database for a job: read-write, never created, zero busy timeout. */
export function openJobDb(path: string): Database {
  const db = new Database(path, { readwrite: true, create: false, strict: true })
  db.exec('PRAGMA busy_timeout = 0')
  // SQLite's automatic checkpoint stays on here (an idle server does not checkpoint, and an archive
  // run would grow the WAL by the whole of what it moves). It ignores a failed fsync, but Linux
  // reports a failed writeback once to every descriptor open on the file: the server's next fsync of
  // the WAL or the database file fails too, and is fatal there (sync-failure.ts).
  return db
}

/** Opens the live database for a job and brings its schema up to date (waiting out a lock). */
export async function openLiveForJob(path: string, what: string, budgetMs = 10_000): Promise<Database> {
  const db = openJobDb(path)
  try {
    await retryWhileBusy(`${what}: preparing the live database`, () => ensureSchema(db), budgetMs)
    return db
  } catch (error) {
    db.close()
    throw error
  }
}

export { isBusy }

/** Runs `fn` (a short synchronous transaction); while the database is locked, waits and tries again. */
export async function retryWhileBusy<T>(what: string, fn: () => T, budgetMs = 10_000): Promise<T> {
  const deadline = performance.now() + budgetMs
  let waitMs = 1
  for (;;) {
    try {
      return fn()
    } catch (error) {
      if (!isBusy(error)) throw error
      if (performance.now() >= deadline) throw new DatabaseLockedError(what, budgetMs)
      await Bun.sleep(waitMs)
      waitMs = Math.min(50, waitMs * 2)
    }
  }
}

/**
 * Runs `fn` inside one read transaction on `db`: every read it makes, across
 * awaits, sees the database as of the first one (WAL: writers elsewhere go
 * on, unseen). `fn` must not write through `db`, and nothing else may use
 * `db` meanwhile.
 */
export async function inReadSnapshot<T>(db: Database, fn: () => Promise<T>): Promise<T> {
  db.exec('BEGIN DEFERRED')
  try {
    return await fn()
  } finally {
    db.exec('COMMIT')
  }
}

/** Reads a witness_state value (null when absent or when the table does not exist); `schema`: main, or an attached database. */
export function readState(db: Database, key: string, schema = 'main'): string | null {
  if (!hasTable(db, 'witness_state', schema)) return null
  const row = db.query(`SELECT value FROM ${schema}.witness_state WHERE key = ?`).get(key) as { value: string } | null
  return row?.value ?? null
}

/** Writes a witness_state value (inside the caller's transaction, if any). */
export function writeState(db: Database, key: string, value: string, at: string): void {
  db.query(
    `INSERT INTO witness_state (key, value, updated_at) VALUES (?, ?, ?)
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
  ).run(key, value, at)
}
