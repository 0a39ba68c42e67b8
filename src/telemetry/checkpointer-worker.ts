/**
 * The checkpoint thread (see checkpointer.ts): waits on the shared counters
 * for the writer to ask, checkpoints on its own connection, and counts it.
 * Blocking (Atomics.wait, a sleep between tries) is fine here: this thread
 * does nothing else.
 *
 * A checkpoint is two steps. PASSIVE fsyncs the WAL and copies the frames
 * it holds into the database without the write lock, while the writer goes
 * on committing. Under load that never finishes the job: the writer has
 * added frames meanwhile, the database is fsynced only when nothing was,
 * and SQLite starts a WAL over only once every frame is in the database
 * (PASSIVE's own report cannot tell: it counts the frames there were when
 * it began). So RESTART follows: it takes the write lock, fsyncs the WAL,
 * copies the few frames added since, fsyncs the database and lets go, and
 * the writer's next commit starts the WAL over. The writer's commits wait
 * that long, two fsyncs: the thread marks it in SLOT.restarting, so group
 * commit waits for its own process's checkpoint without spending a write's
 * lock budget (database_busy_timeout_ms), which is for other processes.
 *
 * It never waits inside SQLite for the lock or for readers (busy_timeout
 * 0): a try that finds either busy lets go at once and tries again a moment
 * later; a reader that stays (a long export) leaves the WAL to grow until
 * it is done, as it would anyway.
 */
import { Database } from 'bun:sqlite'
import { SLOT } from './checkpointer.ts'
import { isSyncFailure } from './sync-failure.ts'

declare const self: Worker

export interface CheckpointerStart {
  path: string
  shared: Int32Array
}

/** How long one wait lasts before the stop flag is looked at again (ms). */
const WAIT_MS = 1_000
/** Tries at the RESTART step, a millisecond apart, before waiting for the next request. */
const RESTART_TRIES = 20

self.onmessage = (event: MessageEvent<CheckpointerStart>) => {
  const { path, shared } = event.data
  let db: Database
  try {
    db = new Database(path)
    // Never waits inside SQLite, where RESTART would wait for readers holding the write lock.
    db.exec('PRAGMA busy_timeout = 0')
    // A checkpoint fsyncs the WAL before it copies it, and the database once it has copied it all (as SQLite's own would).
    db.exec('PRAGMA synchronous = NORMAL')
  } catch (error) {
    Atomics.store(shared, SLOT.closed, 1)
    Atomics.notify(shared, SLOT.closed)
    self.postMessage({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
    return
  }
  const passive = db.query('PRAGMA wal_checkpoint(PASSIVE)')
  const restart = db.query('PRAGMA wal_checkpoint(RESTART)')
  /** Copies the rest of the WAL under the write lock (see above); false if the lock or a reader kept it from it every time. */
  const copyRest = (): boolean => {
    for (let i = 0; i < RESTART_TRIES; i++) {
      // Odd while this thread may hold the write lock: the writer's commits that find it locked wait for it.
      Atomics.add(shared, SLOT.restarting, 1)
      let busy: number
      try {
        busy = (restart.get() as { busy: number }).busy
      } finally {
        Atomics.add(shared, SLOT.restarting, 1)
      }
      if (busy === 0) return true
      Bun.sleepSync(1)
    }
    return false
  }
  // Requests made before this thread started count too.
  let seen = 0
  while (Atomics.load(shared, SLOT.stop) === 0) {
    Atomics.wait(shared, SLOT.requests, seen, WAIT_MS)
    const now = Atomics.load(shared, SLOT.requests)
    if (now === seen || Atomics.load(shared, SLOT.stop) !== 0) continue
    seen = now
    try {
      passive.get()
      Atomics.add(shared, copyRest() ? SLOT.checkpoints : SLOT.failures, 1)
    } catch (error) {
      Atomics.add(shared, SLOT.failures, 1)
      // A failed fsync: pages it lost may count as copied already (a PASSIVE step that copied them
      // without a sync, readers holding it short of the end, moved the mark past them), so no later
      // checkpoint copies them again, and one that succeeded would let the WAL holding them start
      // over. This thread checkpoints no more, and the process is told (it stops without closing the database).
      if (isSyncFailure(error)) {
        self.postMessage({ type: 'sync-failed', message: error instanceof Error ? error.message : String(error) })
        break
      }
      // Another process's checkpoint running, a lock: the next request tries again.
    }
  }
  db.close()
  Atomics.store(shared, SLOT.closed, 1)
  Atomics.notify(shared, SLOT.closed)
}
