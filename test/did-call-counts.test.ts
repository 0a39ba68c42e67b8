/**
 * did-call from stored row counts (slice_row_counts): over a day of
 * synthetic traffic with rare statuses, fallbacks, rollbacks and calls in
 * flight, the answer read with the stored counts equals the answer counted
 * from the index alone, for every kind of window; the stored counts are
 * really what answers (shown by changing rows behind witness's back, which
 * they cannot see); a row added late, the archive mover, and a slice
 * deleted by hand never make them answer wrong; and a schema version 7
 * database is read as before, then migrated and filled.
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { dirname, join } from 'node:path'
import { AGENTS, fillDatabase } from '../bench/fill.ts'
import { type Clock, isoTime } from '../src/clock.ts'
import { openJobDb } from '../src/jobs/job-db.ts'
import { createMover } from '../src/retention/mover.ts'
import { SIDE_TABLES } from '../src/retention/side-tables.ts'
import { didCall } from '../src/telemetry/did-call.ts'
import { MIN_STORED_SLICES, didCallCountsLive } from '../src/telemetry/did-call-stored.ts'
import { type DidCallQuery, didCallCounts } from '../src/telemetry/queries.ts'
import { SCHEMA_VERSION } from '../src/telemetry/schema.ts'
import { foldStepwise } from '../src/telemetry/fold-stepwise.ts'
import { storeSliceWrite } from '../src/telemetry/slice-store.ts'
import { SEAL_AFTER_MS, SLICE_MS } from '../src/telemetry/stats-window.ts'
import { seed } from './support/seed-requests.ts'
import { oldDatabase } from './support/old-database.ts'
import { type LiveStats, openLiveStats } from './support/stats-live.ts'
import { tempDir } from './support/temp.ts'

const NOW = Date.parse('2026-11-25T12:03:00.000Z')
const clock: Clock = { now: () => NOW, monotonic: () => performance.now() }
const SEALED_END = Math.floor((NOW - SEAL_AFTER_MS) / SLICE_MS) * SLICE_MS
const PROVIDERS = ['kimi', 'openrouter', 'ollama', 'groq', 'mimo', 'runpod']
const MODELS: Record<string, string> = { kimi: 'kimi-k2.5', groq: 'llama-3.3-70b-versatile', ollama: 'gemma3:27b' }

type Live = LiveStats
const open = (path: string, dir: string): Live => openLiveStats(path, dir, clock)

/** A day of synthetic traffic (calls in flight at its end), plus rollback rows in stored slices. */
async function liveDb(): Promise<Live> {
  const dir = tempDir()
  const path = join(dir, 'witness.db')
  fillDatabase(path, { rows: 12_000, days: 1, endMs: NOW - 20 * 60_000 })
  const live = open(path, dir)
  await seed(live.store, [
    { agent: 'ezra', at: isoTime(SEALED_END - 50 * SLICE_MS + 777), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'rollback', errorMessage: 'rolled back' }] },
    { agent: 'ezra', at: isoTime(SEALED_END - 80 * SLICE_MS + 5), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'rollback', errorMessage: 'rolled back' }] },
  ])
  return live
}

const countsOf = (db: Database) => (db.query('SELECT count(*) AS n, coalesce(sum(n), 0) AS rows FROM slice_row_counts').get() as { n: number; rows: number })
const slicesOf = (db: Database) => (db.query('SELECT count(*) AS n FROM stats_slice').get() as { n: number }).n

