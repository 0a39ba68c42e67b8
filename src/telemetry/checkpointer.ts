/**
 * WAL checkpoints off the event loop, for `database_sync: full` with the
 * commit's fsync on the thread pool (wal-fsync.ts). SQLite checkpoints
 * inside the COMMIT that takes the WAL past `wal_autocheckpoint` frames: it
 * copies the frames into the database file and fsyncs the WAL and the
 * database, and with the inline writer that COMMIT runs on the event loop.
 * So every few dozen requests, every request and stream waited for two
 * fsyncs that the commits' own fsyncs had been moved off the loop to avoid.
 *
 * Here the writer's autocheckpoint is off and a thread of its own, with a
 * connection of its own, checkpoints once the writer has committed
 * `everyCommits` batches since the last time (a batch writes about 12 to 30
 * frames, so 64 batches is near SQLite's 1000 frames): a PASSIVE copy while
 * the writer goes on committing, then a RESTART that copies the last frames
 * under the write lock, after which the writer's next commit starts the WAL
 * over (checkpointer-worker.ts says why both, and how the writer's commits
 * wait for it). One fsync stays on the loop: that first commit into a WAL
 * started over syncs its new header.
 *
 * The threads share six counters (a SharedArrayBuffer), so asking the
 * thread costs the writer an atomic add, not a message. If the thread dies,
 * `onLost` is called and the writer checkpoints by itself again; if a
 * checkpoint's fsync fails, `onSyncFailed`, and nothing checkpoints again.
 */
import type { CheckpointerStart } from './checkpointer-worker.ts'

/** Indexes into the shared counters. */
export const SLOT = { requests: 0, stop: 1, checkpoints: 2, closed: 3, failures: 4, restarting: 5 } as const
export const SLOTS = 6

/** Batches committed between two checkpoints: at 12-30 frames a batch, near SQLite's 1000 frames. */
export const CHECKPOINT_EVERY_COMMITS = 64
/** How long close() waits for a checkpoint in progress to end and the thread's connection to close. */
const CLOSE_WAIT_MS = 2_000

export interface Checkpointer {
  /** Call after each commit of the writer: every `everyCommits` of them ask for a checkpoint. */
  committed(): void
  /** Checkpoints that copied the whole WAL, and those that could not (a reader in the way, another checkpoint, disk trouble). */
  counts(): { checkpoints: number; failures: number }
  /**
   * Odd while the thread may hold the write lock (copying the last frames), and moved on each time it
   * takes or lets go of it: a commit that found the database locked, with this odd or changed since
   * just before the commit, was waiting for its own process's checkpoint.
   */
  lockEpoch(): number
  /** Stops the thread and waits (bounded) for its connection to close, so the writer can be the last one. */
  close(): void
  /** No checkpoint starts from now on (a failed fsync: sync-failure.ts); one running ends. Does not wait. */
  halt(): void
}

export interface CheckpointerOptions {
  everyCommits?: number
  /** The thread died (or could not open the database): the writer must checkpoint by itself again. */
  onLost: (why: string) => void
  /** A checkpoint's fsync failed (sync-failure.ts): the thread has stopped, and nothing may checkpoint the WAL again in this process. */
  onSyncFailed?: (why: string) => void
}

export function startCheckpointer(path: string, options: CheckpointerOptions): Checkpointer {
  const everyCommits = options.everyCommits ?? CHECKPOINT_EVERY_COMMITS
  const shared = new Int32Array(new SharedArrayBuffer(SLOTS * Int32Array.BYTES_PER_ELEMENT))
  const worker = new Worker(new URL('./checkpointer-worker.ts', import.meta.url).href)
  // The thread never keeps a process alive that is otherwise done (Bun's Worker has unref; the DOM's type does not say so).
  const thread = worker as unknown as import('bun').Worker
  thread.unref()
  let sinceLast = 0
  let stopping = false
  let lost = false
  const lose = (why: string) => {
    if (stopping || lost) return
    lost = true
    options.onLost(why)
  }
  worker.addEventListener('error', (event) => lose(`checkpoint thread failed: ${event.message}`))
  worker.addEventListener('close', () => lose('checkpoint thread exited'))
  worker.addEventListener('message', (event: MessageEvent<{ type: 'failed' | 'sync-failed'; message: string }>) => {
    if (event.data.type === 'failed') return lose(`checkpoint thread could not start: ${event.data.message}`)
    // Not handed back to the writer, whose COMMITs would checkpoint past the pages the fsync lost.
    if (stopping || lost) return
    lost = true
    options.onSyncFailed?.(`a checkpoint's fsync failed (${event.data.message})`)
  })
  worker.postMessage({ path, shared } satisfies CheckpointerStart)
  return {
    committed() {
      if (++sinceLast < everyCommits || lost) return
      sinceLast = 0
      Atomics.add(shared, SLOT.requests, 1)
      Atomics.notify(shared, SLOT.requests)
    },
    counts: () => ({ checkpoints: Atomics.load(shared, SLOT.checkpoints), failures: Atomics.load(shared, SLOT.failures) }),
    lockEpoch: () => Atomics.load(shared, SLOT.restarting),
    halt() {
      lost = true
      Atomics.store(shared, SLOT.stop, 1)
      Atomics.add(shared, SLOT.requests, 1)
      Atomics.notify(shared, SLOT.requests)
    },
    close() {
      if (stopping) return
      stopping = true
      Atomics.store(shared, SLOT.stop, 1)
      Atomics.add(shared, SLOT.requests, 1)
      Atomics.notify(shared, SLOT.requests)
      // A checkpoint in progress ends first; then the thread closes its connection and says so.
      if (!lost) Atomics.wait(shared, SLOT.closed, 0, CLOSE_WAIT_MS)
      worker.terminate()
    },
  }
}
