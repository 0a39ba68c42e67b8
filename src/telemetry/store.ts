/**
 * The telemetry store: the write-before/write-after pair that proves every
 * upstream call, plus a read-only connection for queries. Writes go through
 * group commit to one writer connection per process (on the main thread by
 * default, or on its own thread); each returned promise settles once the
 * row is committed.
 */
import { Database } from 'bun:sqlite'
import { lstatSync, mkdirSync, readlinkSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { type Checkpointer, startCheckpointer } from './checkpointer.ts'
import { GroupCommit } from './group-commit.ts'
import { isSyncFailure } from './sync-failure.ts'
import { TelemetryUnavailableError } from '../errors.ts'
import { chainAppender } from '../proof/append.ts'
import type { AttemptOutcome, FinalRow, RowHead, RowMeta, SideWrite, SideWrites, WriteOp, WriteResult } from './rows.ts'
import { ensureSchema } from './schema.ts'
import { type Barrier, walFsyncBarrier } from './wal-fsync.ts'
import type { WorkerReply, WorkerRequest } from './writer-worker.ts'
import { isBusy, openWriter, type WriterOptions } from './writer.ts'

export type { Api, AttemptOutcome, FinalRow, RowHead, RowMeta, SideWrite, SideWrites, WriteResult } from './rows.ts'

export interface StoreOptions extends WriterOptions {
  /** How long a write may wait for another process's lock (ms). */
  busyTimeoutMs: number
  /** Where the writer connection lives: the main thread (default) or its own thread. */
  writer?: 'thread' | 'inline'
  /** With `full` and the inline writer: fsync on the thread pool (default) or inside COMMIT on the event loop. */
  fsync?: 'thread_pool' | 'event_loop'
  /**
   * With `full`, the inline writer and its fsync on the thread pool: WAL checkpoints on a thread of
   * their own (the server; checkpointer.ts) or on the writer after its commits (writer.ts; short-lived
   * commands). Default `writer`. Elsewhere they stay with the writer, where they
   * measured better: with `normal` no commit waits for a sync, so the checkpoint's own syncs were
   * cheaper there than a second thread writing the same files.
   */
  checkpoints?: 'thread' | 'writer'
  /** Starts the checkpoint thread (default startCheckpointer; a test gives one that cannot start). */
  startCheckpoints?: typeof startCheckpointer
  /** Told, once, that the checkpoint thread could not start or died: the writer checkpoints after its commits again. */
  onCheckpointsLost?: (why: string) => void
  /** Told when a finishing write that failed (and was said to) has committed at last. */
  onFinishedLate?: (id: number) => void
  /**
   * Told, once, that an fsync of the database failed (sync-failure.ts): no write from then on is
   * acknowledged, and the process must stop without closing the database, whose WAL the next start
   * reads back in (SQLite's recovery) and copies into the database file with fsyncs that work.
   */
  onDurabilityLost?: (why: string) => void
}

export interface Store {
  readonly path: string
  /** Inserts and commits a `pending` row; resolves with its id. No row, no call. */
  begin(head: RowHead, meta: RowMeta): Promise<number>
  /** Finishes a pending row; resolves once committed, with its chain hash (null if it was not pending). */
  finish(id: number, outcome: AttemptOutcome): Promise<string | null>
  /** Inserts an already-final row (fallback, rollback), with its side-table facts in the same commit; resolves with its id and chain hash. */
  insert(row: FinalRow, meta: RowMeta | null, side?: SideWrite): Promise<WriteResult>
  /** Commits a write to side tables (several statements: in order, in one transaction). */
  write(side: SideWrites): Promise<void>
  /** Writes a key in witness_state. */
  setState(key: string, value: string): Promise<void>
  /** Proves a new row can be committed now (inserted and rolled back): the health probe. */
  probe(): Promise<void>
  /** Finishes (and chains) rows left `pending` by a crashed run; returns how many. */
  recoverPending(message: string): number
  pendingCount(): number
  /** Finishing writes that failed and are being retried in the background. */
  deferredCount(): number
  /**
   * Whether new rows can be written: wall time (ms) of the last new row (or
   * probe) committed, and why the last one that failed since then failed.
   * Updates of rows already there do not count: they may still succeed in a
   * database too full for a new row.
   */
  health(): { lastCommitAt: number | null; lastError: string | null }
  /** Waits (at most `ms`) for queued writes to commit, retrying deferred finishes until they commit or the time is up. */
  drain(ms: number): Promise<void>
  /** A read-only connection for queries. */
  readonly reader: Database
  readonly counters: GroupCommit<WriteOp, WriteResult>['counters']
  /** fsyncs of the WAL issued off the event loop so far (`database_sync: full` with the inline writer); 0 otherwise. */
  fsyncs(): number
  /** WAL checkpoints run on the checkpoint thread so far, and those that failed (zeros without one). */
  checkpoints(): { checkpoints: number; failures: number }
  close(): void
}

/** Applies batches on the writer thread, one at a time. */
function threadWriter(path: string, options: WriterOptions, onSyncFailure: (error: unknown) => void): { apply: (ops: WriteOp[]) => Promise<WriteResult[]>; close: () => void; noCheckpoints: () => void } {
  const worker = new Worker(new URL('./writer-worker.ts', import.meta.url).href)
  worker.postMessage({ type: 'init', path, options } satisfies WorkerRequest)
  const waiting = new Map<number, { resolve: (r: WriteResult[]) => void; reject: (e: unknown) => void }>()
  let nextId = 0
  worker.onmessage = (event: MessageEvent<WorkerReply>) => {
    const reply = event.data
    if (reply.type === 'sync-failed') return onSyncFailure(Object.assign(new Error(reply.failure.message), { code: reply.failure.code }))
    const entry = waiting.get(reply.id)
    if (!entry) return
    waiting.delete(reply.id)
    if (reply.type === 'done') entry.resolve(reply.results)
    else entry.reject(Object.assign(new Error(reply.failure.message), { code: reply.failure.code }))
  }
  // A writer thread that died fails every write from then on (503s, not requests that hang).
  let dead: string | null = null
  worker.onerror = (event) => {
    dead = `writer thread failed: ${event.message}`
    for (const entry of waiting.values()) entry.reject(new Error(dead))
    waiting.clear()
  }
  return {
    apply: (ops) =>
      new Promise((resolve, reject) => {
        if (dead) return reject(new Error(dead))
        const id = ++nextId
        waiting.set(id, { resolve, reject })
        worker.postMessage({ type: 'batch', id, ops } satisfies WorkerRequest)
      }),
    close: () => worker.terminate(),
    noCheckpoints: () => worker.postMessage({ type: 'no-checkpoints' } satisfies WorkerRequest),
  }
}

/** How often a stop's drain tries held finishes again. */
const DRAIN_RETRY_MS = 100

/**
 * The database file a path names, following symbolic links (a dangling one too: SQLite creates its
 * target). SQLite opens the target and keeps its `-wal` beside it, so what witness derives from the
 * path (the WAL it fsyncs, the server's lock) must be the target's too.
 */
export function databaseFileOf(path: string): string {
  let file = resolve(path)
  for (let hops = 0; hops < 40; hops++) {
    let link: string
    try {
      if (!lstatSync(file).isSymbolicLink()) return file
      link = readlinkSync(file)
    } catch {
      return file
    }
    file = resolve(dirname(file), link)
  }
  return file
}

/** Throws if the database's path is a directory (SQLite says only "unable to open database file" of one). */
export function refuseDirectory(path: string): void {
  if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) {
    throw Object.assign(new Error(`cannot open the database ${path}: it is a directory, not a database file`), { code: 'EISDIR' })
  }
}

