/**
 * The stats' stored slices (stats_slice): a day of synthetic traffic
 * (bench/fill.ts: retries, timeouts, fallbacks, exhausted chains, calls in
 * flight) answers exactly the same from stored partials as from its rows;
 * a restarted server and the command line answer from them (shown by
 * changing rows behind witness's back, which a stored slice cannot see);
 * and a stored slice is never used stale: not with a call in flight, not
 * after the archive mover took its rows, not after a row landed in it late,
 * and an older database is migrated.
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { dirname, join } from 'node:path'
import { fillDatabase } from '../bench/fill.ts'
import { type Clock, isoTime } from '../src/clock.ts'
import type { Pricing } from '../src/config-schema.ts'
import { openJobDb } from '../src/jobs/job-db.ts'
import { startStatsFill } from '../src/jobs/stats-fill.ts'
import { createMover } from '../src/retention/mover.ts'
import { SIDE_TABLES } from '../src/retention/side-tables.ts'
import { SCHEMA_VERSION } from '../src/telemetry/schema.ts'
import { timeSeries } from '../src/telemetry/series.ts'
import { foldStepwise } from '../src/telemetry/fold-stepwise.ts'
import { SliceRollups } from '../src/telemetry/slice-rollups.ts'
import { CHECKED_ID_KEY, DELETE_EPOCH_KEY, orphanedStored, storeSliceWrite } from '../src/telemetry/slice-store.ts'
import { STATS_BY } from '../src/telemetry/stats.ts'
import { SEAL_AFTER_MS, SLICE_MS, StatsCache, computeStats, slicePartials } from '../src/telemetry/stats-window.ts'
import { BUN, ROOT } from './support/process.ts'
import { seed, seedStore } from './support/seed-requests.ts'
import { oldDatabase } from './support/old-database.ts'
import { type LiveStats, openLiveStats } from './support/stats-live.ts'
import { tempDir } from './support/temp.ts'
import { manualClock, startWitness } from './support/witness.ts'

const NOW = Date.parse('2026-11-25T12:03:00.000Z')
const clock: Clock = { now: () => NOW, monotonic: () => performance.now() }
const DAY = { since: isoTime(NOW - 86_400_000), until: isoTime(NOW) }
/** The end of the last sealed slice at NOW. */
const SEALED_END = Math.floor((NOW - SEAL_AFTER_MS) / SLICE_MS) * SLICE_MS

const PRICING: Pricing = {
  'kimi-k2.5': { input_per_mtok: 0.6, output_per_mtok: 2.5 },
  'groq/llama-3.3-70b-versatile': { input_per_mtok: 0.59, output_per_mtok: 0.79 },
  'gemma3:27b': { input_per_mtok: 0, output_per_mtok: 0 },
}

type Live = LiveStats

/** A day of synthetic traffic ending `endMs`, with a store and a stats fill (no timer) on it. */
function liveDb(options: { rows?: number; days?: number; endMs?: number; dir?: string; now?: Clock } = {}): Live {
  const dir = options.dir ?? tempDir()
  const path = join(dir, 'witness.db')
  fillDatabase(path, { rows: options.rows ?? 12_000, days: options.days ?? 1, endMs: options.endMs ?? NOW - 20 * 60_000 })
  return open(path, dir, options.now ?? clock)
}

const open = openLiveStats

const storedCount = (db: Database) => (db.query('SELECT count(*) AS n FROM stats_slice').get() as { n: number }).n
/** Stored slices a read of DAY can use: whole slices inside it. */
const storedInDay = (db: Database) =>
  (db.query('SELECT count(*) AS n FROM stats_slice WHERE slice_start >= ? AND slice_start < ?').get(isoTime(Math.ceil((NOW - 86_400_000) / SLICE_MS) * SLICE_MS), isoTime(SEALED_END)) as { n: number }).n
const stateOf = (db: Database, key: string) => (db.query('SELECT value FROM witness_state WHERE key = ?').get(key) as { value: string } | null)?.value ?? null
const maxId = (db: Database) => (db.query('SELECT max(id) AS m FROM request_log').get() as { m: number }).m
const sliceHasPending = (db: Database, from: string) =>
  db.query("SELECT 1 FROM request_log WHERE status = 'pending' AND timestamp >= ? AND timestamp < ?").get(from, isoTime(Date.parse(from) + SLICE_MS)) !== null

/** The answer from the rows alone (no cache, no stored slices). */
const fromRows = (db: Database, by: (typeof STATS_BY)[number] = 'provider', agent?: string) => computeStats(db, { ...DAY, by, agent }, { pricing: PRICING, nowMs: NOW })

