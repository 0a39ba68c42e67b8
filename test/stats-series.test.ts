/**
 * GET /stats/series and GET /stats/fallbacks on hand-made rows in a real
 * database: bucket edges, exact per-bucket percentiles, which rows count,
 * where fallbacks came from; parameter errors name the parameter; both need
 * the operator token when `auth` is set.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { hashToken } from '../src/auth/tokens.ts'
import { type SeedRequest, seed } from './support/seed-requests.ts'
import { type TestWitness, manualClock, startWitness } from './support/witness.ts'

const T = Date.parse('2026-11-25T10:00:00.000Z')
const at = (minutes: number, ms = 0) => new Date(T + minutes * 60_000 + ms).toISOString()
const kimi = { provider: 'kimi', model: 'kimi-k2.5' }
const groq = { provider: 'groq', model: 'llama' }

const DATA: SeedRequest[] = [
  // Just before the window, and at its (exclusive) end: not counted.
  { agent: 'ezra', at: at(0, -1), rows: [{ ...kimi, status: 'success', latencyMs: 9999 }] },
  { agent: 'ezra', at: at(60), rows: [{ ...kimi, status: 'error', latencyMs: 1 }] },
  // Bucket 0 (10:00-10:10): three kimi successes.
  { agent: 'ezra', at: at(1), rows: [{ ...kimi, status: 'success', latencyMs: 100 }] },
  { agent: 'ezra', at: at(2), rows: [{ ...kimi, status: 'success', latencyMs: 300 }] },
  { agent: 'ezra', at: at(3), rows: [{ ...kimi, status: 'success', latencyMs: 200 }] },
  // Bucket 1: kimi fails twice (an error, then a timeout on the retry), the request falls back to groq, which serves.
  {
    agent: 'bezalel',
    at: at(12),
    rows: [
      { ...kimi, status: 'error', latencyMs: 4 },
      { ...kimi, status: 'timeout', latencyMs: 5000 },
      { ...groq, status: 'fallback', errorMessage: 'fallback from kimi/kimi-k2.5: timeout after 5000 ms' },
      { ...groq, status: 'success', latencyMs: 50 },
    ],
  },
  // Bucket 2: groq serves; a call still pending is not an attempt yet.
  { agent: 'bezalel', at: at(25), rows: [{ ...groq, status: 'success', latencyMs: 70 }] },
  { agent: 'bezalel', at: at(30), rows: [{ ...groq, status: 'pending' }] },
  // Bucket 3: a last step skipped with nowhere to go is a fallback row, but no move out of anything.
  { agent: 'ezra', at: at(31), rows: [{ ...groq, status: 'fallback', errorMessage: 'skipped groq/llama, API key GROQ_API_KEY is not set; no further step' }] },
  // Bucket 5, its last millisecond.
  { agent: 'ezra', at: at(59, 59_999), rows: [{ ...kimi, status: 'success', latencyMs: 400 }] },
]

describe('GET /stats/series and /stats/fallbacks', () => {
  let w: TestWitness
  beforeAll(async () => {
    w = await startWitness({ providers: { kimi: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' } }, chains: { default: [kimi] } }, { clock: manualClock(T + 3_600_000) })
    await seed(w.store, DATA)
  })
  afterAll(() => w.stop())

  const get = async (path: string) => {
    const res = await fetch(`${w.url}${path}`)
    return { status: res.status, body: (await res.json()) as Record<string, any> }
  }

  test('attempts are counted per bucket by status, from since (inclusive) to until (exclusive)', async () => {
    const { status, body } = await get(`/stats/series?since=${at(0)}&until=${at(60)}&bucket=10m`)
    expect(status).toBe(200)
    expect(body.bucket_s).toBe(600)
    expect(body.buckets).toEqual([0, 10, 20, 30, 40, 50].map((m) => at(m)))
    expect(body.attempts).toEqual({ success: [3, 1, 1, 0, 0, 1], error: [0, 1, 0, 0, 0, 0], timeout: [0, 1, 0, 0, 0, 0] })
  })

  test('each provider gets exact nearest-rank latency percentiles of its successful attempts per bucket', async () => {
    const { body } = await get(`/stats/series?since=${at(0)}&until=${at(60)}&bucket=10m`)
    expect(body.latency).toEqual([
      { provider: 'groq', successes: [0, 1, 1, 0, 0, 0], p50_ms: [null, 50, 70, null, null, null], p95_ms: [null, 50, 70, null, null, null], p99_ms: [null, 50, 70, null, null, null] },
      // 100, 200, 300: p50 is the 2nd smallest, p95 and p99 the 3rd.
      { provider: 'kimi', successes: [3, 0, 0, 0, 0, 1], p50_ms: [200, null, null, null, null, 400], p95_ms: [300, null, null, null, null, 400], p99_ms: [300, null, null, null, null, 400] },
    ])
  })

  test('buckets start at whole multiples of the bucket; a since inside one cuts it', async () => {
    const { body } = await get(`/stats/series?since=${at(1, 500)}&until=${at(30)}&bucket=10m`)
    expect(body.buckets).toEqual([at(0), at(10), at(20)])
    // The 10:01 success is before since; 10:02 (300 ms) and 10:03 (200 ms) are in.
    expect(body.attempts.success).toEqual([2, 1, 1])
    expect(body.latency.find((p: { provider: string }) => p.provider === 'kimi').p50_ms).toEqual([200, null, null])
  })

  test('buckets under 10 minutes are counted by SQL and agree with the 10-minute slices', async () => {
    const { body } = await get(`/stats/series?since=${at(0)}&until=${at(60)}&bucket=5m`)
    expect(body.buckets).toHaveLength(12)
    expect(body.attempts).toEqual({
      success: [3, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 1],
      error: [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      timeout: [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    })
    const kimiLine = body.latency.find((p: { provider: string }) => p.provider === 'kimi')
    expect(kimiLine.p50_ms).toEqual([200, null, null, null, null, null, null, null, null, null, null, 400])
    // Summed in pairs, the 5-minute counts are the 10-minute ones.
    const tens = (await get(`/stats/series?since=${at(0)}&until=${at(60)}&bucket=10m`)).body.attempts.success
    expect(body.attempts.success.filter((_: number, i: number) => i % 2 === 0).map((v: number, i: number) => v + body.attempts.success[2 * i + 1])).toEqual(tens)
  })

  test('without a bucket the window is cut into at most 300; since defaults to 24 hours back', async () => {
    expect((await get('/stats/series')).body).toMatchObject({ since: at(-1380), until: at(60), bucket_s: 600 })
    expect((await get('/stats/series?since=7d')).body.bucket_s).toBe(3600)
    expect((await get('/stats/series?since=1h')).body).toMatchObject({ bucket_s: 60, buckets: Array.from({ length: 60 }, (_, i) => at(i)) })
  })

  test('an empty window has zero attempts and no latency lines', async () => {
    const { body } = await get(`/stats/series?since=2026-11-20&until=2026-11-21&bucket=6h`)
    expect(body.attempts).toEqual({ success: [0, 0, 0, 0], error: [0, 0, 0, 0], timeout: [0, 0, 0, 0] })
    expect(body.latency).toEqual([])
  })

  test('a bad parameter is a 400 naming it', async () => {
    const issue = async (query: string) => (await get(`/stats/series?${query}`)).body.error.issues.map((i: { path: string }) => i.path)
    expect(await issue('bucket=0s')).toEqual(['bucket'])
    // 7 minutes neither divides 10 minutes nor is a multiple of them.
    expect(await issue('bucket=7m')).toEqual(['bucket'])
    expect(await issue('bucket=10x')).toEqual(['bucket'])
    expect(await issue("bucket=1m'%20OR%201=1")).toEqual(['bucket'])
    expect(await issue('since=7d&bucket=1m')).toEqual(['bucket'])
    expect(await issue('since=soon')).toEqual(['since'])
    expect(await issue(`since=${at(10)}&until=${at(0)}`)).toEqual(['until'])
    expect(await issue('by=provider')).toEqual(['by'])
    expect((await get('/stats/series?bucket=1m&bucket=5m')).status).toBe(400)
  })

  test('fallbacks are counted from the provider a request left to the one it moved to', async () => {
    const { status, body } = await get(`/stats/fallbacks?since=${at(0)}&until=${at(60)}`)
    expect(status).toBe(200)
    expect(body).toEqual({ since: at(0), until: at(60), fallbacks: [{ from: 'kimi', to: 'groq', count: 1 }] })
    expect((await get(`/stats/fallbacks?since=${at(13)}`)).body.fallbacks).toEqual([])
    expect((await get('/stats/fallbacks?agent=ezra')).body.error.issues[0].path).toBe('agent')
  })

  test('sealed slices come from the stats cache, and a row written late into one still shows', async () => {
    const path = `/stats/series?since=${at(0)}&until=${at(60)}&bucket=30m`
    const first = (await get(path)).body
    expect(first.attempts.success).toEqual([5, 1])
    expect((await get(path)).body).toEqual(first)
    await seed(w.store, [{ agent: 'ezra', at: at(4), rows: [{ ...kimi, status: 'success', latencyMs: 1000 }] }])
    const after = (await get(path)).body
    expect(after.attempts.success).toEqual([6, 1])
    // 100, 200, 300, 1000 (and groq's 50 and 70 are groq's): p50 is the 2nd smallest, p95 the 4th.
    expect(after.latency.find((p: { provider: string }) => p.provider === 'kimi')).toMatchObject({ successes: [4, 1], p50_ms: [200, 400], p95_ms: [1000, 400] })
  })
})

describe('with auth', () => {
  const OPERATOR = 'operator-token-series-0123'
  const AGENT = 'agent-token-series-0123'
  let w: TestWitness
  beforeAll(async () => {
    w = await startWitness({
      providers: { kimi: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' } },
      chains: { default: [kimi] },
      auth: { agents: { ezra: { token_sha256: hashToken(AGENT) } }, operators: { alexander: { token_sha256: hashToken(OPERATOR) } } },
    })
  })
  afterAll(() => w.stop())

  test('the series and fallbacks need an operator token', async () => {
    for (const path of ['/stats/series', '/stats/fallbacks']) {
      expect((await fetch(`${w.url}${path}`)).status).toBe(401)
      expect((await fetch(`${w.url}${path}`, { headers: { authorization: `Bearer ${AGENT}` } })).status).toBe(403)
      expect((await fetch(`${w.url}${path}`, { headers: { authorization: `Bearer ${OPERATOR}` } })).status).toBe(200)
    }
  })
})
