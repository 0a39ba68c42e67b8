/**
 * The provider comparison on a hand-computed data set: attempt and request
 * counts (a request that succeeded after a fallback counts once, toward the
 * provider that served it), exact percentiles, tokens, prices, rankings;
 * requests that cross slice boundaries; and the sealed-slice cache agreeing
 * with a fresh computation after rows are deleted or added late.
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { fillDatabase } from '../bench/fill.ts'
import type { Pricing } from '../src/config-schema.ts'
import { ensureSchema } from '../src/telemetry/schema.ts'
import { DELETE_EPOCH_KEY } from '../src/telemetry/slice-store.ts'
import { percentiles } from '../src/telemetry/stats.ts'
import { REVALIDATE_MAX_ROWS, StatsCache, computeStats } from '../src/telemetry/stats-window.ts'
import type { Store } from '../src/telemetry/store.ts'
import { type SeedRequest, seed, seedStore } from './support/seed-requests.ts'
import { tempDir } from './support/temp.ts'
import { manualClock, startWitness, type TestWitness } from './support/witness.ts'

const T = Date.parse('2026-11-25T10:00:00.000Z')
const at = (minutes: number, ms = 0) => new Date(T + minutes * 60_000 + ms).toISOString()
const NOW = T + 3 * 3_600_000
const window = { since: at(0), until: at(60) }

const PRICING: Pricing = {
  'kimi/kimi-k2.5': { input_per_mtok: 1, output_per_mtok: 4 },
  // The model-only key must lose to the provider/model key above.
  'kimi-k2.5': { input_per_mtok: 100, output_per_mtok: 100 },
  llama: { input_per_mtok: 0.5, output_per_mtok: 0.5 },
}

const kimi = { provider: 'kimi', model: 'kimi-k2.5' }
const openrouter = { provider: 'openrouter', model: 'gemini' }
const groq = { provider: 'groq', model: 'llama' }
const mimo = { provider: 'mimo', model: 'mimo' }

const DATA: SeedRequest[] = [
  // A, B: kimi serves at once.
  { agent: 'ezra', at: at(1), rows: [{ ...kimi, status: 'success', latencyMs: 100, tokensIn: 1000, tokensOut: 500 }] },
  { agent: 'ezra', at: at(2), rows: [{ ...kimi, status: 'success', latencyMs: 200, tokensIn: 2000, tokensOut: 1000 }] },
  // C: kimi fails, openrouter serves (and reports its cost); the request crosses a slice boundary.
  {
    agent: 'ezra',
    at: at(9),
    rows: [
      { ...kimi, status: 'error', latencyMs: 5, at: at(9, 59_990) },
      { ...openrouter, status: 'fallback', at: at(9, 59_995) },
      { ...openrouter, status: 'success', latencyMs: 300, tokensIn: 100, tokensOut: 100, costUsd: 0.01, at: at(10, 5) },
    ],
  },
  // D: kimi times out, openrouter fails: the request fails, counted toward openrouter (the last one tried).
  {
    agent: 'bezalel',
    at: at(19),
    rows: [
      { ...kimi, status: 'timeout', latencyMs: 20000, at: at(19, 59_990) },
      { ...openrouter, status: 'fallback', at: at(20, 1) },
      { ...openrouter, status: 'error', latencyMs: 7, at: at(20, 2) },
    ],
  },
  // E: groq serves. F: groq fails once, its retry serves (one request, two attempts), across a boundary.
  { agent: 'bezalel', chain: 'fast', at: at(25), rows: [{ ...groq, status: 'success', latencyMs: 50, tokensIn: 10, tokensOut: 10 }] },
  {
    agent: 'bezalel',
    chain: 'fast',
    at: at(29),
    rows: [
      { ...groq, status: 'error', latencyMs: 3, at: at(29, 59_999) },
      { ...groq, status: 'success', latencyMs: 70, tokensIn: 10, tokensOut: 10, at: at(30, 1) },
    ],
  },
  // G: groq fails, mimo serves (mimo has no price and reports no cost).
  {
    agent: 'ezra',
    chain: 'fast',
    at: at(31),
    rows: [
      { ...groq, status: 'error', latencyMs: 4 },
      { ...mimo, status: 'fallback' },
      { ...mimo, status: 'success', latencyMs: 400, tokensIn: 5, tokensOut: 5 },
    ],
  },
  // H: every step skipped (no call at all): a failed request, counted toward mimo, the last step it named.
  { agent: 'ezra', chain: 'fast', at: at(32), rows: [{ ...mimo, status: 'fallback' }, { ...mimo, status: 'fallback' }] },
  // I: still in flight: not an attempt, not a request yet. J: a rollback row: neither.
  { agent: 'ezra', at: at(33), rows: [{ ...kimi, status: 'pending' }] },
  { agent: 'allegro', chain: 'deadman', at: at(34), rows: [{ ...kimi, status: 'rollback' }] },
  // L: 18 more kimi successes without usage, latencies 300..2000 ms.
  ...Array.from({ length: 18 }, (_, i): SeedRequest => ({ agent: 'bezalel', at: at(40, i * 1000), rows: [{ ...kimi, status: 'success', latencyMs: 300 + i * 100 }] })),
]

let path: string
let store: Store
let db: Database

beforeAll(async () => {
  const seeded = seedStore()
  path = seeded.path
  store = seeded.store
  await seed(store, DATA)
  db = new Database(path, { readonly: true, strict: true })
})
afterAll(() => {
  db.close()
  store.close()
})

const stats = (by: 'provider' | 'model' | 'agent' | 'chain', pricing: Pricing = PRICING, cache?: StatsCache) =>
  computeStats(db, { ...window, by }, { pricing, nowMs: NOW, cache })

describe('stats by provider on a hand-computed data set', () => {
  test('attempts, request-level success, exact percentiles, tokens and cost per provider', async () => {
    const result = await stats('provider')
    expect(result.groups).toEqual([
      {
        provider: 'kimi', attempts: 22, success: 20, error: 1, timeout: 1, success_rate: 20 / 22,
        requests: 20, request_success_rate: 1, p50_ms: 1000, p95_ms: 1900, p99_ms: 2000,
        tokens_in: 3000, tokens_out: 1500, cost_usd: 0.009,
      },
      {
        provider: 'groq', attempts: 4, success: 2, error: 2, timeout: 0, success_rate: 0.5,
        requests: 2, request_success_rate: 1, p50_ms: 50, p95_ms: 70, p99_ms: 70,
        tokens_in: 20, tokens_out: 20, cost_usd: 0.00002,
      },
      {
        provider: 'openrouter', attempts: 2, success: 1, error: 1, timeout: 0, success_rate: 0.5,
        requests: 2, request_success_rate: 0.5, p50_ms: 300, p95_ms: 300, p99_ms: 300,
        tokens_in: 100, tokens_out: 100, cost_usd: 0.01,
      },
      {
        provider: 'mimo', attempts: 1, success: 1, error: 0, timeout: 0, success_rate: 1,
        requests: 2, request_success_rate: 0.5, p50_ms: 400, p95_ms: 400, p99_ms: 400,
        tokens_in: 5, tokens_out: 5, cost_usd: null,
      },
    ])
  })

  test('rankings list every ranked group best first: fastest by p50, most reliable by the success of its calls, cheapest per million tokens', async () => {
    const { rankings } = await stats('provider')
    expect(rankings.fastest).toEqual([
      { provider: 'groq', value: 50 },
      { provider: 'openrouter', value: 300 },
      { provider: 'mimo', value: 400 },
      { provider: 'kimi', value: 1000 },
    ])
    // By attempts: groq's two failures count against it though a fallback served both requests
    // (its request success is 1); it ties with openrouter on attempts and wins on requests.
    expect(rankings.most_reliable).toEqual([
      { provider: 'mimo', value: 1 },
      { provider: 'kimi', value: 20 / 22 },
      { provider: 'groq', value: 0.5 },
      { provider: 'openrouter', value: 0.5 },
    ])
    expect(rankings.cheapest).toEqual([
      { provider: 'groq', value: 0.5 },
      { provider: 'kimi', value: 2 },
      { provider: 'openrouter', value: 50 },
    ])
  })

  test('cost is null where neither a price nor a reported cost is known; a reported cost is used without a price', async () => {
    const { groups, rankings } = await stats('provider', {})
    const cost = Object.fromEntries(groups.map((g) => [g.provider, g.cost_usd]))
    expect(cost).toEqual({ kimi: null, groq: null, openrouter: 0.01, mimo: null })
    expect(rankings.cheapest).toEqual([{ provider: 'openrouter', value: 50 }])
  })
})

describe('stats by agent, chain and model', () => {
  test('by agent: each request counts once for its agent; rollback-only agents do not appear', async () => {
    const { groups } = await stats('agent')
    expect(groups.map((g) => [g.agent, g.attempts, g.success, g.error, g.timeout, g.requests, g.request_success_rate])).toEqual([
      ['bezalel', 23, 20, 2, 1, 21, 20 / 21],
      ['ezra', 6, 4, 2, 0, 5, 0.8],
    ])
    // An agent makes requests: it is ranked by the requests served, not by its calls.
    expect((await stats('agent')).rankings.most_reliable).toEqual([
      { agent: 'bezalel', value: 20 / 21 },
      { agent: 'ezra', value: 0.8 },
    ])
  })

  test('by chain and by model', async () => {
    const chains = await stats('chain')
    expect(chains.groups.map((g) => [g.chain, g.attempts, g.requests, g.request_success_rate])).toEqual([
      ['default', 24, 22, 21 / 22],
      ['fast', 5, 4, 0.75],
    ])
    const models = await stats('model')
    expect(models.groups.find((g) => g.model === 'kimi-k2.5')).toMatchObject({ attempts: 22, p50_ms: 1000, cost_usd: 0.009 })
    expect(models.rankings.fastest[0]).toEqual({ model: 'llama', value: 50 })
  })

  test('a window reaching far beyond the rows gives the same answer (only slices holding rows are read)', async () => {
    const wide = await computeStats(db, { since: '2016-01-01T00:00:00.000Z', until: '2036-01-01T00:00:00.000Z', by: 'provider' }, { pricing: PRICING, nowMs: NOW })
    expect(wide).toEqual(await stats('provider'))
  })

  test('percentiles are nearest-rank over the exact values', () => {
    expect(percentiles([[5, 1], [3], [2, 4]], [50, 95, 99, 100])).toEqual([3, 5, 5, 5])
    expect(percentiles([[10, 20, 30, 40]], [25, 50, 75])).toEqual([10, 20, 30])
    expect(percentiles([[1.5, 0.5]], [50])).toEqual([0.5])
    expect(percentiles([], [50])).toEqual([null])
  })
})

describe('the sealed-slice cache', () => {
  test('gives the same answer as a fresh computation, and follows rows deleted or added late', async () => {
    const cache = new StatsCache()
    const fresh = () => stats('provider')
    const first = await stats('provider', PRICING, cache)
    // Five slices hold rows; the one holding the call still in flight (pending) is not sealed.
    expect(cache.size(db)).toBe(4)
    expect(first).toEqual(await fresh())
    expect(await stats('provider', PRICING, cache)).toEqual(first)

    // Retention removes the oldest rows (request A) from another connection.
    const writer = new Database(path)
    writer.exec(`DELETE FROM request_log_meta WHERE log_id = (SELECT min(id) FROM request_log); DELETE FROM request_log WHERE id = (SELECT min(id) FROM request_log)`)
    const afterDelete = await stats('provider', PRICING, cache)
    expect(afterDelete).toEqual(await fresh())
    expect(afterDelete.groups[0]).toMatchObject({ provider: 'kimi', attempts: 21 })
    writer.close()

    // A row written with a timestamp in an already sealed slice.
    await seed(store, [{ agent: 'ezra', at: at(5), rows: [{ ...groq, status: 'success', latencyMs: 60, tokensIn: 1, tokensOut: 1 }] }])
    const afterLate = await stats('provider', PRICING, cache)
    expect(afterLate).toEqual(await fresh())
    expect(afterLate.groups.find((g) => g.provider === 'groq')).toMatchObject({ attempts: 5, requests: 3 })
  })

  test('a slice folded while another read looks at a row added to it is not cached without that row', async () => {
    const dir = tempDir()
    const sliceTo = Date.parse('2026-11-25T12:00:00.000Z')
    const sliceFrom = sliceTo - 10 * 60_000
    // Enough rows that folding the slice gives the event loop back a few times.
    fillDatabase(join(dir, 'w.db'), { rows: 30_000, days: 10 / 1440, endMs: sliceTo - 1, seed: 5 })
    const writer = new Database(join(dir, 'w.db'))
    writer.exec("UPDATE request_log SET status = 'error', latency_ms = 100 WHERE status = 'pending'")
    const reader = new Database(join(dir, 'w.db'), { readonly: true, strict: true })
    try {
      const nowMs = sliceTo + 86_400_000
      const cache = new StatsCache()
      const q = { since: new Date(sliceFrom).toISOString(), until: new Date(sliceTo).toISOString(), by: 'provider' as const }
      const folding = computeStats(reader, q, { pricing: {}, nowMs, cache })
      await Bun.sleep(1) // the fold has given the loop back
      // A row lands in the slice being folded (a clock stepped back), and another read's look at the cache sees it.
      writer.query("INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status, latency_ms) VALUES (?, 'late', 'kimi', 'kimi-k2.5', 'e', 'success', 7)").run(new Date(sliceFrom + 60_000).toISOString())
      await computeStats(reader, { ...q, since: new Date(sliceTo - 60_000).toISOString() }, { pricing: {}, nowMs, cache })
      await folding
      expect(await computeStats(reader, q, { pricing: {}, nowMs, cache })).toEqual(await computeStats(reader, q, { pricing: {}, nowMs }))
    } finally {
      reader.close()
      writer.close()
    }
  })

  test('holds about as much memory as it is given: slices of many partials (agents named per run) push the oldest out', async () => {
    // Each of the four sealed slices here holds a few partials (about 400 bytes each, with their latencies): room for two of them.
    const sizes: number[] = []
    for (const maxBytes of [1_000_000, 2_600, 10]) {
      const cache = new StatsCache(maxBytes)
      expect(await stats('provider', PRICING, cache)).toEqual(await stats('provider'))
      sizes.push(cache.size(db))
    }
    expect(sizes[0]).toBe(4)
    expect(sizes[1]).toBeGreaterThan(0)
    expect(sizes[1]).toBeLessThan(4)
    expect(sizes[2]).toBe(0)
  })

  test('after many rows since its last look it starts again rather than read them all on the event loop', async () => {
    const cache = new StatsCache()
    await stats('provider', PRICING, cache)
    expect(cache.size(db)).toBe(4)
    // Ids jump (a row written with an id of its own): as many as REVALIDATE_MAX_ROWS rows may lie between.
    const writer = new Database(path)
    const top = (writer.query('SELECT max(id) AS id FROM request_log').get() as { id: number }).id
    writer.query(`INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, status) VALUES (?, ?, 'ezra', 'kimi', 'kimi-k2.5', 'e', 'rollback')`).run(top + REVALIDATE_MAX_ROWS + 1, at(59))
    writer.close()
    cache.revalidate(db)
    expect(cache.size(db)).toBe(0)
    expect(await stats('provider', PRICING, cache)).toEqual(await stats('provider'))
  })
})

describe('rows the stats cannot place in time', () => {
  test('a row stamped with something that is no time (a direct write) does not break the stats when it sorts first or last', async () => {
    const { store: own } = seedStore()
    try {
      await seed(own, [{ agent: 'ezra', at: '2026-11-25T12:00:00.000Z', rows: [{ provider: 'kimi', status: 'success', latencyMs: 5 }] }])
      await own.insert({ timestamp: 'unknown', agentName: 'ezra', provider: 'kimi', model: 'm', endpoint: 'e', status: 'rollback', errorMessage: 'x' }, null)
      await own.insert({ timestamp: '0', agentName: 'ezra', provider: 'kimi', model: 'm', endpoint: 'e', status: 'rollback', errorMessage: 'x' }, null)
      const day = { since: '2026-11-25T00:00:00.000Z', until: '2026-11-26T00:00:00.000Z', by: 'provider' as const }
      const result = await computeStats(own.reader, day, { pricing: {}, nowMs: Date.parse(day.until) })
      expect(result.groups).toMatchObject([{ provider: 'kimi', attempts: 1, success: 1 }])
    } finally {
      own.close()
    }
  })
})

describe('GET /stats', () => {
  let w: TestWitness
  afterAll(async () => {
    await w?.stop(0)
  })

  test('serves the same comparison with the configured prices; since defaults to 24h and by to provider', async () => {
    w = await startWitness(
      { providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] }, pricing: PRICING, database: path },
      { clock: manualClock(NOW) },
    )
    const res = await fetch(`${w.url}/stats?since=${at(0)}&until=${at(60)}&by=provider`)
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body.since).toBe(at(0))
    expect(body.until).toBe(at(60))
    expect(body.groups).toEqual((await stats('provider')).groups)
    const defaults = await (await fetch(`${w.url}/stats`)).json()
    expect([defaults.since, defaults.until, defaults.by]).toEqual([new Date(NOW - 86_400_000).toISOString(), new Date(NOW).toISOString(), 'provider'])
    for (const bad of ['by=colour', 'since=yesterday', 'since=1h&until=2h', 'agent=a%20b', 'limit=5']) {
      expect((await fetch(`${w.url}/stats?${bad}`)).status, bad).toBe(400)
    }
  })
})

describe('stats over the live slices of a busy witness', () => {
  test('are read a few ms at a time: the router answers other requests while /stats folds 100,000 rows', async () => {
    const dir = tempDir()
    const nowMs = Date.now()
    // Five minutes at about 330 rows a second: none of it sealed, so every /stats reads it from the rows.
    fillDatabase(join(dir, 'witness.db'), { rows: 100_000, days: 5 / 1440, endMs: nowMs })
    const busy = await startWitness({ providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] } }, { dir })
    try {
      let statsDone = false
      const window = { since: new Date(nowMs - 3_600_000).toISOString(), until: new Date(nowMs + 60_000).toISOString(), by: 'provider' as const }
      const stats = fetch(`${busy.url}/stats?since=${window.since}&until=${window.until}`).then(async (res) => {
        statsDone = true
        return { status: res.status, body: await res.json() }
      })
      // One after another while /stats runs. With the fold holding the loop, 2 were answered before
      // /stats: one before the fold began and one between its two slices; now 20 or more.
      let answeredMeanwhile = 0
      while (!statsDone) {
        const res = await fetch(`${busy.url}/v1/models`)
        await res.arrayBuffer()
        if (!statsDone) answeredMeanwhile++
      }
      const { status, body } = await stats
      expect(status).toBe(200)
      expect(body.groups).toEqual((await computeStats(busy.store.reader, window, { pricing: {}, nowMs: Date.now() })).groups)
      expect(body.groups.reduce((n: number, g: { attempts: number }) => n + g.attempts, 0)).toBeGreaterThan(90_000)
      expect(answeredMeanwhile).toBeGreaterThanOrEqual(8)
    } finally {
      await busy.stop(0)
    }
  })

  test('a fold holds no read snapshot while it gives the loop back: the WAL can start over meanwhile', async () => {
    const dir = tempDir()
    const nowMs = Date.now()
    fillDatabase(join(dir, 'w.db'), { rows: 30_000, days: 5 / 1440, endMs: nowMs, seed: 6 })
    const writer = new Database(join(dir, 'w.db'))
    const reader = new Database(join(dir, 'w.db'), { readonly: true, strict: true })
    try {
      const q = { since: new Date(nowMs - 3_600_000).toISOString(), until: new Date(nowMs + 60_000).toISOString(), by: 'provider' as const }
      const folding = computeStats(reader, q, { pricing: {}, nowMs })
      await Bun.sleep(1) // the fold has given the loop back
      writer.query("INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status) VALUES (?, 'a', 'kimi', 'm', 'e', 'success')").run(new Date(nowMs).toISOString())
      // A snapshot held by the fold would keep the checkpoint from emptying the WAL (busy = 1), as under every overlapping read.
      expect(writer.query('PRAGMA wal_checkpoint(TRUNCATE)').get()).toEqual({ busy: 0, log: 0, checkpointed: 0 })
      await folding
    } finally {
      reader.close()
      writer.close()
    }
  })
})

/** A database of its own with witness's schema, and a writer that adds rows with their meta. */
function rowsDb(dir: string, name = 'w.db') {
  const path = join(dir, name)
  const db = new Database(path, { create: true, strict: true })
  ensureSchema(db)
  const log = db.query('INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status, latency_ms) VALUES ($ts, $agent, $provider, $model, $endpoint, $status, $latency)')
  const meta = db.query("INSERT INTO request_log_meta (log_id, request_id, chain, api, seq, step, try, stream) VALUES ($id, $rid, 'default', 'infer', $seq, 0, 1, 0)")
  const row = (ts: string, provider: string, status: string, rid: string, seq = 1) => {
    const id = Number(log.run({ ts, agent: 'ezra', provider, model: 'm', endpoint: 'e', status, latency: status === 'pending' ? null : 100 }).lastInsertRowid)
    meta.run({ id, rid, seq })
    return id
  }
  return { path, db, row }
}

