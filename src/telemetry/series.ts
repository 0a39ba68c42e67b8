/**
 * Time series over request_log, for GET /stats/series and the dashboard:
 * finished attempts per time bucket by status, and the latency percentiles
 * of each provider's successful attempts per bucket, so a provider that is
 * degrading shows as a rising line or a growing red bar.
 *
 * Buckets start at whole multiples of the bucket size (UTC, from the
 * epoch); the first bucket is cut by `since`, the last by `until`. A row
 * belongs to the bucket holding its timestamp. Percentiles are exact
 * nearest-rank (the ceil(p/100 * n)-th smallest), as in /stats.
 *
 * A bucket lines up with the stats' 10-minute slices (it divides one, or is
 * a whole number of them). Buckets of 10 minutes and more are built from
 * the slices' partials, so sealed slices come from the StatsCache that
 * /stats fills, or from the slices stored in the live file, and a 7-day
 * series does not read a week of rows each time;
 * smaller buckets are counted by SQL slice by slice. Either way the event
 * loop is given back between slices.
 */
import type { Database } from 'bun:sqlite'
import { isoTime } from '../clock.ts'
import { databasesOf } from './queries.ts'
import { ATTEMPT_STATUSES, statusIn } from './schema.ts'
import type { SliceRollups } from './slice-rollups.ts'
import { SLICE_MS, type StatsCache, slicePartials, slicesOf, yielder } from './stats-window.ts'

/** The statuses of finished attempts (fallback, rollback and pending rows are not attempts). */
export type AttemptStatus = (typeof ATTEMPT_STATUSES)[number]

export interface SeriesQuery {
  /** Inclusive, stored timestamp format. */
  since: string
  /** Exclusive. */
  until: string
  bucketS: number
}

export interface SeriesOptions {
  nowMs: number
  cache?: StatsCache
  /** The live file's stored slices (slice-rollups.ts). */
  rollups?: SliceRollups
}

export interface ProviderLatency {
  provider: string
  /** Successful attempts per bucket (the n behind the percentiles). */
  successes: number[]
  p50_ms: (number | null)[]
  p95_ms: (number | null)[]
  p99_ms: (number | null)[]
}

export interface Series {
  since: string
  until: string
  bucket_s: number
  /** Start of each bucket (the first one may start before `since`). */
  buckets: string[]
  attempts: Record<AttemptStatus, number[]>
  /** One entry per provider with a successful attempt in the window, by name. */
  latency: ProviderLatency[]
}

/** Whether buckets of `bucketS` seconds line up with the 10-minute slices: each divides one, or is a whole number of them. */
export function bucketFitsSlices(bucketS: number): boolean {
  const sliceS = SLICE_MS / 1000
  return Number.isInteger(bucketS) && bucketS > 0 && (sliceS % bucketS === 0 || bucketS % sliceS === 0)
}

/** How many buckets of `bucketS` seconds cover [since, until). */
export function bucketCount(since: string, until: string, bucketS: number): number {
  const startMs = firstBucketMs(since, bucketS)
  return Math.max(0, Math.ceil((Date.parse(until) - startMs) / (bucketS * 1000)))
}

function firstBucketMs(since: string, bucketS: number): number {
  const bucketMs = bucketS * 1000
  return Math.floor(Date.parse(since) / bucketMs) * bucketMs
}

// strftime('%s') is whole seconds; buckets are whole seconds from the epoch, so truncating
// a timestamp's milliseconds never moves it across a bucket boundary.
const ATTEMPT_TERM = statusIn('l.status', ATTEMPT_STATUSES)
const BUCKET = `(CAST(strftime('%s', l.timestamp) AS INTEGER) - $start_s) / $bucket_s`

const COUNTS_SQL = `SELECT ${BUCKET} AS b, l.status AS status, count(*) AS n
  FROM request_log l
  WHERE l.timestamp >= $since AND l.timestamp < $until AND ${ATTEMPT_TERM}
  GROUP BY b, l.status`

const LATENCY_SQL = `SELECT l.provider AS provider, ${BUCKET} AS b, l.latency_ms AS latency_ms
  FROM request_log l
  WHERE l.timestamp >= $since AND l.timestamp < $until AND l.status = 'success' AND l.latency_ms IS NOT NULL`

/** An archive's attempts one by one, so those the live file still holds (copied, not yet deleted) are counted once. */
const ARCHIVE_ROWS_SQL = `SELECT l.id, l.provider, ${BUCKET} AS b, l.status, l.latency_ms
  FROM request_log l
  WHERE l.timestamp >= $since AND l.timestamp < $until AND ${ATTEMPT_TERM}`

const LIVE_IDS_SQL = `SELECT l.id FROM request_log l
  WHERE l.timestamp >= $since AND l.timestamp < $until AND ${ATTEMPT_TERM}`

/** Latencies of successful attempts, per provider, per bucket (in parts, as they were read). */
type LatencyParts = Map<string, ArrayLike<number>[][]>

/**
 * The series for `query` over one database, or several (the live file
 * first, then archives, as computeStats takes them); `bucketS` must line up
 * with the slices (bucketFitsSlices).
 */
