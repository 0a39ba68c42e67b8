/**
 * Counters the router keeps in memory for GET /metrics: attempts by
 * provider, model and outcome, attempt durations by provider (a histogram)
 * and fallbacks by from/to provider. Counted as they happen, since the
 * process started (Prometheus handles the reset on restart).
 */

/** What the router reports as it goes (ChainDeps.metrics). */
export interface AttemptObserver {
  /** A call finished (success, error or timeout) after `latencyMs`. */
  attempt(provider: string, model: string, status: string, latencyMs: number | null): void
  /** A request moved on from one provider's step to another's (or past a skipped last step: from = to). */
  fallback(from: string, to: string): void
}

/** The writer's counters since the process started (Store.counters and Store.checkpoints). */
export interface WriterCounters {
  commits: number
  writes: number
  lockWaits: number
  failures: number
  checkpoints: number
  checkpointsMissed: number
}

/** Upper bounds (seconds) of the duration histogram's buckets. */
export const DURATION_BUCKETS_S = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300] as const

interface Histogram {
  buckets: number[]
  sum: number
  count: number
}

export class RouterMetrics implements AttemptObserver {
  private readonly attempts = new Map<string, { labels: [string, string, string]; n: number }>()
  private readonly durations = new Map<string, Histogram>()
  private readonly fallbacks = new Map<string, { labels: [string, string]; n: number }>()

  attempt(provider: string, model: string, status: string, latencyMs: number | null): void {
    const key = JSON.stringify([provider, model, status])
    const entry = this.attempts.get(key) ?? { labels: [provider, model, status] as [string, string, string], n: 0 }
    entry.n++
    this.attempts.set(key, entry)
    if (latencyMs === null) return
    let h = this.durations.get(provider)
    if (!h) this.durations.set(provider, (h = { buckets: DURATION_BUCKETS_S.map(() => 0), sum: 0, count: 0 }))
    const seconds = latencyMs / 1000
    DURATION_BUCKETS_S.forEach((le, i) => {
      if (seconds <= le) h.buckets[i]!++
    })
    h.sum += seconds
    h.count++
  }

  fallback(from: string, to: string): void {
    const key = JSON.stringify([from, to])
    const entry = this.fallbacks.get(key) ?? { labels: [from, to] as [string, string], n: 0 }
    entry.n++
    this.fallbacks.set(key, entry)
  }

  /** The Prometheus text exposition (format 0.0.4), with the gauges and the writer's counters read at scrape time. */
  render(gauges: { pendingRows: number | null; databaseBytes: number }, writer: WriterCounters): string {
    const out: string[] = []
    const family = (name: string, type: string, help: string) => out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    family('witness_attempts_total', 'counter', 'Upstream calls finished, by provider, model and outcome (success, error, timeout).')
    for (const { labels: [provider, model, status], n } of this.attempts.values()) {
      out.push(`witness_attempts_total${labelSet({ provider, model, status })} ${n}`)
    }
    family('witness_attempt_duration_seconds', 'histogram', 'Duration of upstream calls, by provider.')
    for (const [provider, h] of this.durations) {
      DURATION_BUCKETS_S.forEach((le, i) => out.push(`witness_attempt_duration_seconds_bucket${labelSet({ provider, le: String(le) })} ${h.buckets[i]}`))
      out.push(`witness_attempt_duration_seconds_bucket${labelSet({ provider, le: '+Inf' })} ${h.count}`)
      out.push(`witness_attempt_duration_seconds_sum${labelSet({ provider })} ${h.sum}`)
      out.push(`witness_attempt_duration_seconds_count${labelSet({ provider })} ${h.count}`)
    }
    family('witness_fallbacks_total', 'counter', 'Fallbacks from one provider to the next.')
    for (const { labels: [from, to], n } of this.fallbacks.values()) out.push(`witness_fallbacks_total${labelSet({ from, to })} ${n}`)
    const single = (name: string, type: string, help: string, value: number | null) => {
      family(name, type, help)
      // A value that could not be read is left out (Prometheus then has none for this scrape), not made up.
      if (value !== null) out.push(`${name} ${value}`)
    }
    single('witness_pending_rows', 'gauge', 'Rows in request_log still pending (calls in flight).', gauges.pendingRows)
    single('witness_database_bytes', 'gauge', 'Size of the database file and its write-ahead log, in bytes.', gauges.databaseBytes)
    single('witness_commits_total', 'counter', 'Transactions the writer committed; each holds every write queued while the one before it was committed.', writer.commits)
    single('witness_committed_writes_total', 'counter', 'Writes committed (a pending row, its finish, a final row, a side write): over witness_commits_total, the writes per commit.', writer.writes)
    single('witness_commit_lock_waits_total', 'counter', 'Batches that found the database locked by another connection and were tried again.', writer.lockWaits)
    single('witness_write_failures_total', 'counter', 'Writes refused (locked past database_busy_timeout_ms, full, read-only, or not made durable).', writer.failures)
    family('witness_wal_checkpoints_total', 'counter', 'WAL checkpoints on the checkpoint thread (database_sync: full), by result: done (the WAL started over) or missed (a reader or another checkpoint in the way; tried again later).')
    out.push(`witness_wal_checkpoints_total${labelSet({ result: 'done' })} ${writer.checkpoints}`)
    out.push(`witness_wal_checkpoints_total${labelSet({ result: 'missed' })} ${writer.checkpointsMissed}`)
    return `${out.join('\n')}\n`
  }
}

function labelSet(labels: Record<string, string>): string {
  const escape = (value: string) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
  return `{${Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}`
}
