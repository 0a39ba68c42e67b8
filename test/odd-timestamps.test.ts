/**
 * Rows whose timestamp is not canonical ISO-8601 with milliseconds: written
 * by hand (`2026-11-25 09:30:00`, SQLite's own format), without
 * milliseconds, with an offset, or by a clock past year 9999. They compare
 * as text; the read side must page past them, and must not let one of them
 * narrow (or break) a window for every other row.
 */
import { Database } from 'bun:sqlite'
import { afterAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { seed, seedStore } from './support/seed-requests.ts'
import { tempDir } from './support/temp.ts'
import { type TestWitness, manualClock, startWitness } from './support/witness.ts'

const NOW = Date.parse('2026-11-25T12:00:00.000Z')
const DAY = 'since=2026-11-25T00:00:00Z&until=2026-11-25T12:00:00Z'
const running: TestWitness[] = []
afterAll(async () => {
  for (const w of running) await w.stop(0)
})

const CONFIG = {
  providers: { kimi: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' }, groq: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' } },
  chains: { default: [{ provider: 'kimi', model: 'kimi-model' }] },
}

/** Six requests since 06:00 (a kimi error, a fallback to groq, a groq success), plus rows stamped by hand. */
async function witnessWith(handStamped: string[]): Promise<TestWitness> {
  const dir = tempDir()
  const { store } = seedStore(dir)
  await seed(
    store,
    Array.from({ length: 6 }, (_, i) => ({
      agent: 'ezra',
      at: new Date(NOW - 6 * 3_600_000 + i * 3_600_000 + 1000).toISOString(),
      rows: [
        { provider: 'kimi', status: 'error' as const, latencyMs: 10 },
        { provider: 'groq', status: 'fallback' as const, errorMessage: 'fallback from kimi/kimi-model: HTTP 500' },
        { provider: 'groq', status: 'success' as const, latencyMs: 20 + i, tokensIn: 1, tokensOut: 1 },
      ],
    })),
  )
  store.close()
  const db = new Database(join(dir, 'witness.db'))
  for (const at of handStamped) {
    db.query(`INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status, latency_ms) VALUES (?, 'ezra', 'kimi', 'kimi-model', 'hand', 'success', 5)`).run(at)
  }
  db.close()
  const w = await startWitness(CONFIG, { dir, clock: manualClock(NOW), statsFill: { tickMs: null } })
  running.push(w)
  return w
}

const get = async (w: TestWitness, path: string) => {
  const res = await fetch(w.url + path)
  return { status: res.status, body: (await res.json()) as Record<string, any> }
}

describe('rows stamped in another form', () => {
  test('a page ending on one still has a next page', async () => {
    const w = await witnessWith(['2026-11-25T11:30:00Z', '2026-11-25 09:30:00'])
    const seen: string[] = []
    let cursor = ''
    for (let page = 0; page < 30; page++) {
      const { status, body } = await get(w, `/requests?limit=1${cursor ? `&cursor=${cursor}` : ''}`)
      expect(status).toBe(200)
      seen.push(...body.rows.map((r: { timestamp: string }) => r.timestamp))
      if (!body.next_cursor) break
      cursor = body.next_cursor
    }
    expect(seen).toHaveLength(20)
    expect(seen).toContain('2026-11-25T11:30:00Z')
    expect(seen).toContain('2026-11-25 09:30:00')
  })

  test.each([
    ['SQLite\'s datetime() form, sorting before the day', '2026-11-25 09:30:00'],
    ['an offset, sorting after the day', '2026-11-25T11:30:00+05:00'],
    ['a year past 9999, sorting first', '+010000-01-01T00:00:00.000Z'],
    ['no time at all', 'unknown'],
  ])('one in %s narrows no window: stats, fallbacks and the series count every other row', async (_, odd) => {
    const w = await witnessWith([odd])
    const stats = await get(w, `/stats?${DAY}`)
    const groups = stats.body.groups as { provider: string; success: number; error: number }[]
    expect(groups.map((g) => [g.provider, g.success, g.error]).sort()).toEqual([
      ['groq', 6, 0],
      ['kimi', expect.any(Number), 6],
    ])
    const fallbacks = await get(w, `/stats/fallbacks?${DAY}`)
    expect(fallbacks.body.fallbacks).toEqual([{ from: 'kimi', to: 'groq', count: 6 }])
    // The stats fill stores the sealed slices all the same, and they answer the same.
    await w.statsFill!.run()
    expect((w.store.reader.query('SELECT count(*) AS n FROM stats_slice').get() as { n: number }).n).toBeGreaterThan(0)
    expect((await get(w, `/stats?${DAY}`)).body.groups).toEqual(stats.body.groups)
    for (const bucket of ['1h', '1m', '5m']) {
      const series = await get(w, `/stats/series?${DAY}&bucket=${bucket}`)
      expect(series.status).toBe(200)
      expect(series.body.attempts.error.reduce((a: number, b: number) => a + b, 0)).toBe(6)
    }
  })
})

describe('did-call with an agent token', () => {
  test('without agent= it answers for the token\'s own agent', async () => {
    const dir = tempDir()
    const { store } = seedStore(dir)
    await seed(store, [{ agent: 'ezra', at: new Date(NOW - 60_000).toISOString(), rows: [{ provider: 'kimi', status: 'success', latencyMs: 5 }] }])
    store.close()
    const token = 'ezra-token-0123456789abcdef0123456789'
    const operator = 'operator-token-0123456789abcdef01234567'
    const w = await startWitness(
      { ...CONFIG, auth: { agents: { ezra: { token_sha256: new Bun.CryptoHasher('sha256').update(token).digest('hex') } }, operators: { root: { token_sha256: new Bun.CryptoHasher('sha256').update(operator).digest('hex') } } } },
      { dir, clock: manualClock(NOW) },
    )
    running.push(w)
    const own = await fetch(`${w.url}/requests/did-call?provider=kimi&since=1h`, { headers: { authorization: `Bearer ${token}` } })
    expect(own.status).toBe(200)
    expect(await own.json()).toMatchObject({ agent: 'ezra', provider: 'kimi', called: true })
    const asOperator = await fetch(`${w.url}/requests/did-call?provider=kimi&since=1h`, { headers: { authorization: `Bearer ${operator}` } })
    expect(asOperator.status).toBe(400)
  })
})
