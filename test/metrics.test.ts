/** GET /metrics parses as Prometheus text and counts what the router did. */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { statSync } from 'node:fs'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { holdWriteLock } from './support/process.ts'
import { parsePrometheus, valueOf } from './support/prometheus.ts'
import { simConfig, startWitness, type TestWitness } from './support/witness.ts'

const ODD_MODEL = 'q"x\\y'
let sim: Simulator
let w: TestWitness

beforeAll(async () => {
  sim = startSimulator()
  w = await startWitness(
    simConfig(sim.url, {
      default: [{ provider: 'sim', model: 'a+status-500', retries: 0 }, { provider: 'sim2', model: 'b' }],
      ok: [{ provider: 'sim', model: `${ODD_MODEL}+latency-20` }],
      nokey: [{ provider: 'nokey', model: 'm' }],
    }, { providers: { nokey: { type: 'openai', base_url: `${sim.url}/v1`, api_key_env: 'WITNESS_TEST_UNSET_KEY' } } }),
  )
  expect((await w.infer({ chain: 'nokey' })).status).toBe(502)
  expect((await w.infer({ chain: 'default' })).status).toBe(200)
  expect((await w.infer({ chain: 'ok' })).status).toBe(200)
})
afterAll(async () => {
  await w.stop(0)
  await sim.stop()
})