export async function timeSeries(source: Database | readonly Database[], query: SeriesQuery, options: SeriesOptions): Promise<Series> {
  const dbs = databasesOf(source)
  if (!bucketFitsSlices(query.bucketS)) throw new RangeError(`a bucket of ${query.bucketS} s does not line up with the 10-minute slices`)
  const bucketMs = query.bucketS * 1000
  const startMs = firstBucketMs(query.since, query.bucketS)
  const n = bucketCount(query.since, query.until, query.bucketS)
  const attempts = Object.fromEntries(ATTEMPT_STATUSES.map((s) => [s, new Array<number>(n).fill(0)])) as Record<AttemptStatus, number[]>
  const parts: LatencyParts = new Map()
  const add = (provider: string, b: number, latencies: ArrayLike<number>) => {
    let perBucket = parts.get(provider)
    if (!perBucket) parts.set(provider, (perBucket = Array.from({ length: n }, () => [])))
    perBucket[b]!.push(latencies)
  }

  if (bucketMs >= SLICE_MS) {
    for (const { from, partial } of await slicePartials(dbs, query.since, query.until, options)) {
      const b = Math.floor((Date.parse(from) - startMs) / bucketMs)
      for (const combo of partial.combos.values()) {
        for (const status of ATTEMPT_STATUSES) attempts[status][b]! += combo[status]
        if (combo.latencies.length) add(combo.provider, b, combo.latencies)
      }
    }
  } else {
    const giveBack = yielder()
    for (const slice of slicesOf(query.since, query.until)) {
      const params = { $since: slice.from, $until: slice.to, $start_s: startMs / 1000, $bucket_s: query.bucketS }
      // A row is read by its timestamp's text, and bucketed by its time: for a timestamp in another
      // form (`…+05:00`, a leap second, no time at all) the two disagree, so it is kept in its slice's buckets.
      const lo = Math.floor((Date.parse(slice.from) - startMs) / bucketMs)
      const hi = Math.ceil((slice.toMs - startMs) / bucketMs) - 1
      const inSlice = (b: number | null) => Math.min(hi, Math.max(lo, b ?? lo))
      const runs = new Map<string, { provider: string; b: number; latencies: number[] }>()
      const latency = (provider: string, rowBucket: number | null, ms: number) => {
        const b = inSlice(rowBucket)
        const key = `${provider}\u0000${b}`
        let run = runs.get(key)
        if (!run) runs.set(key, (run = { provider, b, latencies: [] }))
        run.latencies.push(ms)
      }
      const [live, ...archives] = dbs
      for (const row of live!.query(COUNTS_SQL).all(params) as { b: number | null; status: AttemptStatus; n: number }[]) attempts[row.status][inSlice(row.b)]! += row.n
      for (const [provider, rowBucket, ms] of live!.query(LATENCY_SQL).values(params) as [string, number | null, number][]) latency(provider, rowBucket, ms)
      if (archives.length > 0) {
        // A row in both the live file and its archive (a moment in every archive batch) counts once.
        const inLive = new Set((live!.query(LIVE_IDS_SQL).values({ $since: slice.from, $until: slice.to }) as [number][]).map(([id]) => id))
        for (const db of archives) {
          for (const [id, provider, rowBucket, status, ms] of db.query(ARCHIVE_ROWS_SQL).values(params) as [number, string, number | null, AttemptStatus, number | null][]) {
            if (inLive.has(id)) continue
            attempts[status][inSlice(rowBucket)]! += 1
            if (status === 'success' && ms !== null) latency(provider, rowBucket, ms)
          }
        }
      }
      for (const run of runs.values()) add(run.provider, run.b, run.latencies)
      await giveBack()
    }
  }

  return {
    since: query.since,
    until: query.until,
    bucket_s: query.bucketS,
    buckets: Array.from({ length: n }, (_, i) => isoTime(startMs + i * bucketMs)),
    attempts,
    latency: [...parts.keys()].sort().map((provider) => latencyLine(provider, parts.get(provider)!)),
  }
}

function latencyLine(provider: string, perBucket: ArrayLike<number>[][]): ProviderLatency {
  const line: ProviderLatency = { provider, successes: [], p50_ms: [], p95_ms: [], p99_ms: [] }
  for (const bucket of perBucket) {
    const [p50, p95, p99, count] = sortedPercentiles(bucket, [50, 95, 99])
    line.successes.push(count!)
    line.p50_ms.push(p50!)
    line.p95_ms.push(p95!)
    line.p99_ms.push(p99!)
  }
  return line
}

/**
 * Nearest-rank percentiles of the values in `parts`, then their count.
 * Sorts (buckets hold few values), where stats.ts counts: counting would
 * allocate an array as long as the largest latency for every bucket.
 */
function sortedPercentiles(parts: ArrayLike<number>[], ps: number[]): (number | null)[] {
  let n = 0
  for (const part of parts) n += part.length
  if (n === 0) return [...ps.map(() => null), 0]
  const all = new Float64Array(n)
  let at = 0
  for (const part of parts) for (let i = 0; i < part.length; i++) all[at++] = part[i]!
  all.sort()
  return [...ps.map((p) => all[Math.max(1, Math.ceil((p / 100) * n)) - 1]!), n]
}