/** Windows of every kind, for agent ezra (and others). */
function windows(): DidCallQuery[] {
  const day = isoTime(NOW - 86_400_000)
  const hour = isoTime(NOW - 3_600_000)
  const midSlice = isoTime(SEALED_END - 100 * SLICE_MS + 123_456)
  const endMid = isoTime(SEALED_END - 7 * SLICE_MS + 4321)
  const out: DidCallQuery[] = []
  for (const provider of PROVIDERS) {
    out.push({ agent: 'ezra', provider, since: day }, { agent: 'ezra', provider, since: hour }, { agent: 'ezra', provider, since: day, until: isoTime(NOW) })
    out.push({ agent: 'ezra', provider, since: midSlice }, { agent: 'ezra', provider, since: day, until: endMid }, { agent: 'ezra', provider, since: midSlice, until: endMid })
    if (MODELS[provider]) {
      out.push({ agent: 'ezra', provider, model: MODELS[provider], since: day }, { agent: 'ezra', provider, model: MODELS[provider], since: midSlice, until: endMid })
      out.push({ agent: 'ezra', provider, model: 'no-such-model', since: day })
    }
  }
  for (const agent of AGENTS) out.push({ agent, provider: 'kimi', since: day })
  out.push({ agent: 'nobody', provider: 'kimi', since: day }, { agent: 'ezra', provider: 'nowhere', since: day })
  // Text bounds that are not canonical, and a window with nothing stored whole inside it.
  out.push({ agent: 'ezra', provider: 'kimi', since: isoTime(SEALED_END - 30 * SLICE_MS).replace('.000Z', 'Z') })
  out.push({ agent: 'ezra', provider: 'kimi', since: isoTime(SEALED_END - 30 * SLICE_MS + 1), until: isoTime(SEALED_END - 29 * SLICE_MS + 1) })
  return out
}

/** Stored answers equal the ones counted from the index alone; returns how many windows had calls. */
function expectSameAsRows(db: Database): number {
  let called = 0
  for (const q of windows()) {
    const rows = didCallCounts(db, q)
    expect(didCallCountsLive(db, q), JSON.stringify(q)).toEqual(rows)
    if (Object.keys(rows.byStatus).length) called++
  }
  return called
}

describe('did-call with stored row counts answers exactly as the rows do', () => {
  let live: Live
  beforeAll(async () => {
    live = await liveDb()
    await live.fill.run()
  })
  afterAll(() => live.close())

  test('the fill stores the counts of every row of each stored slice, fallbacks and rollbacks included', () => {
    const stored = live.reader.query('SELECT slice_start, row_count FROM stats_slice').all() as { slice_start: string; row_count: number }[]
    expect(stored.length).toBeGreaterThan(100)
    for (const { slice_start, row_count } of stored) {
      const counted = live.reader.query('SELECT coalesce(sum(n), 0) AS n FROM slice_row_counts WHERE slice_start = ?').get(slice_start) as { n: number }
      const rows = live.reader.query('SELECT count(*) AS n FROM request_log WHERE timestamp >= ? AND timestamp < ?').get(slice_start, isoTime(Date.parse(slice_start) + SLICE_MS)) as { n: number }
      expect(counted.n).toBe(rows.n)
      expect(row_count).toBe(rows.n)
    }
    const statuses = live.reader
      .query("SELECT DISTINCT status FROM request_log WHERE substr(timestamp, 1, 15) || '0:00.000Z' IN (SELECT slice_start FROM stats_slice) ORDER BY status")
      .values()
      .flat()
    expect(statuses).toEqual(['error', 'fallback', 'rollback', 'success', 'timeout'])
    // Counts belong to stored slices only.
    expect(live.reader.query('SELECT 1 FROM slice_row_counts WHERE slice_start NOT IN (SELECT slice_start FROM stats_slice)').get()).toBeNull()
  })

  test('1 h, 24 h, windows starting or ending mid-slice, with and without a model, unknown agents and providers', () => {
    expect(live.reader.query("SELECT 1 FROM request_log WHERE status = 'pending'").get()).not.toBeNull()
    expect(expectSameAsRows(live.reader)).toBeGreaterThan(10)
    expect(expectSameAsRows(live.store.reader)).toBeGreaterThan(10)
  })

  test('the answers carry calls in flight, rare statuses and fallback rows', () => {
    const answer = didCall(live.reader, { agent: 'ezra', provider: 'kimi', since: isoTime(NOW - 86_400_000) })
    expect(answer.called).toBe(true)
    expect(answer.by_status.success).toBeGreaterThan(100)
    expect(answer.by_status.timeout).toBeGreaterThan(0)
    const named = live.reader.query("SELECT agent_name, provider FROM request_log WHERE status = 'fallback' AND timestamp < ? GROUP BY 1, 2 ORDER BY count(*) DESC LIMIT 1").get(isoTime(SEALED_END - 10 * SLICE_MS)) as { agent_name: string; provider: string }
    const fallbacks = { agent: named.agent_name, provider: named.provider, since: isoTime(NOW - 86_400_000) }
    expect(didCall(live.reader, fallbacks).fallback_rows).toBeGreaterThan(0)
    expect(didCallCountsLive(live.reader, fallbacks)).toEqual(didCallCounts(live.reader, fallbacks))
    expect(didCallCountsLive(live.reader, { agent: 'ezra', provider: 'kimi', since: isoTime(NOW - 86_400_000) }).byStatus.rollback).toBe(2)
    const pending = live.reader.query("SELECT agent_name, provider FROM request_log WHERE status = 'pending' LIMIT 1").get() as { agent_name: string; provider: string }
    const inFlight = didCall(live.reader, { agent: pending.agent_name, provider: pending.provider, since: isoTime(NOW - 86_400_000) })
    expect(inFlight.by_status.pending).toBeGreaterThan(0)
    expect(didCallCountsLive(live.reader, { agent: pending.agent_name, provider: pending.provider, since: isoTime(NOW - 3_600_000) })).toEqual(
      didCallCounts(live.reader, { agent: pending.agent_name, provider: pending.provider, since: isoTime(NOW - 3_600_000) }),
    )
  })
})

