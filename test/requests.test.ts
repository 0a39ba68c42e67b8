/**
 * GET /requests and GET /requests/:id over a hand-made database: every
 * filter, the cursor, the export formats, bad values, and the query plans
 * (a filtered page is an index range read, never a scan or a sort).
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { LOG_COLUMNS, type LogRow, didCallParts, didCallQueries, listRequests, mergeNewestFirst, pageOf, requestsQuery } from '../src/telemetry/queries.ts'
import { seed, seedStore } from './support/seed-requests.ts'
import { manualClock, startWitness, type TestWitness } from './support/witness.ts'

const T = Date.parse('2026-11-25T10:00:00.000Z')
const at = (minutes: number) => new Date(T + minutes * 60_000).toISOString()
let w: TestWitness
let ids: number[][]

beforeAll(async () => {
  const { dir, store } = seedStore()
  ids = await seed(store, [
    { agent: 'ezra', at: at(0), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 800, tokensIn: 10, tokensOut: 20, responseId: 'r-1' }] },
    {
      agent: 'ezra',
      at: at(10),
      requestId: 'req-two',
      rows: [
        { provider: 'kimi', model: 'kimi-k2.5', status: 'error', latencyMs: 5, errorMessage: 'HTTP 503 service unavailable' },
        { provider: 'openrouter', model: 'google/gemini-2.5-pro', status: 'fallback', errorMessage: 'fallback from kimi/kimi-k2.5: HTTP 503' },
        { provider: 'openrouter', model: 'google/gemini-2.5-pro', status: 'success', latencyMs: 1200, tokensIn: 11, tokensOut: 21, costUsd: 0.002, responseId: 'gen-2' },
      ],
    },
    {
      agent: 'bezalel',
      chain: 'fast',
      at: at(20),
      rows: [
        { provider: 'groq', model: 'llama', status: 'timeout', latencyMs: 20000, errorMessage: 'timeout after 20000 ms, "slow"' },
        { provider: 'mimo', model: 'mimo-v2.5-pro', status: 'fallback' },
        { provider: 'mimo', model: 'mimo-v2.5-pro', status: 'success', latencyMs: 900, tokensIn: 5, tokensOut: 6 },
      ],
    },
    { agent: 'bezalel', at: at(70), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 700, tokensIn: 1, tokensOut: 2 }] },
    { agent: 'ezra', chain: 'fast', at: at(100), rows: [{ provider: 'groq', model: 'llama', status: 'success', latencyMs: 300, tokensIn: 3, tokensOut: 4 }] },
    { agent: 'allegro', chain: 'deadman', at: at(110), rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'rollback', errorMessage: 'rollback: heartbeat lost' }] },
  ])
  store.close()
  w = await startWitness({ providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] } }, { dir, clock: manualClock(T + 120 * 60_000) })
})
afterAll(async () => {
  await w.stop(0)
})

async function list(query: string): Promise<{ rows: LogRow[]; next_cursor: string | null }> {
  const res = await fetch(`${w.url}/requests${query}`)
  expect(res.status).toBe(200)
  return res.json()
}
const idsOf = async (query: string) => (await list(query)).rows.map((r) => r.id)
const all = () => ids.flat().sort((a, b) => b - a)

async function expect400(path: string, param: string) {
  const res = await fetch(`${w.url}${path}`)
  expect(res.status).toBe(400)
  const { error } = await res.json()
  expect(error.type).toBe('invalid_request')
  expect(error.issues.map((i: { path: string }) => i.path)).toContain(param)
  return error
}

describe('GET /requests', () => {
  test('returns the 11 request_log columns by name, newest first, and no next cursor when everything fit', async () => {
    const page = await list('')
    expect(page.rows.map((r) => r.id)).toEqual(all())
    expect(Object.keys(page.rows[0]!)).toEqual([...LOG_COLUMNS])
    expect(page.rows.at(-1)).toMatchObject({ agent_name: 'ezra', provider: 'kimi', model: 'kimi-k2.5', status: 'success', tokens_in: 10, tokens_out: 20, latency_ms: 800, error_message: null })
    expect(page.next_cursor).toBeNull()
  })

  test('each filter narrows the rows: agent, provider, model, status, chain, request_id', async () => {
    const [r1, r2, r3, r4, r5, r6] = ids
    expect(await idsOf('?agent=ezra')).toEqual([...r5!, ...r2!, ...r1!].sort((a, b) => b - a))
    expect(await idsOf('?provider=groq')).toEqual([r5![0]!, r3![0]!])
    expect(await idsOf('?model=mimo-v2.5-pro')).toEqual([r3![2]!, r3![1]!])
    expect(await idsOf('?status=fallback')).toEqual([r3![1]!, r2![1]!])
    expect(await idsOf('?status=rollback')).toEqual(r6!)
    expect(await idsOf('?status=timeout')).toEqual([r3![0]!])
    expect(await idsOf('?chain=fast')).toEqual([...r5!, ...r3!].sort((a, b) => b - a))
    expect(await idsOf('?request_id=req-two')).toEqual([...r2!].reverse())
    expect(await idsOf('?agent=ezra&provider=kimi&status=success')).toEqual(r1!)
    expect(await idsOf('?agent=ezra&provider=kimi&model=kimi-k2.5&status=error&chain=default&request_id=req-two')).toEqual([r2![0]!])
    expect(await idsOf('?agent=nobody')).toEqual([])
    expect(r4).toHaveLength(1)
  })

  test('since and until take durations back from now or ISO times; since is inclusive, until exclusive', async () => {
    const [, , , r4, r5, r6] = ids
    // now is at(120): 60m back is at(60).
    expect(await idsOf('?since=60m')).toEqual([...r6!, ...r5!, ...r4!])
    expect(await idsOf('?since=1h&until=15m')).toEqual([...r5!, ...r4!])
    expect(await idsOf(`?since=${at(70)}`)).toEqual([...r6!, ...r5!, ...r4!])
    expect(await idsOf(`?until=${at(70)}&agent=bezalel`)).toEqual([...ids[2]!].reverse())
    expect(await idsOf('?since=2026-11-25&until=2026-11-25T10:00:00.001Z')).toEqual(ids[0]!)
  })

  test('limit and cursor page through every row exactly once, newest first, while new rows keep arriving', async () => {
    const seen: number[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const page = await list(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      expect(page.rows.length).toBeLessThanOrEqual(2)
      seen.push(...page.rows.map((r) => r.id))
      cursor = page.next_cursor
      if (pages++ === 0) {
        // A call lands between pages: it is newer than the cursor, so it does not shift what follows.
        const { store } = seedStore(w.dir)
        await seed(store, [{ agent: 'late', at: at(119), rows: [{ provider: 'kimi', status: 'success', latencyMs: 1 }] }])
        store.close()
      }
    } while (cursor)
    expect(seen).toEqual(all())
    expect(pages).toBe(5)
    expect((await list('?agent=late')).rows).toHaveLength(1)
  })

  test('limit may be up to 1000; above that, zero, negative or not a number is a 400', async () => {
    expect((await list('?limit=1000')).rows.length).toBe(all().length + 1)
    await expect400('/requests?limit=1001', 'limit')
    await expect400('/requests?limit=0', 'limit')
    await expect400('/requests?limit=-5', 'limit')
    await expect400('/requests?limit=ten', 'limit')
  })

  test('without a limit a page holds exactly 100 rows and a next_cursor, and following it returns the rest (a row stamped before older ids comes at its time)', async () => {
    const { dir, store } = seedStore()
    const seeded = (await seed(store, Array.from({ length: 130 }, (_, i) => ({ agent: 'ezra', at: at(i), rows: [{ provider: 'kimi', status: 'success' as const, latencyMs: i }] })))).flat()
    // A row written last but stamped earlier than all of them (another clock): listed at its time, not at its id.
    const [late] = (await seed(store, [{ agent: 'watchdog', at: at(-1), rows: [{ provider: 'deadman', status: 'rollback' }] }])).flat()
    store.close()
    const own = await startWitness({ providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] } }, { dir, clock: manualClock(T + 200 * 60_000) })
    try {
      const get = async (query: string) => (await (await fetch(`${own.url}/requests${query}`)).json()) as { rows: LogRow[]; next_cursor: string | null }
      const first = await get('')
      expect(first.rows.map((r) => r.id)).toEqual(seeded.slice(-100).reverse())
      expect(first.next_cursor).toBeString()
      const rest = await get(`?cursor=${first.next_cursor}`)
      expect(rest.rows.map((r) => r.id)).toEqual([...seeded.slice(0, 30).reverse(), late!])
      expect(rest.next_cursor).toBeNull()
      // The same default under a filter.
      const filtered = await get('?agent=ezra&provider=kimi')
      expect(filtered.rows).toHaveLength(100)
      expect((await get(`?agent=ezra&provider=kimi&cursor=${filtered.next_cursor}`)).rows).toHaveLength(30)
    } finally {
      await own.stop(0)
    }
  })

  test('format=ndjson and format=csv stream the same rows', async () => {
    const json = (await list('?agent=ezra')).rows
    const ndjson = await (await fetch(`${w.url}/requests?agent=ezra&format=ndjson`)).text()
    expect(ndjson.trimEnd().split('\n').map((l) => JSON.parse(l))).toEqual(json)
    const res = await fetch(`${w.url}/requests?agent=ezra&format=csv`)
    expect(res.headers.get('content-type')).toStartWith('text/csv')
    const lines = (await res.text()).trimEnd().split('\r\n')
    expect(lines[0]).toBe(LOG_COLUMNS.join(','))
    expect(lines).toHaveLength(json.length + 1)
    const fallback = json.find((r) => r.status === 'fallback')!
    expect(lines).toContain(`${fallback.id},${fallback.timestamp},ezra,openrouter,google/gemini-2.5-pro,http://127.0.0.1:9/openrouter/v1/chat/completions,,,,fallback,fallback from kimi/kimi-k2.5: HTTP 503`)
    // Commas and quotes are quoted the RFC 4180 way.
    const timeout = await (await fetch(`${w.url}/requests?status=timeout&format=csv`)).text()
    expect(timeout).toEndWith(',20000,timeout,"timeout after 20000 ms, ""slow"""\r\n')
    const limited = await (await fetch(`${w.url}/requests?format=ndjson&limit=2`)).text()
    expect(limited.trimEnd().split('\n')).toHaveLength(2)
  })

  test('bad values get a 400 naming the parameter, never a 500', async () => {
    expect((await expect400('/requests?since=5q', 'since')).message).toContain('duration back from now (90s, 15m, 1h, 7d)')
    await expect400('/requests?since=2026-11-25T10:00:00', 'since')
    await expect400('/requests?until=1h&since=30m', 'until')
    await expect400('/requests?status=done', 'status')
    await expect400('/requests?cursor=abc', 'cursor')
    await expect400(`/requests?cursor=${Buffer.from('2026-11-25T10:00:00.000Z/0').toString('base64url')}`, 'cursor')
    await expect400('/requests?format=xml', 'format')
    await expect400('/requests?agnet=ezra', 'agnet')
    await expect400('/requests?agent=ezra&agent=bezalel', 'agent')
    await expect400('/requests?agent=', 'agent')
    await expect400(`/requests?model=${'m'.repeat(300)}`, 'model')
  })
})

describe('reading several databases (the live file and archives)', () => {
  test('pages read from each and merged are the pages of one database holding all the rows', async () => {
    const a = seedStore()
    const b = seedStore()
    const one = seedStore()
    const requests = Array.from({ length: 7 }, (_, i) => ({ agent: 'ezra', at: at(i * 5), rows: [{ provider: 'kimi', status: 'success' as const, latencyMs: i }] }))
    // Archive-like: each file holds some of the rows; ids differ between files, timestamps decide.
    await seed(a.store, requests.filter((_, i) => i % 2 === 0))
    await seed(b.store, requests.filter((_, i) => i % 2 === 1))
    await seed(one.store, requests)
    const dbs = [a, b, one].map((s) => new Database(s.path, { readonly: true }))
    const stamps = (rows: LogRow[]) => rows.map((r) => r.timestamp)
    let merged: string[] = []
    let single: string[] = []
    let key: { timestamp: string; id: number } | undefined
    let keyOne: typeof key
    do {
      const page = pageOf(mergeNewestFirst([listRequests(dbs[0]!, {}, 3, key), listRequests(dbs[1]!, {}, 3, key)], 3), 2)
      merged = [...merged, ...stamps(page.rows)]
      key = page.next ?? undefined
    } while (key)
    do {
      const page = pageOf(listRequests(dbs[2]!, {}, 3, keyOne), 2)
      single = [...single, ...stamps(page.rows)]
      keyOne = page.next ?? undefined
    } while (keyOne)
    expect(merged).toEqual(single)
    expect(merged).toHaveLength(7)
    for (const db of dbs) db.close()
    for (const s of [a, b, one]) s.store.close()
  })
})

describe('GET /requests/:id', () => {
  test('returns the row and every row of its request, with the serving response id', async () => {
    const r2 = ids[1]!
    const res = await fetch(`${w.url}/requests/${r2[1]}`)
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body.row).toMatchObject({ id: r2[1], status: 'fallback', provider: 'openrouter' })
    expect(body.request).toMatchObject({ request_id: 'req-two', chain: 'default', api: 'infer' })
    expect(body.request.rows.map((r: { id: number }) => r.id)).toEqual(r2)
    expect(body.request.rows.map((r: { status: string }) => r.status)).toEqual(['error', 'fallback', 'success'])
    expect(body.request.rows[2]).toMatchObject({ seq: 3, response_id: 'gen-2', served_model: 'google/gemini-2.5-pro', cost_usd: 0.002, http_status: 200 })
  })

  test('a malformed id is a 400 and an unknown one a 404', async () => {
    for (const bad of ['abc', '0', '-1', '1.5', '1e3', '99999999999999999999']) {
      const res = await fetch(`${w.url}/requests/${bad}`)
      expect(res.status, bad).toBe(400)
    }
    expect((await fetch(`${w.url}/requests/424242`)).status).toBe(404)
  })
})

describe('query plans', () => {
  const plan = (db: Database, q: { sql: string; params: Record<string, string | number> }) =>
    (db.query(`EXPLAIN QUERY PLAN ${q.sql}`).all(q.params) as { detail: string }[]).map((r) => r.detail).join(' | ')
  const before = { timestamp: at(60), id: 1000 }

  test('a page filtered by agent, provider, both, a rare status or a request id is an index range read with no sort', () => {
    const db = new Database(w.dbPath, { readonly: true })
    const cases: [Parameters<typeof requestsQuery>[0], RegExp][] = [
      [{ agent: 'ezra' }, /SEARCH l USING INDEX request_log_agent_time \(agent_name=\?/],
      [{ agent: 'ezra', since: at(0), until: at(90) }, /SEARCH l USING INDEX request_log_agent_time \(agent_name=\? AND timestamp>\? AND timestamp<\?/],
      [{ provider: 'kimi', since: at(0) }, /SEARCH l USING INDEX request_log_provider_time \(provider=\? AND timestamp>\?/],
      [{ agent: 'ezra', provider: 'kimi', model: 'kimi-k2.5', since: at(0) }, /SEARCH l USING INDEX request_log_agent_provider_time \(agent_name=\? AND provider=\? AND timestamp>\?/],
      [{ status: 'rollback' }, /SEARCH l USING INDEX request_log_status_time \(status=\?/],
      [{ status: 'timeout', since: at(0) }, /SEARCH l USING INDEX request_log_status_time \(status=\? AND timestamp>\?/],
      [{ provider: 'kimi', status: 'error' }, /SEARCH l USING INDEX request_log_provider_status_time \(provider=\? AND status=\?/],
      // With a time window too, either partial index is a range read; the planner picks by its own estimate.
      [{ provider: 'kimi', status: 'timeout', since: at(0) }, /SEARCH l USING INDEX request_log_(provider_)?status_time \((provider=\? AND )?status=\? AND timestamp>\?/],
      [{ agent: 'ezra', chain: 'fast' }, /SEARCH l USING INDEX request_log_agent_time \(agent_name=\?.*\) \| SEARCH m USING INTEGER PRIMARY KEY/],
      [{ requestId: 'req-two' }, /SEARCH m USING COVERING INDEX request_log_meta_request \(request_id=\?/],
      [{ since: at(0) }, /SEARCH l USING INDEX request_log_timestamp \(timestamp>\?/],
    ]
    for (const [filter, expected] of cases) {
      for (const cursor of [undefined, before]) {
        const detail = plan(db, requestsQuery(filter, 100, cursor))
        expect(detail, JSON.stringify(filter)).toMatch(expected)
        expect(detail).not.toMatch(/^SCAN|\| SCAN/)
        // A sort is fine only for a request id (a handful of rows).
        if (!filter.requestId) expect(detail, JSON.stringify(filter)).not.toContain('TEMP B-TREE')
      }
    }
    // Pending rows (calls in flight) come from their own small partial index, whatever else is asked.
    expect(plan(db, requestsQuery({ status: 'pending', agent: 'ezra', since: at(0) }, 100, before))).toContain('USING COVERING INDEX request_log_pending')
    db.close()
  })

  test('did-call reads indexes only, whatever the window; with a model, one range read of the (agent, provider, time) index', () => {
    const db = new Database(w.dbPath, { readonly: true })
    const q = { agent: 'ezra', provider: 'kimi', since: at(0), until: at(90) }
    const counts = didCallQueries(q)
    expect(Object.keys(counts)).toEqual(['total', 'sparse', 'pending', 'lastCall'])
    const plans = Object.fromEntries(Object.entries(counts).map(([k, b]) => [k, plan(db, b)]))
    expect(plans.total).toBe('SEARCH l USING COVERING INDEX request_log_agent_provider_time (agent_name=? AND provider=? AND timestamp>? AND timestamp<?)')
    expect(plans.sparse).toBe('SEARCH l USING COVERING INDEX request_log_agent_provider_status_time (agent_name=? AND provider=? AND status=? AND timestamp>? AND timestamp<?)')
    expect(plans.pending).toContain('SCAN p USING COVERING INDEX request_log_pending')
    expect(plans.lastCall).toBe('SEARCH l USING INDEX request_log_agent_provider_time (agent_name=? AND provider=? AND timestamp>? AND timestamp<?)')
    const withModel = didCallQueries({ ...q, model: 'kimi-k2.5' })
    expect(Object.keys(withModel)).toEqual(['byStatus', 'lastCall'])
    expect(plan(db, 'byStatus' in withModel ? withModel.byStatus : withModel.total)).toStartWith('SEARCH l USING INDEX request_log_agent_provider_time (agent_name=? AND provider=? AND timestamp>? AND timestamp<?)')
    // With stored slices, a model's rare statuses are counted from the index alone too (migration 11).
    expect(plan(db, didCallParts({ ...q, model: 'kimi-k2.5' }).sparse)).toBe(
      'SEARCH l USING COVERING INDEX request_log_agent_provider_status_time (agent_name=? AND provider=? AND status=? AND timestamp>? AND timestamp<?)',
    )
    db.close()
  })
})