/** The answer as the command line gets it: stored slices read, never written. */
async function fromStored(db: Database, by: (typeof STATS_BY)[number] = 'provider', agent?: string) {
  const rollups = new SliceRollups(db)
  const result = await computeStats(db, { ...DAY, by, agent }, { pricing: PRICING, nowMs: NOW, rollups })
  return { result, counters: rollups.counters }
}

describe('stored slices answer exactly as the rows do', () => {
  let live: Live
  beforeAll(async () => {
    live = liveDb()
    await live.fill.run()
  })
  afterAll(() => live.close())

  test('the fill stores every sealed slice of the window except those with a call in flight', () => {
    const sealed = (SEALED_END - Math.floor((NOW - 86_400_000 - 20 * 60_000) / SLICE_MS) * SLICE_MS) / SLICE_MS
    const stored = live.reader.query('SELECT slice_start FROM stats_slice ORDER BY slice_start').values() as [string][]
    // bench/fill.ts leaves its last requests in flight: their slice is sealed by time, but not stored.
    expect(live.fill.counters.skippedUnfinal).toBeGreaterThanOrEqual(1)
    expect(stored.length + live.fill.counters.skippedUnfinal).toBe(sealed)
    for (const [from] of stored) {
      expect(sliceHasPending(live.reader, from)).toBe(false)
      expect(Date.parse(from) + SLICE_MS).toBeLessThanOrEqual(SEALED_END)
    }
    // Every row checked against them: readers look at the rows added from here on only.
    expect(Number(stateOf(live.reader, CHECKED_ID_KEY))).toBe(maxId(live.reader))
  })

  test('each slice partial read back equals the one folded from its rows, combo by combo, latency by latency', async () => {
    const stored = await slicePartials(live.reader, DAY.since, DAY.until, { nowMs: NOW, rollups: new SliceRollups(live.reader) })
    const folded = await slicePartials(live.reader, DAY.since, DAY.until, { nowMs: NOW })
    expect(stored.length).toBe(folded.length)
    expect(stored).toEqual(folded)
  })

  test('counts, tokens, costs, exact percentiles and requests agree for every grouping and for one agent', async () => {
    for (const by of STATS_BY) {
      const { result, counters } = await fromStored(live.reader, by)
      expect(result, by).toEqual(await fromRows(live.reader, by))
      expect(counters.loaded).toBe(storedInDay(live.reader))
      // Only the sealed slices holding a call in flight were read from rows.
      expect(counters.folded).toBe(live.fill.counters.skippedUnfinal)
    }
    const ezra = (await fromStored(live.reader, 'model', 'ezra')).result
    expect(ezra).toEqual(await fromRows(live.reader, 'model', 'ezra'))
    expect(ezra.groups.length).toBeGreaterThan(3)
    expect(ezra.groups.every((g) => g.p99_ms !== null && g.requests > 0)).toBe(true)
  })

  test('the time series from stored slices equals the one from rows', async () => {
    for (const bucketS of [600, 1800, 86_400]) {
      const q = { ...DAY, bucketS }
      expect(await timeSeries(live.reader, q, { nowMs: NOW, rollups: new SliceRollups(live.reader) })).toEqual(await timeSeries(live.reader, q, { nowMs: NOW }))
    }
  })

  test('a second run finds nothing to do; stored slices of one file are never used for another', async () => {
    const before = { ...live.fill.counters }
    await live.fill.run()
    expect(live.fill.counters.folded - before.folded).toBe(before.skippedUnfinal)
    expect(live.fill.counters.skippedUnfinal - before.skippedUnfinal).toBe(before.skippedUnfinal)
    // Rollups belong to the database they were made for: another connection's reads fold rows.
    const other = new SliceRollups(live.store.reader)
    await computeStats(live.reader, { ...DAY, by: 'provider' }, { pricing: PRICING, nowMs: NOW, rollups: other })
    expect(other.counters.loaded).toBe(0)
  })
})