describe('GET /metrics', () => {
  test('is Prometheus text with exactly the documented metric families', async () => {
    const res = await fetch(`${w.url}/metrics`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8')
    const families = parsePrometheus(await res.text())
    expect([...families.entries()].map(([name, f]) => [name, f.type])).toEqual([
      ['witness_attempts_total', 'counter'],
      ['witness_attempt_duration_seconds', 'histogram'],
      ['witness_fallbacks_total', 'counter'],
      ['witness_pending_rows', 'gauge'],
      ['witness_database_bytes', 'gauge'],
      ['witness_commits_total', 'counter'],
      ['witness_committed_writes_total', 'counter'],
      ['witness_commit_lock_waits_total', 'counter'],
      ['witness_write_failures_total', 'counter'],
      ['witness_wal_checkpoints_total', 'counter'],
    ])
  })

  test('counts attempts by provider, model and status, fallbacks by from and to, and durations by provider', async () => {
    const m = parsePrometheus(await (await fetch(`${w.url}/metrics`)).text())
    expect(valueOf(m, 'witness_attempts_total', { provider: 'sim', model: 'a+status-500', status: 'error' })).toBe(1)
    expect(valueOf(m, 'witness_attempts_total', { provider: 'sim2', model: 'b', status: 'success' })).toBe(1)
    expect(valueOf(m, 'witness_attempts_total', { provider: 'sim', model: `${ODD_MODEL}+latency-20`, status: 'success' })).toBe(1)
    expect(valueOf(m, 'witness_fallbacks_total', { from: 'sim', to: 'sim2' })).toBe(1)
    // A last step skipped with nowhere to go (its API key unset) moved nowhere: no fallback, as in /stats/fallbacks.
    expect(valueOf(m, 'witness_fallbacks_total', { from: 'nokey', to: 'nokey' })).toBeUndefined()
    expect(valueOf(m, 'witness_attempt_duration_seconds_count', { provider: 'sim' })).toBe(2)
    expect(valueOf(m, 'witness_attempt_duration_seconds_bucket', { provider: 'sim', le: '+Inf' })).toBe(2)
    // Both sim calls (a fast 500 and a 20 ms reply) fit under 0.25 s.
    expect(valueOf(m, 'witness_attempt_duration_seconds_bucket', { provider: 'sim', le: '0.25' })).toBe(2)
    expect(valueOf(m, 'witness_attempt_duration_seconds_sum', { provider: 'sim' })).toBeGreaterThanOrEqual(0.02)
    expect(valueOf(m, 'witness_pending_rows')).toBe(0)
    expect(valueOf(m, 'witness_database_bytes')).toBeGreaterThanOrEqual(statSync(w.dbPath).size)
  })

  test("counts the writer's commits and the writes in them", async () => {
    const m = parsePrometheus(await (await fetch(`${w.url}/metrics`)).text())
    const commits = valueOf(m, 'witness_commits_total')!
    const writes = valueOf(m, 'witness_committed_writes_total')!
    // The three requests wrote at least: two pending rows and their finishes, a fallback row, and the last pending row and finish.
    expect(writes).toBeGreaterThanOrEqual(7)
    expect(commits).toBeGreaterThanOrEqual(1)
    expect(commits).toBeLessThanOrEqual(writes)
    expect(valueOf(m, 'witness_commit_lock_waits_total')).toBe(0)
    expect(valueOf(m, 'witness_write_failures_total')).toBe(0)
    // Far fewer commits than one checkpoint needs (64).
    expect(valueOf(m, 'witness_wal_checkpoints_total', { result: 'done' })).toBe(0)
    expect(valueOf(m, 'witness_wal_checkpoints_total', { result: 'missed' })).toBe(0)
  })

  test('counts the waits for a database locked by another process, and the writes it refused', async () => {
    const locked = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_busy_timeout_ms: 300 }))
    const lock = await holdWriteLock(locked.dbPath)
    expect((await locked.infer({})).status).toBe(503)
    const refused = parsePrometheus(await (await fetch(`${locked.url}/metrics`)).text())
    // Health probes refused meanwhile (GET /heartbeat's test write) are not the log's writes: not counted.
    for (let i = 0; i < 3; i++) expect((await fetch(`${locked.url}/heartbeat`)).status).toBe(503)
    await lock.release()
    expect((await fetch(`${locked.url}/heartbeat`)).status).toBe(200)
    const m = parsePrometheus(await (await fetch(`${locked.url}/metrics`)).text())
    expect(valueOf(m, 'witness_commit_lock_waits_total')).toBeGreaterThan(0)
    expect(valueOf(m, 'witness_commit_lock_waits_total')).toBe(valueOf(refused, 'witness_commit_lock_waits_total'))
    expect(valueOf(m, 'witness_write_failures_total')).toBe(1)
    expect(valueOf(m, 'witness_commits_total')).toBe(valueOf(refused, 'witness_commits_total'))
    await locked.stop(0)
  })

  test('a finishing write refused and held is counted refused once, not again at each retry while the lock lasts', async () => {
    const held = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm+latency-400' }] }, { database_busy_timeout_ms: 200 }))
    try {
      const answered = held.infer({})
      while (sim.count() === 0) await Bun.sleep(10) // the pending row is in: the call is out
      const lock = await holdWriteLock(held.dbPath)
      expect((await answered).status).toBe(200) // the answer paid for is given; the finish is held
      await Bun.sleep(2500) // two retries, both refused
      const m = parsePrometheus(await (await fetch(`${held.url}/metrics`)).text())
      expect(valueOf(m, 'witness_write_failures_total')).toBe(1)
      await lock.release()
    } finally {
      await held.stop(2000)
    }
  })

  test('a database that cannot be read leaves the pending gauge out of the scrape, not the scrape a 500', async () => {
    const broken = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    try {
      broken.store.reader.close()
      const res = await fetch(`${broken.url}/metrics`)
      expect(res.status).toBe(200)
      const m = parsePrometheus(await res.text())
      expect(valueOf(m, 'witness_pending_rows')).toBeUndefined()
      expect(valueOf(m, 'witness_commits_total')).toBeDefined()
    } finally {
      await broken.stop(0).catch(() => {})
    }
  })

  test('the pending gauge counts calls in flight', async () => {
    const hung = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'h+hang', timeout_ms: 400, retries: 0 }] }))
    const pendingNow = async () => valueOf(parsePrometheus(await (await fetch(`${hung.url}/metrics`)).text()), 'witness_pending_rows')
    const call = hung.infer({})
    let pending: number | undefined
    for (let i = 0; i < 30 && pending !== 1; i++) {
      await Bun.sleep(10)
      pending = await pendingNow()
    }
    expect(pending).toBe(1)
    expect((await call).status).toBe(502)
    expect(await pendingNow()).toBe(0)
    await hung.stop(0)
  })
})