describe('the stored counts are what answers, and never answer stale', () => {
  test('rows changed behind witness\'s back in a stored slice do not change the answer; a row added late is counted at once', async () => {
    const live = await liveDb()
    try {
      await live.fill.run()
      const q: DidCallQuery = { agent: 'ezra', provider: 'kimi', since: isoTime(NOW - 86_400_000) }
      const before = didCallCountsLive(live.reader, q)
      expect(before).toEqual(didCallCounts(live.reader, q))
      // Success rows of a stored slice handed to another agent by hand: nothing witness checks sees it.
      const slice = (live.reader.query('SELECT slice_start FROM stats_slice WHERE slice_start >= ? ORDER BY slice_start LIMIT 1 OFFSET 40').get(q.since) as { slice_start: string }).slice_start
      const db = new Database(live.path)
      const changed = db
        .query("UPDATE request_log SET agent_name = 'someone' WHERE agent_name = 'ezra' AND provider = 'kimi' AND status = 'success' AND timestamp >= ? AND timestamp < ?")
        .run(slice, isoTime(Date.parse(slice) + SLICE_MS)).changes
      db.close()
      expect(changed).toBeGreaterThan(0)
      const rows = didCallCounts(live.reader, q)
      expect(rows.byStatus.success).toBe(before.byStatus.success! - changed)
      expect(didCallCountsLive(live.reader, q)).toEqual(before)
      // A window with fewer stored slices than MIN_STORED_SLICES is counted from the index: it sees the change.
      const short: DidCallQuery = { ...q, since: slice, until: isoTime(Date.parse(slice) + (MIN_STORED_SLICES - 1) * SLICE_MS) }
      expect(didCallCountsLive(live.reader, short)).toEqual(didCallCounts(live.reader, short))
      expect(didCallCountsLive(live.reader, { ...short, until: isoTime(Date.parse(slice) + MIN_STORED_SLICES * SLICE_MS) }).byStatus.success).toBe(
        didCallCounts(live.reader, { ...short, until: isoTime(Date.parse(slice) + MIN_STORED_SLICES * SLICE_MS) }).byStatus.success! + changed,
      )

      // A row stamped into another stored slice, as a watchdog's direct write would: that slice is read from rows.
      const late = isoTime(SEALED_END - 20 * SLICE_MS + 99)
      await seed(live.store, [{ agent: 'ezra', at: late, rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 5 }] }])
      expect(live.reader.query('SELECT 1 FROM stats_slice WHERE slice_start = ?').get(isoTime(SEALED_END - 20 * SLICE_MS))).not.toBeNull()
      expect(didCallCountsLive(live.reader, q).byStatus.success).toBe(before.byStatus.success! + 1)
      // The fill drops that slice and stores it again, counts and all.
      await live.fill.run()
      expect(live.fill.counters.dropped).toBe(1)
      expect(didCallCountsLive(live.reader, q).byStatus.success).toBe(before.byStatus.success! + 1)
      const stored = live.reader.query("SELECT n FROM slice_row_counts WHERE agent_name = 'ezra' AND provider = 'kimi' AND slice_start = ?").values(isoTime(SEALED_END - 20 * SLICE_MS)).flat() as number[]
      const fromRows = live.reader.query("SELECT count(*) FROM request_log WHERE agent_name = 'ezra' AND provider = 'kimi' AND timestamp >= ? AND timestamp < ?").values(isoTime(SEALED_END - 20 * SLICE_MS), isoTime(SEALED_END - 19 * SLICE_MS)).flat() as number[]
      expect(stored.reduce((a, b) => a + b, 0)).toBe(fromRows[0]!)
    } finally {
      await live.close()
    }
  })

  test('the archive mover deletes the counts with the slices; the answers still equal the rows', async () => {
    const live = await liveDb()
    try {
      await live.fill.run()
      const firstSlice = (live.reader.query('SELECT min(slice_start) AS s FROM stats_slice').get() as { s: string }).s
      const counted = countsOf(live.reader)
      const jobDb = openJobDb(live.path)
      const mover = createMover(jobDb, { dir: join(live.dir, 'archive'), sides: SIDE_TABLES, now: () => NOW })
      await mover.move(mover.oldest(isoTime(Date.parse(firstSlice) + 3 * SLICE_MS + 1), 100_000))
      mover.close()
      jobDb.close()
      expect(live.reader.query('SELECT 1 FROM slice_row_counts WHERE slice_start <= ?').get(isoTime(Date.parse(firstSlice) + 3 * SLICE_MS))).toBeNull()
      expect(countsOf(live.reader).n).toBeLessThan(counted.n)
      expect(live.reader.query('SELECT 1 FROM slice_row_counts WHERE slice_start NOT IN (SELECT slice_start FROM stats_slice)').get()).toBeNull()
      expectSameAsRows(live.reader)
      // A window reaching back over the moved rows, too.
      for (const agent of AGENTS) {
        const q = { agent, provider: 'kimi', since: isoTime(NOW - 2 * 86_400_000) }
        expect(didCallCountsLive(live.reader, q)).toEqual(didCallCounts(live.reader, q))
      }
      await live.fill.run()
      expectSameAsRows(live.reader)
    } finally {
      await live.close()
    }
  })

  test('counts left by a slice deleted by hand are never read, and are replaced when the slice is stored again', async () => {
    const live = await liveDb()
    try {
      await live.fill.run()
      const counted = countsOf(live.reader)
      const db = new Database(live.path)
      db.exec('DELETE FROM stats_slice')
      // And a row changed by hand, which a stored count would hide if it were still read.
      db.query("UPDATE request_log SET agent_name = 'someone' WHERE id = (SELECT max(id) FROM request_log WHERE agent_name = 'ezra' AND provider = 'kimi' AND status = 'success' AND timestamp < ?)").run(isoTime(SEALED_END - 10 * SLICE_MS))
      db.close()
      expect(countsOf(live.reader)).toEqual(counted)
      expectSameAsRows(live.reader)
      await live.fill.run()
      expect(slicesOf(live.reader)).toBeGreaterThan(100)
      expect(countsOf(live.reader).rows).toBe(counted.rows)
      expectSameAsRows(live.reader)
    } finally {
      await live.close()
    }
  })

  test('stored counts of slices whose oldest rows were deleted by hand (oldest first, as retention does) are not used', async () => {
    const live = await liveDb()
    try {
      await live.fill.run()
      const cut = isoTime(Math.ceil((NOW - 86_400_000) / SLICE_MS) * SLICE_MS + 3 * SLICE_MS + SLICE_MS / 2)
      const db = new Database(live.path)
      db.query('DELETE FROM request_log_meta WHERE log_id IN (SELECT id FROM request_log WHERE timestamp < ?)').run(cut)
      const deleted = db.query('DELETE FROM request_log WHERE timestamp < ?').run(cut).changes
      db.close()
      expect(deleted).toBeGreaterThan(100)
      expectSameAsRows(live.reader)
    } finally {
      await live.close()
    }
  })

  test('a slice folded before a row landed in it is not stored after it, nor its counts; stored twice, it changes nothing', async () => {
    const live = await liveDb()
    try {
      const from = isoTime(SEALED_END - 40 * SLICE_MS)
      const to = isoTime(SEALED_END - 39 * SLICE_MS)
      const folded = await foldStepwise(live.store.reader, from, to, async () => {})
      await seed(live.store, [{ agent: 'ezra', at: isoTime(Date.parse(from) + 5), rows: [{ provider: 'groq', model: 'llama', status: 'error', latencyMs: 3 }] }])
      await live.store.write(storeSliceWrite(folded, isoTime(NOW)))
      expect(slicesOf(live.reader)).toBe(0)
      expect(countsOf(live.reader).n).toBe(0)
      // The same slice stored twice (a fill and a read racing): the second write changes nothing.
      const again = await foldStepwise(live.store.reader, from, to, async () => {})
      await live.store.write(storeSliceWrite(again, isoTime(NOW)))
      const once = countsOf(live.reader)
      await live.store.write(storeSliceWrite(await foldStepwise(live.store.reader, from, to, async () => {}), isoTime(NOW + 1)))
      expect(slicesOf(live.reader)).toBe(1)
      expect(countsOf(live.reader)).toEqual(once)
      expect(once.rows).toBe(again.rows)
      expect(once.rows).toBeGreaterThan(0)
    } finally {
      await live.close()
    }
  })
})