describe('a restarted server and the command line answer from stored slices', () => {
  const config = { providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] }, pricing: PRICING }
  const query = `/stats?since=${DAY.since}&until=${DAY.until}&by=provider`

  // Finished rows never change; changing them here (behind witness's back) is how the tests tell
  // an answer from stored partials (the old latencies) from one read from rows (the new ones).
  // Only rows of stored slices wholly inside the window read (`since` on): the rest is read from rows.
  const tamper = (path: string, since: string) => {
    const db = new Database(path)
    db.query(
      `UPDATE request_log SET latency_ms = latency_ms + 100000
       WHERE status = 'success' AND substr(timestamp, 1, 15) || '0:00.000Z' IN (SELECT slice_start FROM stats_slice WHERE slice_start >= ?)`,
    ).run(since)
    db.close()
  }

  test('the first /stats after a restart merges the stored slices: it does not read their rows', async () => {
    const dir = tempDir()
    fillDatabase(join(dir, 'witness.db'), { rows: 12_000, days: 1, endMs: NOW - 20 * 60_000 })
    const first = await startWitness(config, { dir, clock: { now: () => NOW, monotonic: () => performance.now() }, statsFill: { tickMs: null } })
    await first.statsFill!.run()
    const stored = await (await fetch(`${first.url}${query}`)).json()
    expect(stored.groups.length).toBeGreaterThan(3)
    await first.stop(1000)

    tamper(join(dir, 'witness.db'), DAY.since)
    const second = await startWitness(config, { dir, clock: { now: () => NOW, monotonic: () => performance.now() } })
    try {
      const after = await (await fetch(`${second.url}${query}`)).json()
      expect(after).toEqual(stored)
      expect(second.rollups.counters.loaded).toBeGreaterThan(100)
      expect(second.rollups.counters.folded).toBeLessThanOrEqual(2)
      // Read from rows, the same window shows the changed latencies.
      const db = new Database(join(dir, 'witness.db'), { readonly: true, strict: true })
      const rows = await fromRows(db)
      db.close()
      expect(rows.groups[0]!.p50_ms).toBeGreaterThan(100_000)
      expect(after.groups[0].p50_ms).toBeLessThan(100_000)
    } finally {
      await second.stop(1000)
    }
  })

  test('witness stats (the command line) reads the stored slices and writes nothing', async () => {
    // The command line cuts its window at its own clock: the data ends 20 minutes before now.
    const nowMs = Date.now()
    const at: Clock = { now: () => nowMs, monotonic: () => performance.now() }
    const live = liveDb({ endMs: nowMs - 20 * 60_000, now: at })
    await live.fill.run()
    const since = isoTime(Math.floor((nowMs - 86_400_000) / SLICE_MS) * SLICE_MS)
    const until = isoTime(Math.floor((nowMs - SEAL_AFTER_MS) / SLICE_MS) * SLICE_MS - SLICE_MS)
    const cli = () => {
      const proc = Bun.spawnSync([BUN, join(ROOT, 'src/cli.ts'), 'stats', '--db', live.path, '--since', since, '--until', until, '--json'], { env: { PATH: process.env.PATH ?? '' } })
      expect(proc.stderr.toString()).toBe('')
      return JSON.parse(proc.stdout.toString())
    }
    const before = cli()
    const stored = storedCount(live.reader)
    await live.close()
    tamper(live.path, since)
    const db = new Database(live.path, { readonly: true, strict: true })
    try {
      expect(cli()).toEqual(before)
      expect(storedCount(db)).toBe(stored)
      const rows = await computeStats(db, { since, until, by: 'provider' }, { pricing: {}, nowMs })
      expect(rows.groups[0]!.p50_ms).not.toBe(before.groups[0].p50_ms)
    } finally {
      db.close()
    }
  })
})

