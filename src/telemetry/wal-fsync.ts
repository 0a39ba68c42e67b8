/**
 * `database_sync: full` without stalling the event loop. With
 * synchronous=FULL, SQLite fsyncs the WAL inside every COMMIT, and
 * bun:sqlite runs that COMMIT on the main thread: every request and stream
 * waits for the disk. In WAL mode FULL differs from NORMAL by exactly that
 * one fsync of the WAL file after each commit (SQLite's docs, "PRAGMA
 * synchronous"); checkpoints and WAL restarts are synced in both.
 *
 * So the writer connection runs with synchronous=NORMAL, and after each
 * group commit this barrier syncs the WAL file from Bun's thread pool
 * (`fs.fdatasync` on Linux, the call SQLite itself makes there, `fs.fsync`
 * elsewhere; both are asynchronous there). No write is acknowledged before an
 * fsync that began after its COMMIT has finished: the guarantee of FULL,
 * with the wait off the event loop, and one fsync covering every batch
 * committed while the previous one ran.
 */
import { closeSync, constants, fdatasync, fsync, fsyncSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import { promisify } from 'node:util'

// fdatasync where SQLite itself uses it (Linux); fsync elsewhere (macOS has no fdatasync of its own).
const syncFile = promisify(process.platform === 'linux' ? fdatasync : fsync)

export interface Barrier {
  /** Resolves once everything committed before the call is on stable storage. */
  wait(): Promise<void>
  /** fsyncs started and finished so far (for benchmarks). */
  readonly syncs: number
  close(): void
}

/**
 * Coalesces waits into fsyncs: a wait that arrives while an fsync runs is
 * served by the next one (the running one may have begun before its
 * commit), and all waits that arrive meanwhile share it.
 *
 * A failed fsync breaks the barrier for good: every wait after it fails too.
 * On Linux a failed writeback is reported once, and the pages it lost are
 * marked clean, so the next fsync "succeeds" without them: a WAL whose frames
 * are missing on disk holds nothing after the gap for SQLite's recovery,
 * which stops at the first frame whose checksum fails. `onBroken` is told once.
 */
export function coalescingBarrier(sync: () => Promise<void>, close: () => void = () => {}, onBroken: (error: unknown) => void = () => {}): Barrier {
  let waiting: { resolve: () => void; reject: (error: unknown) => void }[] = []
  let running = false
  let closed = false
  let released = false
  let broken: unknown = null
  let syncs = 0
  // Released once, and never under a sync still running: a closed descriptor's number may be reused.
  const release = () => {
    if (released || running) return
    released = true
    close()
  }
  const start = () => {
    const batch = waiting
    waiting = []
    running = true
    sync().then(
      () => {
        syncs++
        for (const w of batch) w.resolve()
      },
      (error: unknown) => {
        if (broken === null) {
          broken = error
          onBroken(error)
        }
        for (const w of batch) w.reject(error)
      },
    ).finally(() => {
      running = false
      if (closed) release()
      else if (waiting.length > 0) start()
    })
  }
  return {
    wait: () =>
      new Promise<void>((resolve, reject) => {
        if (closed) return reject(new Error('the database is closed'))
        if (broken !== null) return reject(new Error(`an earlier fsync of the WAL failed (${broken instanceof Error ? broken.message : String(broken)}): nothing written since can be made durable`))
        waiting.push({ resolve, reject })
        if (!running) start()
      }),
    get syncs() {
      return syncs
    },
    close() {
      closed = true
      const stranded = waiting
      waiting = []
      for (const w of stranded) w.reject(new Error('the database is closed'))
      release()
    },
  }
}

/**
 * The barrier for a database in WAL mode whose writer connection is open
 * (so its `-wal` file exists and keeps its inode: SQLite removes it only
 * when the last connection closes, and truncating keeps the file).
 */
export function walFsyncBarrier(dbPath: string, onBroken?: (error: unknown) => void): Barrier {
  const walPath = `${dbPath}-wal`
  // The WAL file may have just been created: make its directory entry durable once.
  syncDirectory(dirname(walPath))
  const fd = openSync(walPath, constants.O_RDONLY)
  return coalescingBarrier(
    () => syncFile(fd),
    () => closeSync(fd),
    onBroken,
  )
}

function syncDirectory(dir: string): void {
  let fd: number | null = null
  try {
    fd = openSync(dir, constants.O_RDONLY)
    fsyncSync(fd)
  } catch {
    // Some platforms cannot fsync a directory; SQLite itself tolerates that too.
  } finally {
    if (fd !== null) closeSync(fd)
  }
}
