/**
 * `npm run bench:queries [-- --sizes 1m,10m] [--keep DIR]`: fills temporary
 * databases with synthetic traffic (bench/fill.ts: about a million rows a
 * day, so the last 24 hours hold about 1M rows at either size) and reports
 * the latency of the read side as the server runs it: did-call, filtered
 * /requests pages, and /stats over 24 h: from rows alone (no stored
 * slices: what every cold call cost before they existed), then, after the
 * stats fill of `serve` has stored the sealed slices, cold (no in-memory
 * cache: the first call after a start, and the CLI) and warm (with the
 * server's sealed-slice cache). A benchmark, not a test: it is never run by
 * `npm test`.
 */
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { isoTime } from '../src/clock.ts'
import { didCall } from '../src/telemetry/did-call.ts'
import { type RequestFilter, listRequests, pageOf } from '../src/telemetry/queries.ts'
import { fallbackCounts } from '../src/telemetry/fallbacks.ts'
import { startStatsFill } from '../src/jobs/stats-fill.ts'
import { timeSeries } from '../src/telemetry/series.ts'
import { SliceRollups } from '../src/telemetry/slice-rollups.ts'
import { StatsCache, computeStats } from '../src/telemetry/stats-window.ts'
import { openStore } from '../src/telemetry/store.ts'
import { fillDatabase } from './fill.ts'

const ROWS_PER_DAY = 1_000_000

const { values } = parseArgs({ args: process.argv.slice(2), options: { sizes: { type: 'string', default: '1m,10m' }, keep: { type: 'string' } } })
const sizes = values.sizes!.split(',').map((s) => {
  const match = /^(\d+)([km]?)$/i.exec(s.trim())
  if (!match) throw new Error(`--sizes: "${s}" is not a row count like 1m or 250k`)
  return Number(match[1]) * ({ k: 1_000, m: 1_000_000 }[match[2]!.toLowerCase() as 'k' | 'm'] ?? 1)
})

/** Runs `fn` `runs` times (after one warm-up) and returns the median and the slowest, in ms. */
async function time(runs: number, fn: () => unknown): Promise<{ median: number; max: number }> {
  await fn()
  const ms: number[] = []
  for (let i = 0; i < runs; i++) {
    const start = performance.now()
    await fn()
    ms.push(performance.now() - start)
  }
  ms.sort((a, b) => a - b)
  return { median: ms[Math.floor(ms.length / 2)]!, max: ms[ms.length - 1]! }
}

const fmt = (ms: number) => `${ms.toFixed(ms < 10 ? 2 : 1)} ms`

