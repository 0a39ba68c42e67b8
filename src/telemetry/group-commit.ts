/**
 * Group commit: writes submitted while the previous batch is being
 * committed and made durable (or during one turn of the event loop) are
 * applied in one transaction, so one fsync covers them all. One batch is in
 * flight at a time, its fsync included (the `durable` barrier, see
 * wal-fsync.ts); each submitter gets a promise that settles once its write
 * is committed and durable (or has failed).
 *
 * Waiting for another process's write lock never happens inside SQLite:
 * the writer has a zero busy timeout and a locked database is retried here,
 * asynchronously, until each write's budget is spent. Other failures (disk
 * full, read-only) fail the batch; a batch that fails is retried one write
 * at a time, so one bad write cannot sink its neighbours.
 */
import { TelemetryUnavailableError } from '../errors.ts'

export interface GroupCommitOptions<Op, Result> {
  /** Applies the ops in one transaction and returns one result per op; throws (or rejects) to fail them all. */
  apply: (ops: Op[]) => Result[] | Promise<Result[]>
  /** How long a write may wait for the lock before it fails (ms). */
  budgetMs: number
  /** Whether an error means "locked by someone else, try again". */
  isBusy: (error: unknown) => boolean
  /** Monotonic clock (ms). */
  now?: () => number
  /**
   * Resolves once what was committed before the call is on stable storage
   * (see wal-fsync.ts). Writes are acknowledged only after it; meanwhile the
   * event loop goes on and new writes queue for the next batch. Without it, a
   * commit is acknowledged as is.
   */
  durable?: () => Promise<void>
  /** Called with the writes of a batch that committed but could not be made durable. */
  onUndurable?: (ops: Op[], results: Result[]) => void
  /**
   * This process's own checkpoint thread and the write lock (Checkpointer.lockEpoch): odd while it
   * may hold it, moved each time it takes or lets go of it. A batch that finds the database locked
   * while it was held waits for it (a checkpoint's two fsyncs) without spending its budget, which
   * is for other processes' locks.
   */
  lockEpoch?: () => number
  /**
   * Writes left out of `counters`: the health probe (run on every GET /heartbeat), which is not
   * the log's write, and retries of a write already counted as refused. So a probe polled, or a
   * held write retried, while the database is locked is not counted a refused write again and again.
   */
  uncounted?: (op: Op) => boolean
}

interface Pending<Op, Result> {
  op: Op
  deadline: number
  resolve: (result: Result) => void
  reject: (error: unknown) => void
}

export class GroupCommit<Op, Result> {
  private queue: Pending<Op, Result>[] = []
  private scheduled = false
  private inFlight = false
  private waitingForLock = false
  /** Batches committed and waiting for their fsync. */
  private syncing = 0
  private lockWaitMs = 1
  private readonly now: () => number

  /** Batches committed so far and writes in them (for benchmarks and metrics). */
  readonly counters = { batches: 0, ops: 0, busyRetries: 0, failures: 0 }

  constructor(private readonly options: GroupCommitOptions<Op, Result>) {
    this.now = options.now ?? (() => performance.now())
  }