describe('a fold while rows are finished, written and archived', () => {
  const Q = { since: '2026-11-25T11:50:00.000Z', until: '2026-11-25T12:10:00.000Z', by: 'provider' as const }
  const NOW = Date.parse('2026-11-25T12:01:00.000Z')

  test('a call pending as the read began, finished with its retry written while it folds, is counted as in flight, not as a failed request', async () => {
    const { db, path, row } = rowsDb(tempDir())
    // Its first call is the slice's oldest row, so its page is read last, after the loop was given back.
    const first = row('2026-11-25T11:50:00.500Z', 'kimi', 'pending', 'R')
    db.transaction(() => {
      for (let i = 0; i < 3000; i++) row(new Date(Date.parse('2026-11-25T11:50:01Z') + i * 150).toISOString(), 'groq', 'success', `f${i}`)
    })()
    const reader = new Database(path, { readonly: true, strict: true })
    try {
      const asItBegan = await computeStats(reader, Q, { pricing: {}, nowMs: NOW })
      const folding = computeStats(reader, Q, { pricing: {}, nowMs: NOW })
      await Bun.sleep(1) // the fold has given the loop back
      db.transaction(() => {
        db.query("UPDATE request_log SET status = 'error', latency_ms = 600000 WHERE id = ?").run(first)
        row('2026-11-25T12:00:21.000Z', 'groq', 'success', 'R', 2)
      })()
      expect(await folding).toEqual(asItBegan)
    } finally {
      reader.close()
      db.close()
    }
  })

  test('rows the archive job moves from the live file into an archive while a read folds them are still counted', async () => {
    const dir = tempDir()
    const live = rowsDb(dir)
    const archive = rowsDb(dir, 'archive.db')
    /** As the mover does: copy the rows, delete them from the live file, bump the delete epoch. */
    const move = (where: string, epoch: string) => {
      archive.db.exec(`ATTACH '${live.path}' AS live`)
      archive.db.exec(`INSERT INTO main.request_log SELECT * FROM live.request_log WHERE ${where}`)
      archive.db.exec('INSERT INTO main.request_log_meta SELECT * FROM live.request_log_meta WHERE log_id IN (SELECT id FROM main.request_log) AND log_id NOT IN (SELECT log_id FROM main.request_log_meta)')
      archive.db.exec('DETACH live')
      live.db.exec(`DELETE FROM request_log_meta WHERE log_id IN (SELECT id FROM request_log WHERE ${where}); DELETE FROM request_log WHERE ${where}`)
      live.db.query('INSERT OR REPLACE INTO witness_state (key, value, updated_at) VALUES (?, ?, ?)').run(DELETE_EPOCH_KEY, epoch, '2026-11-25T12:00:00Z')
    }
    live.row('2026-11-25T11:50:00.500Z', 'kimi', 'success', 'k')
    // Enough rows that the fold gives the loop back before it reaches the oldest.
    live.db.transaction(() => {
      for (let i = 0; i < 30_000; i++) live.row(new Date(Date.parse('2026-11-25T11:50:01Z') + i * 15).toISOString(), 'groq', 'success', `f${i}`)
    })()
    // An earlier batch moved the oldest row: the read looks in the archive too.
    move("provider = 'kimi'", 'moved-1')
    const readLive = new Database(live.path, { readonly: true, strict: true })
    const readArchive = new Database(archive.path, { readonly: true, strict: true })
    try {
      const folding = computeStats([readLive, readArchive], Q, { pricing: {}, nowMs: NOW })
      await Bun.sleep(1)
      move("timestamp < '2026-11-25T11:55:00Z'", 'moved-2')
      const result = await folding
      expect(result.groups).toMatchObject([{ provider: 'groq', attempts: 30_000 }, { provider: 'kimi', attempts: 1 }])
    } finally {
      readLive.close()
      readArchive.close()
      live.db.close()
      archive.db.close()
    }
  })

  test('a row in both files is counted once whatever its timestamp holds (text SQLite and JavaScript sort differently)', async () => {
    const dir = tempDir()
    const live = rowsDb(dir)
    const archive = rowsDb(dir, 'archive.db')
    for (const { row } of [live, archive]) {
      row('2026-11-25T11:55:00.000Z\uffff', 'kimi', 'success', 'a')
      row('2026-11-25T11:55:00.000Z\u{1F600}', 'kimi', 'success', 'b')
    }
    try {
      const result = await computeStats([live.db, archive.db], Q, { pricing: {}, nowMs: NOW })
      expect(result.groups).toMatchObject([{ provider: 'kimi', attempts: 2, requests: 2 }])
    } finally {
      live.db.close()
      archive.db.close()
    }
  })
})
