/**
 * "Did agent X call provider Y?" over real traffic through the simulator
 * plus hand-placed older rows: yes, no, and never fooled by fallback rows
 * that merely name the provider.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { seed, seedStore } from './support/seed-requests.ts'
import { manualClock, simConfig, startWitness, type TestWitness } from './support/witness.ts'

const NOW = Date.parse('2026-11-25T12:00:00.000Z')
const iso = (ms: number) => new Date(ms).toISOString()
let sim: Simulator
let w: TestWitness
const clock = manualClock(NOW)

beforeAll(async () => {
  sim = startSimulator()
  w = await startWitness(
    simConfig(
      sim.url,
      {
        // sim fails, keyed is skipped (its key is not set): keyed is only ever named by fallback rows.
        skip: [{ provider: 'sim', model: 'a+status-500', retries: 0 }, { provider: 'keyed', model: 'k' }],
        // sim times out, sim2 serves.
        slow: [{ provider: 'sim', model: 'a+hang', timeout_ms: 50, retries: 0 }, { provider: 'sim2', model: 'b' }],
      },
      { providers: { keyed: { type: 'openai', base_url: `${sim.url}/v1`, api_key_env: 'KEYED_API_KEY' } } },
    ),
    { clock },
  )
  expect((await w.infer({ agent: 'ezra', chain: 'skip' })).status).toBe(502)
  expect((await w.infer({ agent: 'ezra', chain: 'slow' })).status).toBe(200)
  // Two hours ago, ezra called keyed for real once (before its key was removed).
  const { store } = seedStore(w.dir)
  await seed(store, [{ agent: 'ezra', at: iso(NOW - 2 * 3_600_000), rows: [{ provider: 'keyed', model: 'k', status: 'success', latencyMs: 10 }] }])
  store.close()
})
afterAll(async () => {
  await w.stop(0)
  await sim.stop()
})

async function didCall(query: string) {
  const res = await fetch(`${w.url}/requests/did-call?${query}`)
  expect(res.status).toBe(200)
  return res.json()
}

describe('GET /requests/did-call', () => {
  test('yes: a real call, with counts by status and the last call time', async () => {
    const answer = await didCall('agent=ezra&provider=sim2&since=1h')
    expect(answer).toEqual({
      called: true,
      agent: 'ezra',
      provider: 'sim2',
      since: iso(NOW - 3_600_000),
      calls: 1,
      by_status: { success: 1 },
      last_call_at: iso(NOW),
      fallback_rows: 1,
    })
    const sim1 = await didCall('agent=ezra&provider=sim&since=1h')
    expect(sim1).toMatchObject({ called: true, calls: 2, by_status: { error: 1, timeout: 1 } })
  })

  test('no: fallback rows that only name the provider are not calls', async () => {
    const answer = await didCall('agent=ezra&provider=keyed&since=1h')
    expect(answer).toMatchObject({ called: false, calls: 0, by_status: {}, last_call_at: null, fallback_rows: 2 })
  })

  test('the window decides: an older call counts only when since reaches back to it', async () => {
    expect(await didCall('agent=ezra&provider=keyed&since=3h')).toMatchObject({ called: true, calls: 1, last_call_at: iso(NOW - 2 * 3_600_000) })
    expect(await didCall(`agent=ezra&provider=keyed&since=3h&until=${iso(NOW - 2 * 3_600_000)}`)).toMatchObject({ called: false })
  })

  test('model narrows the question, and another agent or provider is a plain no', async () => {
    expect(await didCall('agent=ezra&provider=sim&model=a%2Bhang&since=1h')).toMatchObject({ called: true, model: 'a+hang', calls: 1, by_status: { timeout: 1 } })
    expect(await didCall('agent=ezra&provider=sim&model=zzz&since=1h')).toMatchObject({ called: false })
    expect(await didCall('agent=bezalel&provider=sim2&since=1h')).toMatchObject({ called: false, calls: 0 })
    expect(await didCall('agent=ezra&provider=nobody&since=1h')).toMatchObject({ called: false, fallback_rows: 0 })
  })

  test('a call still in flight (pending) is a call', async () => {
    const { store } = seedStore(w.dir)
    await seed(store, [
      { agent: 'miriam', at: iso(NOW - 60_000), rows: [{ provider: 'sim', status: 'success', latencyMs: 3 }, { provider: 'sim', status: 'error' }] },
      { agent: 'miriam', at: iso(NOW - 1_000), rows: [{ provider: 'sim', status: 'pending' }] },
    ])
    store.close()
    const answer = await didCall('agent=miriam&provider=sim&since=1h')
    expect(answer).toMatchObject({ called: true, calls: 3, by_status: { success: 1, error: 1, pending: 1 }, last_call_at: iso(NOW - 1_000) })
    expect(await didCall('agent=miriam&provider=sim&model=sim-model&since=1h')).toMatchObject({ calls: 3, by_status: { success: 1, error: 1, pending: 1 } })
  })

  test('since defaults to 24 hours; agent and provider are required', async () => {
    expect((await didCall('agent=ezra&provider=keyed')).since).toBe(iso(NOW - 86_400_000))
    const res = await fetch(`${w.url}/requests/did-call?agent=ezra`)
    expect(res.status).toBe(400)
    const { error } = await res.json()
    expect(error.issues).toEqual([{ path: 'provider', message: 'is required' }])
  })
})