  /** Queues a write; resolves once it is committed. */
  submit(op: Op): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.queue.push({ op, deadline: this.now() + this.options.budgetMs, resolve, reject })
      this.schedule()
    })
  }

  /** Writes queued and not yet committed. */
  get depth(): number {
    return this.queue.length
  }

  /** Nothing queued, nothing being committed. */
  get idle(): boolean {
    return this.queue.length === 0 && !this.inFlight && !this.scheduled && !this.waitingForLock && this.syncing === 0
  }

  /** Starts the next batch on the next turn of the loop, or `now`. */
  private schedule(now = false): void {
    // One batch in flight, its fsync included: writes queue meanwhile and share the next commit.
    if (this.scheduled || this.inFlight || this.waitingForLock || this.syncing > 0) return
    if (now) {
      void this.flush()
      return
    }
    this.scheduled = true
    setImmediate(() => void this.flush())
  }

  private async flush(): Promise<void> {
    this.scheduled = false
    const batch = this.queue
    this.queue = []
    if (batch.length === 0) return
    this.inFlight = true
    const epoch = this.options.lockEpoch?.()
    let results: Result[]
    try {
      results = await this.options.apply(batch.map((p) => p.op))
    } catch (error) {
      try {
        if (this.options.isBusy(error)) this.retryLater(batch, error, epoch !== undefined && (epoch % 2 === 1 || this.options.lockEpoch!() !== epoch))
        else await this.failOrIsolate(batch, error)
      } finally {
        this.inFlight = false
        if (this.queue.length > 0) this.schedule()
      }
      return
    }
    this.committed(batch)
    this.inFlight = false
    this.acknowledge(batch, results)
    if (this.queue.length > 0) this.schedule()
  }

  /** Settles committed writes: at once, or once the durability barrier is passed. */
  private acknowledge(batch: Pending<Op, Result>[], results: Result[]): void {
    const durable = this.options.durable
    if (!durable) {
      batch.forEach((p, i) => p.resolve(results[i]!))
      return
    }
    this.syncing++
    durable()
      .then(
        () => batch.forEach((p, i) => p.resolve(results[i]!)),
        (error: unknown) => {
          const why = error instanceof Error ? error.message : String(error)
          for (const p of batch) p.reject(this.failed(p, new TelemetryUnavailableError(`telemetry database commit could not be made durable: ${why}`, error)))
          this.options.onUndurable?.(batch.map((p) => p.op), results)
        },
      )
      .finally(() => {
        this.syncing--
        // The writes that queued during the fsync go in at once: waiting another turn of the loop only adds latency.
        if (this.queue.length > 0) this.schedule(true)
      })
  }

  private committed(batch: Pending<Op, Result>[]): void {
    const counted = this.counted(batch)
    if (counted > 0) {
      this.counters.batches++
      this.counters.ops += counted
    }
    this.lockWaitMs = 1
  }

  private failed(p: Pending<Op, Result>, error: unknown): TelemetryUnavailableError {
    if (this.counted([p]) > 0) this.counters.failures++
    return asUnavailable(error)
  }

  /** How many of `batch` are the log's writes (see `uncounted`). */
  private counted(batch: Pending<Op, Result>[]): number {
    const uncounted = this.options.uncounted
    return uncounted ? batch.filter((p) => !uncounted(p.op)).length : batch.length
  }

  /**
   * Locked by another process (or, `own`, by this one's checkpoint thread): keep the writes (oldest
   * first) and try again soon. Waiting for the process's own checkpoint spends no write's budget.
   */
  private retryLater(batch: Pending<Op, Result>[], error: unknown, own = false): void {
    if (this.counted(batch) > 0) this.counters.busyRetries++
    const now = this.now()
    const alive: Pending<Op, Result>[] = []
    for (const p of batch) {
      if (own) p.deadline = Math.max(p.deadline, now + 1)
      if (p.deadline <= now) {
        p.reject(this.failed(p, new TelemetryUnavailableError(`telemetry database locked by another process for ${this.options.budgetMs} ms`, error)))
      } else alive.push(p)
    }
    this.queue = [...alive, ...this.queue]
    if (this.queue.length === 0) return
    this.waitingForLock = true
    // The own checkpoint lets go within its fsyncs: look again each millisecond, without backing off.
    const wait = own ? 1 : this.lockWaitMs
    if (!own) this.lockWaitMs = Math.min(50, this.lockWaitMs * 2)
    setTimeout(() => {
      this.waitingForLock = false
      this.schedule()
    }, wait)
  }

  private async failOrIsolate(batch: Pending<Op, Result>[], error: unknown): Promise<void> {
    if (batch.length === 1) {
      batch[0]!.reject(this.failed(batch[0]!, error))
      return
    }
    // Apply one by one so only the writes that really fail are refused.
    for (const p of batch) {
      try {
        const [result] = await this.options.apply([p.op])
        this.committed([p])
        this.acknowledge([p], [result!])
      } catch (single) {
        if (this.options.isBusy(single)) this.retryLater([p], single)
        else p.reject(this.failed(p, single))
      }
    }
  }
}

function asUnavailable(error: unknown): TelemetryUnavailableError {
  if (error instanceof TelemetryUnavailableError) return error
  const message = error instanceof Error ? error.message : String((error as { message?: unknown })?.message ?? error)
  return new TelemetryUnavailableError(`telemetry database write failed: ${message}`, error)
}