/** Opens (creating if needed) the database, migrates it, starts its writer. */
export function openStore(given: string, options: StoreOptions): Store {
  const path = databaseFileOf(given)
  mkdirSync(dirname(path), { recursive: true })
  refuseDirectory(path)
  let setup: Database
  try {
    setup = new Database(path, { create: true, strict: true })
  } catch (error) {
    // SQLite's message names no file ("unable to open database file"): the operator needs to know
    // which. The error keeps its code (SQLITE_CANTOPEN), which the CLI reports without a stack trace.
    if (error instanceof Error) error.message = `cannot open the database ${path}: ${error.message}`
    throw error
  }
  try {
    setup.exec(`PRAGMA busy_timeout = ${options.busyTimeoutMs}`)
    ensureSchema(setup)
  } finally {
    setup.close()
  }

  // With `full` on the main thread, the writer commits with NORMAL and the
  // WAL's fsync runs off the event loop before any write is acknowledged
  // (wal-fsync.ts), unless `database_fsync: event_loop` asks for it inside
  // COMMIT. The writer thread can afford to wait for it in COMMIT.
  const inline = options.writer !== 'thread'
  const offLoop = inline && options.sync === 'full' && options.fsync !== 'event_loop'
  const checkpointThread = offLoop && options.checkpoints === 'thread'
  let writer: { apply: (ops: WriteOp[]) => WriteResult[] | Promise<WriteResult[]>; close: () => void }
  let barrier: Barrier | null = null
  let checkpointer: Checkpointer | null = null
  // Once an fsync failed, nothing is acknowledged again (the barrier stays broken, commits that
  // report one fail) and the process is told to stop.
  let durabilityLost: string | null = null
  let stopCheckpoints = () => {}
  const loseDurability = (why: string) => {
    if (durabilityLost !== null) return
    durabilityLost = why
    // No checkpoint may run now: a later one that succeeds would start the WAL over past pages the
    // kernel dropped (sync-failure.ts), and the WAL is what the next start reads back in.
    stopCheckpoints()
    options.onDurabilityLost?.(why)
  }
  const checkpointSyncFailed = (error: unknown) => loseDurability(`a checkpoint's fsync failed (${error instanceof Error ? error.message : String(error)})`)
  if (inline) {
    const own = openWriter(path, { ...options, sync: offLoop ? 'normal' : options.sync, autocheckpoint: !checkpointThread, onSyncFailure: checkpointSyncFailed })
    writer = own
    try {
      if (offLoop) barrier = walFsyncBarrier(path, (error) => loseDurability(`an fsync of the WAL failed (${error instanceof Error ? error.message : String(error)})`))
      // A checkpoint thread that dies hands the checkpoints back to the writer (after its commits).
      if (checkpointThread) {
        const onLost = (why: string) => {
          own.autocheckpoint(true)
          options.onCheckpointsLost?.(why)
        }
        checkpointer = (options.startCheckpoints ?? startCheckpointer)(path, { onLost, onSyncFailed: loseDurability })
      }
      stopCheckpoints = () => {
        own.autocheckpoint(false)
        checkpointer?.halt()
      }
    } catch (error) {
      barrier?.close()
      own.close()
      throw error
    }
  } else {
    // Only what the thread needs: a message cannot carry the options' functions.
    const thread = threadWriter(path, { sync: options.sync, maxMb: options.maxMb }, checkpointSyncFailed)
    writer = thread
    stopCheckpoints = thread.noCheckpoints
  }
  // A COMMIT whose fsync failed (the writer thread's, the event loop's with `event_loop`, a checkpoint
  // inside a COMMIT): durability is lost as when the barrier's fsync fails.
  const syncFailed = (error: unknown) => {
    if (isSyncFailure(error)) loseDurability(`a commit's fsync failed (${error instanceof Error ? error.message : String(error)})`)
    throw error
  }
  const applyWatched = (ops: WriteOp[]): WriteResult[] | Promise<WriteResult[]> => {
    try {
      const results = writer.apply(ops)
      return results instanceof Promise ? results.catch(syncFailed) : results
    } catch (error) {
      return syncFailed(error)
    }
  }
  // After a failed fsync nothing is acknowledged, but outcomes are still written, in case the disk
  // keeps them: a call's finish, and a pending row's "not called" (else the next start would take it
  // for a call cut short). No new row is begun.
  const recordOnly = (ops: WriteOp[]): never => {
    const finishes = ops.filter((op) => op.kind === 'finish')
    try {
      if (finishes.length > 0) void Promise.resolve(writer.apply(finishes)).catch(() => {})
    } catch {
      // written or not, it is refused below
    }
    throw new TelemetryUnavailableError(`telemetry database can no longer be made durable: ${durabilityLost}; witness is stopping`)
  }
  const commits: GroupCommit<WriteOp, WriteResult> = new GroupCommit<WriteOp, WriteResult>({
    apply: (ops) => {
      if (durabilityLost !== null) return recordOnly(ops)
      const results = applyWatched(ops)
      checkpointer?.committed()
      return results
    },
    budgetMs: options.busyTimeoutMs,
    isBusy,
    durable: barrier ? () => barrier.wait() : undefined,
    lockEpoch: checkpointer ? () => checkpointer.lockEpoch() : undefined,
    // The health probe is not the log's write; a held finish retried each second was counted once already.
    uncounted: (op) => op.kind === 'probe' || (op.kind === 'finish' && op.again === true),
    // A pending row that committed but could not be made durable is not called: finish it as such.
    onUndurable: (ops, results) => {
      ops.forEach((op, i) => {
        if (op.kind === 'begin') deferFinish(results[i]!.id, notCalled('its pending row could not be made durable'))
      })
      // Written now, not in a second: the process stops within FATAL_GRACE_MS (main.ts).
      void retryDeferred()
    },
  })

  // Finishing writes that failed (disk full, lock held past the budget) are
  // kept and retried until they commit, so a row is never left pending while
  // the process lives.
  const deferred = new Map<number, AttemptOutcome>()
  let retrying: ReturnType<typeof setInterval> | null = null
  let retryRunning = false
  const retryDeferred = async () => {
    if (retryRunning) return
    retryRunning = true
    try {
      for (const [id, outcome] of [...deferred]) {
        await commits.submit({ kind: 'finish', id, outcome, again: true })
        deferred.delete(id)
        options.onFinishedLate?.(id)
      }
    } catch {
      // still failing; next tick
    } finally {
      retryRunning = false
    }
    if (deferred.size === 0 && retrying) {
      clearInterval(retrying)
      retrying = null
    }
  }
  function deferFinish(id: number, outcome: AttemptOutcome) {
    deferred.set(id, outcome)
    retrying ??= setInterval(() => void retryDeferred(), 1000)
  }

  const rows = { lastCommitAt: null as number | null, lastError: null as string | null }
  const newRow = <T>(write: Promise<T>): Promise<T> =>
    write.then(
      (result) => {
        rows.lastCommitAt = Date.now()
        rows.lastError = null
        return result
      },
      (error: unknown) => {
        rows.lastError = error instanceof Error ? error.message : String(error)
        throw error
      },
    )

  /** Finishes rows a crashed run left pending, on a connection of its own (start-up only). */
  const recover = (message: string): number => {
    const db = new Database(path, { strict: true })
    try {
      db.exec(`PRAGMA busy_timeout = ${options.busyTimeoutMs}`)
      db.exec(`PRAGMA synchronous = ${options.sync === 'full' ? 'FULL' : 'NORMAL'}`)
      const pendingIds = db.query(`SELECT id FROM request_log WHERE status = 'pending' ORDER BY id`)
      const recoverOne = db.query(`UPDATE request_log SET status = 'error', error_message = $message WHERE id = $id AND status = 'pending'`)
      const chain = chainAppender(db)
      return db
        .transaction(() => {
          chain.start()
          let n = 0
          for (const { id } of pendingIds.all() as { id: number }[]) {
            if (recoverOne.run({ message, id }).changes === 0) continue
            chain.append(id, { requestSha256: null, responseSha256: null })
            n++
          }
          return n
        })
        .immediate()
    } finally {
      db.close()
    }
  }
  const reader = new Database(path, { readonly: true, strict: true })
  reader.exec(`PRAGMA busy_timeout = ${options.busyTimeoutMs}`)
  const pending = reader.query(`SELECT count(*) AS n FROM request_log WHERE status = 'pending'`)

  return {
    path,
    reader,
    counters: commits.counters,
    fsyncs: () => barrier?.syncs ?? 0,
    checkpoints: () => checkpointer?.counts() ?? { checkpoints: 0, failures: 0 },
    begin: async (head, meta) => (await newRow(commits.submit({ kind: 'begin', head, meta }))).id,
    finish: async (id, outcome) => {
      try {
        return (await commits.submit({ kind: 'finish', id, outcome })).hash
      } catch (error) {
        deferFinish(id, outcome)
        throw error
      }
    },
    insert: (row, meta, side) => newRow(commits.submit({ kind: 'insert', row, meta, side: side ?? null })),
    write: async (side) => {
      await commits.submit({ kind: 'side', side })
    },
    setState: async (key, value) => {
      await commits.submit({ kind: 'state', key, value, at: new Date().toISOString() })
    },
    probe: async () => {
      await newRow(commits.submit({ kind: 'probe' }))
    },
    recoverPending: (message) => recover(message),
    pendingCount: () => (pending.get() as { n: number }).n,
    async drain(ms) {
      const deadline = performance.now() + ms
      while (!commits.idle && performance.now() < deadline) await Bun.sleep(5)
      // A held finish is tried again through the whole grace (a lock may be let go in it), not once.
      while (deferred.size > 0 && performance.now() < deadline) {
        await retryDeferred()
        if (deferred.size > 0) await Bun.sleep(Math.min(DRAIN_RETRY_MS, Math.max(0, deadline - performance.now())))
      }
    },
    deferredCount: () => deferred.size,
    health: () => ({ ...rows }),
    close() {
      if (retrying) clearInterval(retrying)
      // The checkpoint thread's connection closes first (unless a checkpoint holds it past close()'s
      // wait: the WAL is then left for the next start, which reads it back in), and the writer last:
      // as the last connection it checkpoints and removes the WAL (a read-only one cannot).
      checkpointer?.close()
      reader.close()
      // Not after a failed fsync: as the last connection, the writer would checkpoint the WAL into the
      // database past the pages the fsync lost, and remove it. Left open, the next start reads it back.
      if (durabilityLost === null) writer.close()
      barrier?.close()
    },
  }
}

/** The outcome of a pending row whose call was not made. */
function notCalled(why: string): AttemptOutcome {
  return { status: 'fallback', tokensIn: null, tokensOut: null, latencyMs: null, errorMessage: `not called: ${why}` }
}