describe('a slice folded by a read', () => {
  test('is stored with its counts by the server\'s fold-on-read path too', async () => {
    const live = await liveDb()
    try {
      const from = isoTime(SEALED_END - 12 * SLICE_MS)
      const to = isoTime(SEALED_END - 11 * SLICE_MS)
      live.rollups.keepFolded(await foldStepwise(live.reader, from, to, async () => {}), NOW)
      await live.rollups.settled()
      expect(live.rollups.counters.stores).toBe(1)
      expect(slicesOf(live.reader)).toBe(1)
      const rows = live.reader.query('SELECT count(*) AS n FROM request_log WHERE timestamp >= ? AND timestamp < ?').get(from, to) as { n: number }
      expect(countsOf(live.reader).rows).toBe(rows.n)
      expectSameAsRows(live.reader)
    } finally {
      await live.close()
    }
  })
})

describe('older databases', () => {
  test('a schema version 7 database is read as before, then migrated (its stored slices refilled, with counts)', async () => {
    const { path, db: old } = oldDatabase(7, 4000, NOW - 20 * 60_000)
    // A slice stored by the version before: it has no counts.
    old.exec("INSERT INTO stats_slice VALUES ('2026-11-25T06:00:00.000Z', 1, 1, 1, 1, 0, x'', '2026-11-25T11:00:00.000Z')")
    old.close()

    const reader = new Database(path, { readonly: true, strict: true })
    const q: DidCallQuery = { agent: 'ezra', provider: 'kimi', since: isoTime(NOW - 86_400_000) }
    const before = didCallCountsLive(reader, q)
    expect(before).toEqual(didCallCounts(reader, q))
    expect(before.byStatus.success).toBeGreaterThan(10)
    reader.close()

    const live = open(path, dirname(path))
    try {
      expect(live.reader.query('PRAGMA user_version').get()).toEqual({ user_version: SCHEMA_VERSION })
      expect(slicesOf(live.reader)).toBe(0)
      await live.fill.run()
      expect(slicesOf(live.reader)).toBeGreaterThan(100)
      expect(countsOf(live.reader).n).toBeGreaterThan(100)
      expect(didCallCountsLive(live.reader, q)).toEqual(before)
      expectSameAsRows(live.reader)
    } finally {
      await live.close()
    }
  })
})