async function benchSize(rows: number): Promise<void> {
  const dir = values.keep ?? mkdtempSync(join(tmpdir(), 'witness-bench-'))
  const path = join(dir, `bench-${rows}.db`)
  const endMs = Date.now()
  const days = Math.max(1, Math.round(rows / ROWS_PER_DAY))
  console.log(`\n== ${rows.toLocaleString('en')} rows over ${days} day(s) ==`)
  console.log('(each line times the query function its route calls, in this process: no HTTP, validation or JSON)')
  let started = performance.now()
  fillDatabase(path, {
    rows,
    days,
    endMs,
    progress: (n) => {
      if (process.stderr.isTTY && n % 1_000_000 < 45_000) process.stderr.write(`  ${n.toLocaleString('en')} rows\r`)
    },
  })
  console.log(`fill: ${((performance.now() - started) / 1000).toFixed(1)} s, ${(statSync(path).size / 1e6).toFixed(0)} MB`)

  // As the server reads: a read-only connection.
  const db = new Database(path, { readonly: true, strict: true })
  const since = (ms: number) => isoTime(endMs - ms)
  const inWindow = (db.query('SELECT count(*) AS n FROM request_log WHERE timestamp >= $since').get({ $since: since(86_400_000) }) as { n: number }).n
  console.log(`rows in the last 24 h: ${inWindow.toLocaleString('en')}`)

  const report = (label: string, t: { median: number; max: number }, note = '') =>
    console.log(`${label.padEnd(62)} median ${fmt(t.median).padStart(10)}   max ${fmt(t.max).padStart(10)}${note ? `   ${note}` : ''}`)

  for (const [label, window] of [['1h', 3_600_000], ['24h', 86_400_000]] as const) {
    const q = { agent: 'ezra', provider: 'kimi', since: since(window) }
    const answer = didCall(db, q)
    report(`did-call agent=ezra provider=kimi since=${label}, from rows`, await time(20, () => didCall(db, q)), `(${answer.calls.toLocaleString('en')} calls)`)
  }

  const pages: [string, RequestFilter][] = [
    ['/requests?agent=ezra&provider=kimi&since=24h', { agent: 'ezra', provider: 'kimi', since: since(86_400_000) }],
    ['/requests?agent=joshua&since=1h (a quiet agent)', { agent: 'joshua', since: since(3_600_000) }],
    ['/requests?provider=openrouter&status=error', { provider: 'openrouter', status: 'error' }],
    ['/requests?status=timeout&since=24h', { status: 'timeout', since: since(86_400_000) }],
    ['/requests?status=rollback (none exist)', { status: 'rollback' }],
  ]
  for (const [label, filter] of pages) {
    report(`page of 100: ${label}`, await time(20, () => pageOf(listRequests(db, filter, 101), 100)))
  }
  // The tenth page, by cursor, of the first filter.
  let key = undefined as ReturnType<typeof pageOf>['next'] | undefined
  for (let i = 0; i < 9; i++) key = pageOf(listRequests(db, pages[0]![1], 101, key ?? undefined), 100).next
  report('  the same, 10th page by cursor', await time(20, () => listRequests(db, pages[0]![1], 101, key ?? undefined)))

  const query = { since: since(86_400_000), until: isoTime(endMs), by: 'provider' as const }
  started = performance.now()
  await computeStats(db, query, { pricing: {}, nowMs: endMs })
  const rowsMs = performance.now() - started
  report('/stats?since=24h&by=provider, from rows (every row read; one run)', { median: rowsMs, max: rowsMs })

  // The stats fill of `serve` (jobs/stats-fill.ts), run to the end at once. fill.ts writes its rows
  // behind the store's back, so the fill first checks every one of them against the stored slices
  // (a running server checks a minute of rows at a time), then stores the sealed slices of 7 days.
  const store = openStore(path, { sync: 'normal', busyTimeoutMs: 5000 })
  const writing = new SliceRollups(store.reader, (side) => store.write(side), () => endMs)
  const statsFill = startStatsFill({ store, rollups: writing, clock: { now: () => endMs, monotonic: () => performance.now() }, log: (l) => console.error(l), tickMs: null, pauseMs: 0 })
  started = performance.now()
  await statsFill.run()
  const fillMs = performance.now() - started
  await statsFill.stop()
  store.close()
  const size = db.query('SELECT count(*) AS n, sum(length(combos)) AS bytes FROM stats_slice').get() as { n: number; bytes: number }
  console.log(
    `stats fill: checked ${statsFill.counters.checkedRows.toLocaleString('en')} rows, stored ${size.n} slices (${(size.bytes / 1e6).toFixed(1)} MB) in ${(fillMs / 1000).toFixed(1)} s, a few ms a step`,
  )

  // did-call again, now adding up the stored slices' row counts (did-call-stored.ts) for the whole slices of its window.
  for (const [label, window, model] of [['1h', 3_600_000, undefined], ['24h', 86_400_000, undefined], ['24h model=kimi-k2.5', 86_400_000, 'kimi-k2.5']] as const) {
    const q = { agent: 'ezra', provider: 'kimi', since: since(window), ...(model ? { model } : {}) }
    const answer = didCall(db, q)
    report(`did-call agent=ezra provider=kimi since=${label}, stored counts`, await time(20, () => didCall(db, q)), `(${answer.calls.toLocaleString('en')} calls)`)
  }

  // Cold: no in-memory cache, the stored slices read and merged. The first such call in this process
  // also pays for compiling the code it runs (a fresh `witness stats` does); the next ten do not.
  const cold = () => computeStats(db, query, { pricing: {}, nowMs: endMs, rollups: new SliceRollups(db) })
  started = performance.now()
  await cold()
  const firstCold = performance.now() - started
  report('/stats?since=24h&by=provider, cold (no cache: after a start; CLI)', await time(10, cold), `(the first, JIT cold: ${fmt(firstCold)}; from rows: ${fmt(rowsMs)})`)
  const cache = new StatsCache()
  const rollups = new SliceRollups(db)
  started = performance.now()
  await computeStats(db, query, { pricing: {}, nowMs: endMs, cache, rollups })
  const first = performance.now() - started
  report('/stats?since=24h&by=provider, warm (server cache)', await time(10, () => computeStats(db, query, { pricing: {}, nowMs: endMs, cache, rollups })), `(the first call, which fills the cache, took ${fmt(first)})`)
  report('/stats?since=24h&by=agent, warm', await time(10, () => computeStats(db, { ...query, by: 'agent' }, { pricing: {}, nowMs: endMs, cache, rollups })))
  // The dashboard's time series: 1-minute buckets by SQL, larger ones from the same slice cache.
  const series = (ms: number, bucketS: number) => () => timeSeries(db, { since: since(ms), until: isoTime(endMs), bucketS }, { nowMs: endMs, cache, rollups })
  report('/stats/series?since=1h&bucket=1m', await time(10, series(3_600_000, 60)))
  report('/stats/series?since=24h&bucket=30m, warm', await time(10, series(86_400_000, 1800)))
  report('/stats/fallbacks?since=24h', await time(10, () => fallbackCounts(db, since(86_400_000), isoTime(endMs))))

  db.close()
  if (!values.keep) rmSync(dir, { recursive: true, force: true })
}

for (const rows of sizes) await benchSize(rows)
