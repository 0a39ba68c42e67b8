/**
 * The checkpoint thread (see checkpointer.ts): waits on the shared counters
 * for the writer to ask, checkpoints on its own connection, and counts it.
 * Blocking (Atomics.wait, a sleep between tries) is fine here: this thread
 * does nothing else.
 *
 * A checkpoint is two steps. PASSIVE copies the WAL into the database and
 * fsyncs both without the write lock, while the writer goes on committing.
 * So it never copies it all: the writer has added frames meanwhile, and
 * SQLite starts a WAL over only once it was all copied. RESTART then takes
 * the write lock, copies the few frames added since, fsyncs the database
 * and starts the WAL over; the writer's commits wait that long (group
 * commit retries a locked database off the loop). It never waits for the
 * lock or for readers (busy_timeout 0): a try that finds either busy lets
 * go at once and tries again a moment later; a reader that stays (a long
 * export) leaves the WAL to grow until it is done, as it would anyway.
 */
import { Database } from 'bun:sqlite'
import { SLOT } from './checkpointer.ts'

declare const self: Worker

export interface CheckpointerStart {
  path: string
  shared: Int32Array
}

/** How long one wait lasts before the stop flag is looked at again (ms). */
const WAIT_MS = 1_000
/** Tries at starting the WAL over, a millisecond apart, before waiting for the next request. */
const RESTART_TRIES = 20

self.onmessage = (event: MessageEvent<CheckpointerStart>) => {
  const { path, shared } = event.data
  let db: Database
  try {
    db = new Database(path)
    // Never waits inside SQLite, where RESTART would wait for readers holding the write lock.
    db.exec('PRAGMA busy_timeout = 0')
    // A checkpoint fsyncs the WAL before it copies it and the database after (as SQLite's own would).
    db.exec('PRAGMA synchronous = NORMAL')
  } catch (error) {
    Atomics.store(shared, SLOT.closed, 1)
    Atomics.notify(shared, SLOT.closed)
    self.postMessage({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
    return
  }
  const passive = db.query('PRAGMA wal_checkpoint(PASSIVE)')
  const restart = db.query('PRAGMA wal_checkpoint(RESTART)')
  /** Starts the WAL over (see above); false if the write lock or a reader kept it from it every time. */
  const startOver = (): boolean => {
    for (let i = 0; i < RESTART_TRIES; i++) {
      if ((restart.get() as { busy: number }).busy === 0) return true
      Bun.sleepSync(1)
    }
    return false
  }
  let seen = Atomics.load(shared, SLOT.requests)
  while (Atomics.load(shared, SLOT.stop) === 0) {
    Atomics.wait(shared, SLOT.requests, seen, WAIT_MS)
    const now = Atomics.load(shared, SLOT.requests)
    if (now === seen || Atomics.load(shared, SLOT.stop) !== 0) continue
    seen = now
    try {
      passive.get()
      Atomics.add(shared, startOver() ? SLOT.checkpoints : SLOT.failures, 1)
    } catch {
      // Another process's checkpoint running, or disk trouble: the next request tries again.
      Atomics.add(shared, SLOT.failures, 1)
    }
  }
  db.close()
  Atomics.store(shared, SLOT.closed, 1)
  Atomics.notify(shared, SLOT.closed)
}