describe('a stored slice is never used stale', () => {
  test('a slice holding a call in flight is not stored, by the fill or by a read, until the call is finished', async () => {
    const dir = tempDir()
    const live = open(join(dir, 'witness.db'), dir, clock)
    try {
      const slice = isoTime(SEALED_END - 3 * SLICE_MS)
      const ids = await seed(live.store, [
        { agent: 'ezra', at: isoTime(Date.parse(slice) + 60_000), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 40, tokensIn: 10, tokensOut: 5 }] },
        { agent: 'ezra', at: isoTime(Date.parse(slice) + 120_000), rows: [{ provider: 'groq', model: 'llama', status: 'pending' }] },
        { agent: 'bezalel', at: isoTime(Date.parse(slice) - SLICE_MS + 1000), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 70 }] },
      ])
      const inFlight = ids[1]![0]!
      await live.fill.run()
      expect(live.fill.counters.skippedUnfinal).toBe(1)
      expect(live.reader.query('SELECT slice_start FROM stats_slice').values()).toEqual([[isoTime(Date.parse(slice) - SLICE_MS)]])
      // A read folds it from rows and does not store it either.
      const answer = await computeStats(live.store.reader, { ...DAY, by: 'provider' }, { pricing: PRICING, nowMs: NOW, rollups: live.rollups })
      await live.rollups.settled()
      expect(storedCount(live.reader)).toBe(1)
      expect(answer).toEqual(await fromRows(live.reader))

      await live.store.finish(inFlight, { status: 'success', tokensIn: 1, tokensOut: 1, latencyMs: 900, errorMessage: null })
      await live.fill.run()
      expect(storedCount(live.reader)).toBe(2)
      const { result, counters } = await fromStored(live.reader)
      expect(counters.loaded).toBe(2)
      expect(result).toEqual(await fromRows(live.reader))
      expect(result.groups.find((g) => g.provider === 'groq')).toMatchObject({ attempts: 1, p50_ms: 900 })
    } finally {
      await live.close()
    }
  })

  test('a slice is stored only once its longest call ended long enough ago for what follows it to be written', async () => {
    const dir = tempDir()
    const at = manualClock(NOW)
    const live = open(join(dir, 'witness.db'), dir, at)
    try {
      // A stream started early in a slice that is sealed by its end (an hour ago), failed after 50
      // minutes, 4 minutes ago: its fallback has not been written yet (the backoff and Retry-After
      // wait are under the 5 minutes of SEAL_AFTER_MS, measured from the call's end).
      const slice = SEALED_END - 6 * SLICE_MS
      const started = slice + 60_000
      const latencyMs = NOW - 4 * 60_000 - started
      const requestId = 'long-stream'
      await seed(live.store, [{ agent: 'ezra', at: isoTime(started), requestId, rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'error', latencyMs }] }])
      await live.fill.run()
      expect(live.fill.counters.skippedUnfinal).toBe(1)
      expect(storedCount(live.reader)).toBe(0)
      const read = await computeStats(live.store.reader, { ...DAY, by: 'provider' }, { pricing: PRICING, nowMs: NOW, rollups: live.rollups })
      await live.rollups.settled()
      expect(storedCount(live.reader)).toBe(0)
      expect(read.groups).toMatchObject([{ provider: 'kimi', requests: 1, request_success_rate: 0 }])

      // Its fallback serves the request, a minute later (in a later slice): the request succeeded.
      at.advance(60_000)
      await seed(live.store, [
        { agent: 'ezra', at: isoTime(NOW + 60_000), requestId, firstSeq: 2, rows: [{ provider: 'groq', model: 'llama', status: 'fallback' }, { provider: 'groq', model: 'llama', status: 'success', latencyMs: 300 }] },
      ])
      at.advance(10 * 60_000)
      await live.fill.run()
      expect(storedCount(live.reader)).toBeGreaterThanOrEqual(1)
      const later = { since: DAY.since, until: isoTime(at.now()) }
      const stored = new SliceRollups(live.reader)
      const fromStorage = await computeStats(live.reader, { ...later, by: 'provider' }, { pricing: PRICING, nowMs: at.now(), rollups: stored })
      expect(stored.counters.loaded).toBeGreaterThanOrEqual(1)
      expect(fromStorage).toEqual(await computeStats(live.reader, { ...later, by: 'provider' }, { pricing: PRICING, nowMs: at.now() }))
      // One request, served by groq: the kimi error is an attempt, not a failed request.
      expect(fromStorage.groups.find((g) => g.provider === 'kimi')).toMatchObject({ attempts: 1, requests: 0 })
      expect(fromStorage.groups.find((g) => g.provider === 'groq')).toMatchObject({ requests: 1, request_success_rate: 1 })
    } finally {
      await live.close()
    }
  })

  test('a retry written after its request\'s slice looked final (the clock jumped during the backoff) unseals that slice, stored and cached', async () => {
    const dir = tempDir()
    const live = open(join(dir, 'witness.db'), dir, manualClock(NOW))
    try {
      // A call failed in a slice sealed long ago, and its retry waits out its backoff. The wall clock
      // jumped ahead meanwhile (a VM resumed, NTP stepped it): the slice looks final, and is stored.
      const requestId = 'jumped'
      await seed(live.store, [{ agent: 'ezra', at: isoTime(SEALED_END - 6 * SLICE_MS + 60_000), requestId, rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'error', latencyMs: 100 }] }])
      await live.fill.run()
      expect(storedCount(live.reader)).toBe(1)
      const cache = new StatsCache()
      const serverRead = () => computeStats(live.reader, { ...DAY, by: 'provider' }, { pricing: PRICING, nowMs: NOW, cache, rollups: new SliceRollups(live.reader) })
      expect((await serverRead()).groups).toMatchObject([{ provider: 'kimi', requests: 1, request_success_rate: 0 }])
      expect(cache.size(live.reader)).toBe(1)

      // The retry succeeds, in the newest slice: one request, served.
      await seed(live.store, [{ agent: 'ezra', at: isoTime(NOW - 1000), requestId, firstSeq: 2, rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 100 }] }])
      const rows = await fromRows(live.reader)
      expect(rows.groups).toMatchObject([{ provider: 'kimi', attempts: 2, requests: 1, request_success_rate: 1 }])
      expect((await fromStored(live.reader)).result).toEqual(rows)
      expect(await serverRead()).toEqual(rows)
      await live.fill.run()
      expect(live.fill.counters.dropped).toBe(1)
      expect((await fromStored(live.reader)).result).toEqual(rows)
    } finally {
      await live.close()
    }
  })

  test('a slice folded before a retry of one of its requests was written is not stored after it', async () => {
    const dir = tempDir()
    const live = open(join(dir, 'witness.db'), dir, manualClock(NOW))
    try {
      const from = isoTime(SEALED_END - 6 * SLICE_MS)
      const to = isoTime(SEALED_END - 5 * SLICE_MS)
      await seed(live.store, [{ agent: 'ezra', at: isoTime(Date.parse(from) + 1000), requestId: 'r', rows: [{ provider: 'kimi', status: 'error', latencyMs: 100 }] }])
      const folded = await foldStepwise(live.store.reader, from, to, async () => {})
      await seed(live.store, [{ agent: 'ezra', at: isoTime(NOW - 1000), requestId: 'r', firstSeq: 2, rows: [{ provider: 'kimi', status: 'success', latencyMs: 100 }] }])
      await live.store.write(storeSliceWrite(folded, isoTime(NOW)))
      expect(storedCount(live.reader)).toBe(0)
      await live.store.write(storeSliceWrite(await foldStepwise(live.store.reader, from, to, async () => {}), isoTime(NOW)))
      expect(storedCount(live.reader)).toBe(1)
    } finally {
      await live.close()
    }
  })

  test('a row written into a cached slice after the clock stepped back is seen by the cache', async () => {
    const { store } = seedStore()
    try {
      const slice = SEALED_END - 6 * SLICE_MS
      await seed(store, [{ agent: 'ezra', at: isoTime(slice + 60_000), rows: [{ provider: 'kimi', status: 'success', latencyMs: 10 }] }])
      const cache = new StatsCache()
      const read = (nowMs: number) => computeStats(store.reader, { ...DAY, by: 'provider' }, { pricing: PRICING, nowMs, cache })
      await read(NOW)
      expect(cache.size(store.reader)).toBe(1)
      // The clock steps back into that slice: the router's next row is dated in it, though it is not late then.
      await seed(store, [{ agent: 'ezra', at: isoTime(slice + 120_000), rows: [{ provider: 'kimi', status: 'success', latencyMs: 10 }] }])
      await read(slice + 130_000)
      // Once the clock is past it again, the slice is read from its rows, both rows in it.
      expect((await read(NOW)).groups).toMatchObject([{ provider: 'kimi', attempts: 2 }])
    } finally {
      store.close()
    }
  })

  test('the archive mover deletes the stored slices of the rows it moves, in the same transaction', async () => {
    const live = liveDb()
    try {
      await live.fill.run()
      const stored = storedCount(live.reader)
      const usable = storedInDay(live.reader)
      const firstSlice = (live.reader.query('SELECT min(slice_start) AS s FROM stats_slice').get() as { s: string }).s
      const jobDb = openJobDb(live.path)
      const mover = createMover(jobDb, { dir: join(live.dir, 'archive'), sides: SIDE_TABLES, now: () => NOW })
      // Part of the oldest slice only: what is left of it must not be answered from its old sums.
      const oldest = mover.oldest(isoTime(Date.parse(firstSlice) + SLICE_MS), 10)
      await mover.move(oldest)
      mover.close()
      jobDb.close()
      expect(oldest.every((r) => r.timestamp >= firstSlice && r.timestamp < isoTime(Date.parse(firstSlice) + SLICE_MS))).toBe(true)
      expect(live.reader.query('SELECT 1 FROM stats_slice WHERE slice_start = ?').get(firstSlice)).toBeNull()
      expect(storedCount(live.reader)).toBe(stored - 1)
      expect(stateOf(live.reader, DELETE_EPOCH_KEY)).toBe('1')
      const { result, counters } = await fromStored(live.reader)
      expect(result).toEqual(await fromRows(live.reader))
      // The oldest slice starts before the day read: what the day can use is unchanged.
      expect(firstSlice < DAY.since).toBe(true)
      expect(counters.loaded).toBe(usable)
      // The fill stores what is left of the slice again.
      await live.fill.run()
      expect(storedCount(live.reader)).toBe(stored)
      expect((await fromStored(live.reader)).result).toEqual(await fromRows(live.reader))
    } finally {
      await live.close()
    }
  })

  test('the stored slices of a quiet hour (no row) go with the rows archived after them, not stay for good', async () => {
    const dir = tempDir()
    const live = open(join(dir, 'witness.db'), dir, clock)
    try {
      // A call, a quiet hour, a call: the six slices in between hold no row.
      const first = SEALED_END - 20 * SLICE_MS
      const last = first + 7 * SLICE_MS
      await seed(live.store, [
        { agent: 'ezra', at: isoTime(first + 1000), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 5 }] },
        { agent: 'ezra', at: isoTime(last + 1000), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 5 }] },
      ])
      await live.fill.run()
      await live.rollups.settled()
      const empty = () => (live.reader.query('SELECT count(*) AS n FROM stats_slice WHERE lo_id IS NULL').get() as { n: number }).n
      expect(empty()).toBe(6)
      // Retention takes both rows (everything before the end of the second call's slice).
      const jobDb = openJobDb(live.path)
      const mover = createMover(jobDb, { dir: join(dir, 'archive'), sides: SIDE_TABLES, now: () => NOW })
      await mover.move(mover.oldest(isoTime(last + SLICE_MS), 10))
      mover.close()
      jobDb.close()
      expect(live.reader.query('SELECT count(*) AS n FROM request_log').get()).toEqual({ n: 0 })
      expect(storedCount(live.reader)).toBe(0)
      expect(live.reader.query('SELECT count(*) AS n FROM slice_row_counts').get()).toEqual({ n: 0 })
    } finally {
      await live.close()
    }
  })

  test('a request cut in two by the mover: the slices holding its other rows are dropped too, stored and cached', async () => {
    const live = liveDb()
    try {
      // A call that fails just before a slice boundary and its fallback row just after it, in a day of traffic.
      const boundary = SEALED_END - 40 * SLICE_MS
      await seed(live.store, [
        { agent: 'ezra', at: isoTime(boundary - 10_000), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'error', latencyMs: 2000 }, { provider: 'groq', status: 'fallback', at: isoTime(boundary + 2000) }] },
      ])
      await live.fill.run()
      const cache = new StatsCache()
      const rollups = new SliceRollups(live.reader)
      const warm = () => computeStats(live.reader, { ...DAY, by: 'provider' }, { pricing: PRICING, nowMs: NOW, cache, rollups })
      expect(await warm()).toEqual(await fromRows(live.reader))
      // Retention's cut falls on the boundary: the call row moves, its fallback row stays.
      const jobDb = openJobDb(live.path)
      const mover = createMover(jobDb, { dir: join(live.dir, 'archive'), sides: SIDE_TABLES, now: () => NOW })
      for (let rows = mover.oldest(isoTime(boundary), 500); rows.length; rows = mover.oldest(isoTime(boundary), 500)) await mover.move(rows)
      mover.close()
      jobDb.close()
      expect(live.reader.query('SELECT 1 FROM stats_slice WHERE slice_start = ?').get(isoTime(boundary))).toBeNull()
      const rows = await fromRows(live.reader)
      expect(rows.groups.find((g) => g.provider === 'groq')?.requests).toBeGreaterThan(0)
      expect((await fromStored(live.reader)).result).toEqual(rows)
      expect(await warm()).toEqual(rows)
    } finally {
      await live.close()
    }
  })

  test('a late row with a timestamp SQLite would not write back (T24:00) is seen by stored and cached slices alike', async () => {
    const live = liveDb()
    try {
      await live.fill.run()
      const cache = new StatsCache()
      const rollups = new SliceRollups(live.reader)
      const warm = () => computeStats(live.reader, { ...DAY, by: 'provider' }, { pricing: PRICING, nowMs: NOW, cache, rollups })
      await warm()
      // Midnight written as the end of the day before: it sorts into that day's last slice.
      const day = isoTime(Math.floor((NOW - 12 * 3_600_000) / 86_400_000) * 86_400_000 - 86_400_000).slice(0, 10)
      const late = `${day}T24:00:00.000Z`
      expect(late > DAY.since && late < isoTime(SEALED_END)).toBe(true)
      await seed(live.store, [{ agent: 'ezra', at: late, rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 5, at: late }] }])
      const rows = await fromRows(live.reader)
      expect((await fromStored(live.reader)).result).toEqual(rows)
      expect(await warm()).toEqual(rows)
      await live.fill.run()
      expect((await fromStored(live.reader)).result).toEqual(rows)
    } finally {
      await live.close()
    }
  })

  test('a slice folded before the mover took some of its rows is not stored after it', async () => {
    const live = liveDb()
    try {
      const first = (live.reader.query('SELECT min(timestamp) AS t FROM request_log').get() as { t: string }).t
      const from = isoTime(Math.floor(Date.parse(first) / SLICE_MS) * SLICE_MS)
      const to = isoTime(Date.parse(from) + SLICE_MS)
      const folded = await foldStepwise(live.store.reader, from, to, async () => {})
      expect(folded.epoch).toBeNull()
      const jobDb = openJobDb(live.path)
      const mover = createMover(jobDb, { dir: join(live.dir, 'archive'), sides: SIDE_TABLES, now: () => NOW })
      await mover.move(mover.oldest(to, 5))
      mover.close()
      jobDb.close()
      await live.store.write(storeSliceWrite(folded, isoTime(NOW)))
      expect(storedCount(live.reader)).toBe(0)
      // Folded under the same epoch as its write: stored.
      await live.store.write(storeSliceWrite(await foldStepwise(live.store.reader, to, isoTime(Date.parse(to) + SLICE_MS), async () => {}), isoTime(NOW)))
      expect(storedCount(live.reader)).toBe(1)
    } finally {
      await live.close()
    }
  })

  test('a row added late into a stored slice is seen at once; the fill then drops the slice and stores it again', async () => {
    const live = liveDb()
    try {
      await live.fill.run()
      const stored = storedInDay(live.reader)
      const slice = isoTime(SEALED_END - 30 * SLICE_MS)
      const kimiBefore = (await fromRows(live.reader)).groups.find((g) => g.provider === 'kimi')!
      // As a watchdog's direct write or another clock would: a finished row stamped in the past.
      await seed(live.store, [{ agent: 'ezra', at: isoTime(Date.parse(slice) + 1234), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 4_000_000, tokensIn: 1, tokensOut: 1 }] }])
      const seen = await fromStored(live.reader)
      expect(seen.result).toEqual(await fromRows(live.reader))
      expect(seen.counters.loaded).toBe(stored - 1)
      expect(seen.result.groups.find((g) => g.provider === 'kimi')).toMatchObject({ success: kimiBefore.success + 1, tokens_in: kimiBefore.tokens_in + 1 })

      await live.fill.run()
      expect(live.fill.counters.dropped).toBe(1)
      expect(Number(stateOf(live.reader, CHECKED_ID_KEY))).toBe(maxId(live.reader))
      expect(storedInDay(live.reader)).toBe(stored)
      const again = await fromStored(live.reader)
      expect(again.counters.loaded).toBe(stored)
      expect(again.result).toEqual(seen.result)
    } finally {
      await live.close()
    }
  })

  test('stored slices whose oldest rows were deleted by hand (oldest first, as retention does) are not used', async () => {
    const live = liveDb()
    try {
      await live.fill.run()
      const usable = storedInDay(live.reader)
      // Up to the middle of the day's fourth whole slice: three whole slices and half of one gone.
      const cut = isoTime(Math.ceil((NOW - 86_400_000) / SLICE_MS) * SLICE_MS + 3 * SLICE_MS + SLICE_MS / 2)
      const db = new Database(live.path)
      db.query('DELETE FROM request_log_meta WHERE log_id IN (SELECT id FROM request_log WHERE timestamp < ?)').run(cut)
      db.query('DELETE FROM request_log WHERE timestamp < ?').run(cut)
      db.close()
      const { result, counters } = await fromStored(live.reader)
      expect(counters.loaded).toBe(usable - 4)
      expect(result).toEqual(await fromRows(live.reader))

      // The fill drops them (those before the day's window too) and stores what is left of the fourth
      // again; the first three hold no rows now.
      await live.fill.run()
      expect(live.fill.counters.dropped).toBeGreaterThanOrEqual(4)
      expect(orphanedStored(live.reader)).toBe(0)
      const again = await fromStored(live.reader)
      expect(again.counters.loaded).toBe(usable - 3)
      expect(again.result).toEqual(result)
    } finally {
      await live.close()
    }
  })
})

describe('a window reaching back to one old row', () => {
  test('folds and stores only the slices holding rows, not every empty slice between (a year back was 52,560 folds)', async () => {
    const w = await startWitness({ providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] } }, { clock: manualClock(NOW) })
    try {
      const call = (at: number) => ({ agent: 'ezra', at: isoTime(at), rows: [{ provider: 'kimi', status: 'success' as const, latencyMs: 20 }] })
      // A row from a clock that was reset, a year back; then a few calls of the last hours, two in one slice.
      await seed(w.store, [call(NOW - 300 * 86_400_000), call(NOW - 5 * 3_600_000), call(NOW - 5 * 3_600_000 + 1000), call(NOW - 2 * 3_600_000), call(NOW - 60_000)])
      const since = isoTime(NOW - 365 * 86_400_000)
      const stats = await (await fetch(`${w.url}/stats?since=${since}&by=provider`)).json()
      expect(stats.groups).toMatchObject([{ provider: 'kimi', attempts: 5, success: 5 }])
      expect(w.rollups.counters.folded).toBe(3) // the three sealed slices with rows; the newest is not sealed
      await w.rollups.settled()
      const db = new Database(w.dbPath, { readonly: true })
      expect(storedCount(db)).toBe(3)
      db.close()
      // The time series over the same year buckets the same five calls.
      const series = await (await fetch(`${w.url}/stats/series?since=${since}&bucket=1d`)).json()
      expect(series.attempts.success.reduce((a: number, b: number) => a + b, 0)).toBe(5)
    } finally {
      await w.stop(0)
    }
  })
})

describe('older databases', () => {
  test('a schema version 6 database is read as before by the command line, and migrated and filled by the server', async () => {
    const { path, db: old } = oldDatabase(6, 4000, NOW - 20 * 60_000)
    old.close()

    const reader = new Database(path, { readonly: true, strict: true })
    const before = await fromStored(reader)
    expect(before.counters.loaded).toBe(0)
    expect(before.result).toEqual(await fromRows(reader))
    reader.close()

    const live = open(path, dirname(path), clock)
    try {
      expect(live.reader.query('PRAGMA user_version').get()).toEqual({ user_version: SCHEMA_VERSION })
      expect(storedCount(live.reader)).toBe(0)
      expect(Number(stateOf(live.reader, CHECKED_ID_KEY))).toBe(maxId(live.reader))
      await live.fill.run()
      const { result, counters } = await fromStored(live.reader)
      expect(counters.loaded).toBe(storedInDay(live.reader))
      expect(counters.loaded).toBeGreaterThan(100)
      expect(result).toEqual(before.result)
    } finally {
      await live.close()
    }
  })
})

describe('the fill', () => {
  test('a check ends at the rows there as it began, however fast rows are added meanwhile', async () => {
    const live = liveDb({ rows: 2000, days: 1 / 24 })
    const writer = new Database(live.path)
    const insert = writer.query("INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status) VALUES (?, 'ezra', 'kimi', 'm', 'e', 'success')")
    const at = isoTime(NOW)
    // More rows every turn of the loop than a check step reads (4000), for 40 turns.
    let turns = 0
    const add = () => {
      writer.transaction(() => {
        for (let i = 0; i < 5000; i++) insert.run(at)
      })()
      if (++turns < 40) setImmediate(add)
    }
    try {
      setImmediate(add)
      await live.fill.run()
      // Chasing the writer, the check went on until it stopped, and checked every row it wrote.
      expect(turns).toBeLessThan(40)
      expect(Number(stateOf(live.reader, CHECKED_ID_KEY))).toBeGreaterThan(0)
    } finally {
      while (turns < 40) await Bun.sleep(5)
      writer.close()
      await live.close()
    }
  })

  test('gives the event loop back inside a slice, not only between slices', async () => {
    // 6000 rows in one hour: about 1000 rows a slice.
    const live = liveDb({ rows: 6000, days: 1 / 24 })
    try {
      let turns = 0
      let filling = true
      const ticker = (async () => {
        while (filling) {
          await new Promise((resolve) => setImmediate(resolve))
          turns++
        }
      })()
      const fill = startStatsFill({ store: live.store, rollups: live.rollups, clock, log: () => {}, tickMs: null, stepMs: 0, pauseMs: 0 })
      await fill.run()
      filling = false
      await ticker
      await fill.stop()
      expect(fill.counters.folded).toBeLessThanOrEqual(8)
      // A look at the time every 64 rows, a step of 0 ms: the loop turns about 15 times a slice.
      expect(turns).toBeGreaterThan(6000 / 64 / 2)
    } finally {
      await live.close()
    }
  })

  test('checks rows by count, not by id: a row written with an id far ahead is checked in one step', async () => {
    const live = liveDb({ rows: 3000 })
    try {
      await live.fill.run()
      // As a hand-made row would: an explicit id a trillion past the last (the check went 4000 ids a step).
      const far = maxId(live.reader) + 1_000_000_000_000
      const hand = new Database(live.path)
      hand.query("INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, status) VALUES (?, ?, 'ezra', 'kimi', 'm', 'e', 'success')").run(far, isoTime(NOW - 60_000))
      hand.close()
      await live.fill.run()
      expect(Number(stateOf(live.reader, CHECKED_ID_KEY))).toBe(far)
    } finally {
      await live.close()
    }
  })

  test('fills the last 7 days only, and stops between steps when asked', async () => {
    const live = liveDb({ rows: 9000, days: 9 })
    try {
      await live.fill.run()
      const oldest = (live.reader.query('SELECT min(slice_start) AS s FROM stats_slice').get() as { s: string }).s
      expect(Date.parse(oldest)).toBeGreaterThanOrEqual(NOW - 7 * 86_400_000 - SLICE_MS)
      expect(Date.parse(oldest)).toBeLessThan(NOW - 7 * 86_400_000 + SLICE_MS)

      const other = liveDb({ rows: 3000 })
      const fill = startStatsFill({ store: other.store, rollups: other.rollups, clock, log: () => {}, tickMs: null, pauseMs: 1 })
      const run = fill.run()
      await fill.stop()
      await run
      expect(fill.counters.folded).toBeLessThan(144)
      await other.close()
    } finally {
      await live.close()
    }
  })
})
