/**
 * GET /heartbeat reports the router's health and vital signs, and a config
 * that stays healthy (and has served) for deadman.promote_after_s becomes
 * the last-known-good snapshot. Driven with an injected clock and
 * `deadman.checkNow()`; no background timer runs.
 */
import { describe, expect, test } from 'bun:test'
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { sha256 } from '../src/hash.ts'
import { promoteLastGood, readLastGood, snapshotProblem } from '../src/deadman/last-good.ts'
import { BUN, ROOT, holdWriteLock } from './support/process.ts'
import { readRows } from './support/rows.ts'
import { useSimulator } from './support/sim-suite.ts'
import { tempDir } from './support/temp.ts'
import { manualClock, simConfig, type TestWitness, writeConfigFile } from './support/witness.ts'

const suite = useSimulator()

async function witness(chains: Record<string, unknown[]>, extra: Record<string, unknown> = {}) {
  const clock = manualClock()
  const w = await suite.start(simConfig(suite.sim.url, chains, extra), { clock })
  return { w, clock }
}

/** A call the client can abandon (the simulator hangs it); `abandon` returns once witness has let go of it. */
function hangingCall(w: TestWitness): { abandon(): Promise<void> } {
  const client = new AbortController()
  const done = fetch(`${w.url}/v1/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ agent: 'a', messages: [{ role: 'user', content: 'hi' }] }),
    signal: client.signal,
  }).catch(() => null)
  return {
    async abandon() {
      const before = (await heartbeat(w)).body.in_flight
      client.abort()
      await done
      while ((await heartbeat(w)).body.in_flight >= before) await Bun.sleep(5)
    },
  }
}

/** One chain per name, each a step on the simulator. */
const namedChains = (names: string[], model = 'm') => Object.fromEntries(names.map((name) => [name, [{ provider: 'sim', model }]]))

/** A successful call on `chain`, then health checks `promote_after_s` (60) apart: the running config is promoted. */
async function promote(w: TestWitness, clock: ReturnType<typeof manualClock>, chain = 'default') {
  expect((await w.infer({ chain })).status).toBe(200)
  await w.deadman.checkNow()
  clock.advance(60_000)
  await w.deadman.checkNow()
  expect(readFileSync(`${w.configPath}.last-good`)).toEqual(readFileSync(w.configPath))
}

async function heartbeat(w: TestWitness) {
  const res = await fetch(`${w.url}/heartbeat`)
  return { status: res.status, body: await res.json() }
}

describe('GET /heartbeat', () => {
  test('answers ok with the config hash, last known good, uptime, calls in flight, pending rows and last success', async () => {
    const { w, clock } = await witness({ default: [{ provider: 'sim', model: 'm' }] })
    clock.advance(42_000)
    const first = await heartbeat(w)
    expect(first).toEqual({
      status: 200,
      body: {
        status: 'ok',
        config_hash: sha256(readFileSync(w.configPath)),
        last_known_good: null,
        uptime_s: 42,
        in_flight: 0,
        pending_rows: 0,
        last_success_at: null,
      },
    })
    expect((await w.infer({})).status).toBe(200)
    expect((await heartbeat(w)).body.last_success_at).toBe(new Date(clock.now()).toISOString())
  })

  test('counts a call in flight and its pending row', async () => {
    const { w } = await witness({ default: [{ provider: 'sim', model: 'm+hang', timeout_ms: 60_000 }] })
    const calls = [hangingCall(w), hangingCall(w)]
    while (suite.sim.count() < 2) await Bun.sleep(5)
    const { body } = await heartbeat(w)
    expect([body.in_flight, body.pending_rows]).toEqual([2, 2])
    for (const call of calls) await call.abandon()
    expect((await heartbeat(w)).body).toMatchObject({ in_flight: 0, pending_rows: 0 })
  })

  test('a call stuck past every timeout its chain allows makes it 503, and it recovers when the call ends', async () => {
    const { w, clock } = await witness(
      { default: [{ provider: 'sim', model: 'm+hang', timeout_ms: 60_000, retries: 0 }] },
      { deadman: { stuck_grace_s: 10 } },
    )
    const call = hangingCall(w)
    while (suite.sim.count() === 0) await Bun.sleep(5)
    clock.advance(69_000)
    expect((await heartbeat(w)).status).toBe(200)
    clock.advance(2_000)
    const stuck = await heartbeat(w)
    expect(stuck.status).toBe(503)
    expect(stuck.body.status).toBe('unhealthy')
    expect(stuck.body.reasons).toEqual(['1 call(s) stuck past their timeouts (oldest: chain default, running 71 s)'])
    await call.abandon()
    expect((await heartbeat(w)).status).toBe(200)
  })

  test("a call waiting for its row to commit (another process holds the database's lock, within database_busy_timeout_ms) is not stuck: the database is the reason, which a rollback does not cure", async () => {
    const { w, clock } = await witness(
      { default: [{ provider: 'sim', model: 'm', timeout_ms: 2_000, retries: 0 }] },
      { database_busy_timeout_ms: 60_000, deadman: { stuck_grace_s: 1 } },
    )
    const lock = await holdWriteLock(w.dbPath) // a backup, an operator's sqlite3 shell
    let call: Promise<Response> | undefined
    try {
      call = w.infer({})
      while ((await heartbeat(w)).body.in_flight === 0) await Bun.sleep(5)
      clock.advance(30_000) // far past timeout_ms + stuck_grace_s, all of it waiting on the lock
      const report = await heartbeat(w)
      expect(report.status).toBe(503)
      expect(report.body.reasons).toEqual([expect.stringMatching(/^database not writable/)])
      expect(report.body.rollback_may_help).toBe(false)
    } finally {
      await lock.release()
    }
    expect((await call!).status).toBe(200)
    expect((await heartbeat(w)).status).toBe(200)
  })

  test('a wall clock stepped a day ahead (NTP, a VM resumed) makes no call stuck and no chain failing: durations are monotonic', async () => {
    let wallOffset = 0
    const clock = { now: () => Date.parse('2026-11-25T12:00:00.000Z') + wallOffset, monotonic: () => performance.now() }
    const w = await suite.start(
      simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+hang', timeout_ms: 60_000, retries: 0 }], bad: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman: { stuck_grace_s: 10, failing_window_s: 120 } }),
      { clock },
    )
    expect((await w.infer({ chain: 'bad' })).status).toBe(502)
    const call = hangingCall(w)
    while (suite.sim.count() < 2) await Bun.sleep(5)
    wallOffset = 86_400_000
    const report = await heartbeat(w)
    expect(report.body.reasons ?? []).toEqual([])
    expect(report.status).toBe(200)
    await call.abandon()
  })

  test('every chain called failing over failing_window_s (first failure to latest) makes it 503; one success clears it', async () => {
    const { w, clock } = await witness(
      { bad: [{ provider: 'sim', model: 'm+status-500', retries: 0 }], good: [{ provider: 'sim', model: 'm' }] },
      { deadman: { failing_window_s: 120 } },
    )
    expect((await w.infer({ chain: 'bad' })).status).toBe(502)
    clock.advance(119_000)
    expect((await w.infer({ chain: 'bad' })).status).toBe(502)
    expect((await heartbeat(w)).status).toBe(200)
    // One failure and then no traffic (a quiet night after a hiccup) is no outage, however long the quiet.
    clock.advance(3_600_000)
    expect((await heartbeat(w)).status).toBe(200)
    // Failures an hour apart are no outage either; failures that keep coming for the window are.
    expect((await w.infer({ chain: 'bad' })).status).toBe(502)
    expect((await heartbeat(w)).status).toBe(200)
    for (let i = 0; i < 2; i++) {
      clock.advance(61_000)
      expect((await w.infer({ chain: 'bad' })).status).toBe(502)
    }
    const failing = await heartbeat(w)
    expect(failing.status).toBe(503)
    expect(failing.body.reasons).toEqual(['every chain called has failed for 122 s without a success (bad; window 120 s)'])
    expect(failing.body.rollback_may_help).toBe(true)
    // Still failing a minute on (its reason counting up): the log said so once, not at every check.
    clock.advance(61_000)
    expect((await w.infer({ chain: 'bad' })).status).toBe(502)
    expect((await heartbeat(w)).body.reasons).toEqual(['every chain called has failed for 183 s without a success (bad; window 120 s)'])
    expect((await w.infer({ chain: 'good' })).status).toBe(200)
    expect((await heartbeat(w)).status).toBe(200)
    expect(w.logs.filter((l) => l.startsWith('witness: health:'))).toEqual([
      'witness: health: unhealthy: every chain called has failed for 122 s without a success (bad; window 120 s)',
      'witness: health: ok again',
    ])
  })

  test('traffic sparser than the window (an agent calling every five minutes): a config not yet proven whose chain has never served a call counts as failing after three failures in a row; a proven config does not', async () => {
    const { w, clock } = await witness({ bad: [{ provider: 'sim', model: 'm+status-500', retries: 0 }], good: [{ provider: 'sim', model: 'm' }] }, { deadman: { failing_window_s: 120 } })
    for (let i = 0; i < 2; i++) {
      if (i) clock.advance(300_000)
      expect((await w.infer({ chain: 'bad' })).status).toBe(502)
      expect((await heartbeat(w)).status).toBe(200)
    }
    clock.advance(300_000)
    expect((await w.infer({ chain: 'bad' })).status).toBe(502)
    const failing = await heartbeat(w)
    expect(failing.status).toBe(503)
    expect(failing.body.reasons).toEqual(['every chain called has failed for 600 s without a success (bad; window 120 s)'])
    // Quiet past six windows (a night): the next failure begins anew.
    clock.advance(721_000)
    expect((await w.infer({ chain: 'bad' })).status).toBe(502)
    expect((await heartbeat(w)).status).toBe(200)

    // The same config, proven (the last known good), failing that sparsely: no outage (a provider's hiccups).
    const proven = await witness({ bad: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman: { failing_window_s: 120 } })
    promoteLastGood(proven.w.configPath, readFileSync(proven.w.configPath))
    for (let i = 0; i < 4; i++) {
      proven.clock.advance(300_000)
      expect((await proven.w.infer({ chain: 'bad' })).status).toBe(502)
    }
    expect((await heartbeat(proven.w)).status).toBe(200)
    // Dense failures on it are an outage, as before.
    for (let i = 0; i < 3; i++) {
      proven.clock.advance(61_000)
      expect((await proven.w.infer({ chain: 'bad' })).status).toBe(502)
    }
    expect((await heartbeat(proven.w)).status).toBe(503)
  })

  test('a provider refusing the request itself (400, 413, 422) is no failing chain on the last known good or once the chain has served one on the config; before, it is (a mistyped model is refused so), as are a rejected key, a model not found, a rate limit and a 5xx', async () => {
    // Each outcome on its own router, its chain the only one called, failing over the whole window
    // (after one success, for the `script-200-…` models: the simulator answers 200 once, then that status).
    const outcomes: [string, number][] = [
      ['m+script-200-400', 200],
      ['m+script-200-413', 200],
      ['m+script-200-422', 200],
      ['m+status-400', 503],
      ['m+status-413', 503],
      ['m+status-422', 503],
      ['m+status-401', 503],
      ['m+status-403', 503],
      ['m+status-404', 503],
      ['m+status-429', 503],
      ['m+status-500', 503],
    ]
    for (const [model, expected] of outcomes) {
      const { w, clock } = await witness({ default: [{ provider: 'sim', model, retries: 0 }] }, { deadman: { failing_window_s: 60 } })
      if (model.includes('script-200-')) expect((await w.infer({})).status).toBe(200)
      for (let i = 0; i < 3; i++) {
        expect((await w.infer({})).status).toBe(502)
        clock.advance(31_000)
      }
      const report = await heartbeat(w)
      expect([model, report.status]).toEqual([model, expected])
      if (expected === 503) expect(report.body.rollback_may_help).toBe(true)
      await w.stop(0)
    }
    // On the last known good, a refusal is the request's from the start (a restart forgets the successes).
    const tooLong = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: () => Response.json({ error: { message: "This model's maximum context length is 8192 tokens. However, your messages resulted in 9120 tokens.", code: 'context_length_exceeded' } }, { status: 400 }),
    })
    try {
      const { w: long, clock: longClock } = await witness(
        { default: [{ provider: 'long', model: 'm', retries: 0 }] },
        { providers: { long: { type: 'openai', base_url: `http://127.0.0.1:${tooLong.port}/v1` } }, deadman: { failing_window_s: 60 } },
      )
      promoteLastGood(long.configPath, readFileSync(long.configPath))
      for (let i = 0; i < 3; i++) {
        expect((await long.infer({})).status).toBe(502)
        longClock.advance(31_000)
      }
      expect((await heartbeat(long)).status).toBe(200)
      // Nor once the snapshot no longer matches its .sha256 (changed, damaged): the running config is the one promoted.
      appendFileSync(`${long.configPath}.last-good`, '# edited\n')
      for (let i = 0; i < 3; i++) {
        expect((await long.infer({})).status).toBe(502)
        longClock.advance(31_000)
      }
      expect((await heartbeat(long)).status).toBe(200)
      await long.stop(0)
    } finally {
      tooLong.stop(true)
    }
    // One step that fails, not by the request's doing, is enough: the chain cannot serve what the next step refuses.
    const { w, clock } = await witness(
      { default: [{ provider: 'sim', model: 'm+status-503', retries: 0 }, { provider: 'sim2', model: 'm+status-400', retries: 0 }] },
      { deadman: { failing_window_s: 60 } },
    )
    for (let i = 0; i < 3; i++) {
      expect((await w.infer({})).status).toBe(502)
      clock.advance(31_000)
    }
    expect((await heartbeat(w)).status).toBe(503)
  })

  test("a stream cut at timeout_ms because its client stopped reading is no failing chain; one the provider was too slow for is", async () => {
    // An upstream that streams big chunks for ever: a client that reads one packet and then nothing
    // fills the socket buffers, nothing pulls the stream, and only the whole-stream limit ends it.
    const content = 'x'.repeat(16 * 1024)
    const upstream = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch() {
        const frame = new TextEncoder().encode(`data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`)
        return new Response(new ReadableStream({ pull: (c) => c.enqueue(frame) }), { headers: { 'content-type': 'text/event-stream' } })
      },
    })
    try {
      const extra = { providers: { flood: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1` } }, deadman: { failing_window_s: 60 } }
      const { w, clock } = await witness(
        { flood: [{ provider: 'flood', model: 'm', timeout_ms: 400, retries: 0 }], slow: [{ provider: 'sim', model: 'm+chunks-50+chunk-delay-100', timeout_ms: 300, retries: 0 }] },
        extra,
      )
      const unreadStream = async () => {
        const before = readRows(w.dbPath).length
        const socket = connect(Number(new URL(w.url).port), '127.0.0.1')
        try {
          const body = JSON.stringify({ model: 'flood', stream: true, messages: [{ role: 'user', content: 'hi' }] })
          socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nX-Agent-Name: a\r\nContent-Length: ${body.length}\r\n\r\n${body}`)
          await new Promise<void>((resolve) => socket.once('data', () => resolve()))
          socket.pause()
          while (readRows(w.dbPath).length === before || readRows(w.dbPath).at(-1)!.status === 'pending') await Bun.sleep(20)
          expect(readRows(w.dbPath).at(-1)).toMatchObject({ status: 'timeout', error_message: expect.stringMatching(/^timeout after 400 ms \(stream, \d+ chunks\)$/) })
          while ((await heartbeat(w)).body.in_flight > 0) await Bun.sleep(10)
        } finally {
          socket.destroy()
        }
      }
      for (let i = 0; i < 3; i++) {
        await unreadStream()
        clock.advance(31_000)
      }
      const report = await heartbeat(w)
      expect(report.body.reasons ?? []).toEqual([])
      expect(report.status).toBe(200)
      // A client that reads all it is sent, from a provider too slow for timeout_ms: that is the chain failing.
      const slowStream = async () => {
        const res = await fetch(`${w.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-agent-name': 'a' },
          body: JSON.stringify({ model: 'slow', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
        })
        expect(await res.text()).toContain('timeout after 300 ms')
        while ((await heartbeat(w)).body.in_flight > 0) await Bun.sleep(10)
      }
      for (let i = 0; i < 3; i++) {
        await slowStream()
        clock.advance(31_000)
      }
      // Only "slow" is named: the streams its client stopped reading left no mark on "flood".
      expect((await heartbeat(w)).body.reasons).toEqual([expect.stringMatching(/^every chain called has failed for \d+ s without a success \(slow; window 60 s\)$/)])
    } finally {
      await upstream.stop(true)
    }
  })

  test('a reload gives the new chains a clean slate', async () => {
    const chains = { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }
    const { w, clock } = await witness(chains, { deadman: { failing_window_s: 60 } })
    for (let i = 0; i < 3; i++) {
      await w.infer({})
      if (i < 2) clock.advance(40_000)
    }
    expect((await heartbeat(w)).status).toBe(503)
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'fixed' }] }, { deadman: { failing_window_s: 60 } }))
    expect((await w.post('/admin/reload', '')).status).toBe(200)
    expect((await heartbeat(w)).status).toBe(200)
  })

  test('a chain the last reload removed, still called (renamed by mistake), counts as failing; a name never configured does not', async () => {
    const { w, clock } = await witness({ default: [{ provider: 'sim', model: 'm' }] }, { deadman: { failing_window_s: 60 } })
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { main: [{ provider: 'sim', model: 'm' }] }, { deadman: { failing_window_s: 60 } }))
    expect((await w.post('/admin/reload', '')).status).toBe(200)
    for (const chain of ['typo', 'default']) {
      for (let i = 0; i < 3; i++) {
        expect((await w.infer({ chain })).status).toBe(404)
        clock.advance(31_000)
      }
      const report = await heartbeat(w)
      if (chain === 'typo') expect(report.status).toBe(200)
      else expect(report.body.reasons).toEqual(['every chain called has failed for 93 s without a success (default; window 60 s)'])
    }
  })

  test('a removed chain is still counted after a later reload that changes something else', async () => {
    const chains = (names: string[], model = 'm') => Object.fromEntries(names.map((name) => [name, [{ provider: 'sim', model }]]))
    const { w, clock } = await witness(chains(['default']), { deadman: { failing_window_s: 60 } })
    const reload = async (names: string[], model?: string) => {
      writeConfigFile(w.configPath, simConfig(suite.sim.url, chains(names, model), { deadman: { failing_window_s: 60 } }))
      expect((await w.post('/admin/reload', '')).status).toBe(200)
    }
    await reload(['main'])
    await reload(['main'], 'm2') // another change; "default" is still gone
    for (let i = 0; i < 3; i++) {
      expect((await w.infer({ chain: 'default' })).status).toBe(404)
      clock.advance(31_000)
    }
    expect((await heartbeat(w)).body.reasons).toEqual(['every chain called has failed for 93 s without a success (default; window 60 s)'])
  })

  test('a chain a reload removed is forgotten once a config without it is promoted: a forgotten cron still calling it cannot get a proven config rolled back', async () => {
    const extra = { deadman: { failing_window_s: 60, promote_after_s: 60 } }
    const { w, clock } = await witness(namedChains(['default', 'old']), extra)
    const reload = async (names: string[], model?: string) => {
      writeConfigFile(w.configPath, simConfig(suite.sim.url, namedChains(names, model), extra))
      expect((await w.post('/admin/reload', '')).status).toBe(200)
    }
    await reload(['default'])
    await promote(w, clock)
    await reload(['default'], 'm2') // a later change, not promoted yet, and not called yet
    for (let i = 0; i < 3; i++) {
      expect((await w.infer({ chain: 'old' })).status).toBe(404)
      clock.advance(31_000)
    }
    const report = await heartbeat(w)
    expect(report.body.reasons ?? []).toEqual([])
    expect(report.status).toBe(200)
  })

  test('across a restart, the chains the last known good had and this config lacks, still called, count as failing; once this config is promoted, the next start watches none', async () => {
    const extra = { deadman: { failing_window_s: 60, promote_after_s: 60 } }
    const { w: first, clock: firstClock } = await witness(namedChains(['default', 'old']), extra)
    await promote(first, firstClock)
    const lastGood = sha256(readFileSync(first.configPath))
    await first.stop(0)
    // Pushed and restarted, not reloaded: "default" renamed "main" by mistake, "old" retired.
    const restart = async () => {
      const clock = manualClock()
      return { w: await suite.start(simConfig(suite.sim.url, namedChains(['main']), extra), { clock, dir: first.dir }), clock }
    }
    const callGone = async (w: TestWitness, clock: ReturnType<typeof manualClock>) => {
      for (let i = 0; i < 3; i++) {
        for (const chain of ['default', 'old', 'typo']) expect((await w.infer({ chain })).status).toBe(404)
        clock.advance(31_000)
      }
    }
    let { w, clock } = await restart()
    expect(w.logs).toContain(
      `witness: deadman: this config differs from the last known good (sha256 ${lastGood.slice(0, 12)}…); until it is the last known good in its turn, requests still naming chain(s) default, old count as failures`,
    )
    await callGone(w, clock)
    expect((await heartbeat(w)).body.reasons).toEqual(['every chain called has failed for 93 s without a success (default, old; window 60 s)'])
    // It serves on its own chain and is promoted: the names it dropped are no longer its fault.
    await promote(w, clock, 'main')
    await w.stop(0)
    ;({ w, clock } = await restart())
    expect(w.logs.filter((l) => l.includes('last known good'))).toEqual([])
    await callGone(w, clock)
    expect((await heartbeat(w)).status).toBe(200)
  })

  test('a reload back onto the last known good forgets the chains the configs after it removed: a rollback could not cure them', async () => {
    const extra = { deadman: { failing_window_s: 60, promote_after_s: 60 } }
    const { w, clock } = await witness(namedChains(['default']), extra)
    await promote(w, clock)
    const reload = async (names: string[]) => {
      writeConfigFile(w.configPath, simConfig(suite.sim.url, namedChains(names), extra))
      expect((await w.post('/admin/reload', '')).status).toBe(200)
    }
    await reload(['default', 'new']) // an agent's cron adopts "new"
    await reload(['default']) // reverted (by the watchdog, or by hand)
    for (let i = 0; i < 3; i++) {
      expect((await w.infer({ chain: 'new' })).status).toBe(404)
      clock.advance(31_000)
    }
    const report = await heartbeat(w)
    expect(report.body.reasons ?? []).toEqual([])
    expect(report.body.last_known_good).toBe(report.body.config_hash)
  })

  test('a last known good that cannot be read, or no longer parses, is logged with why, and witness starts and serves', async () => {
    const { w: first, clock } = await witness(namedChains(['default']), { deadman: { promote_after_s: 60 } })
    await promote(first, clock)
    await first.stop(0)
    const snapshot = `${first.configPath}.last-good`
    // An older witness's snapshot, with a key this one does not know (and its .sha256 to match).
    promoteLastGood(first.configPath, new TextEncoder().encode(`${readFileSync(snapshot, 'utf8').slice(0, -2)},\n  "retired_setting": 1\n}`))
    const w = await suite.start(simConfig(suite.sim.url, namedChains(['main'])), { dir: first.dir })
    expect(w.logs.filter((l) => l.includes('last known good'))).toEqual([
      `witness: deadman: the last known good config (${snapshot}) cannot be read as a config, so this one is compared with none: retired_setting: unknown key (there is none such here)`,
    ])
    expect((await w.infer({ chain: 'main' })).status).toBe(200)
    await w.stop(0)
    rmSync(snapshot)
    mkdirSync(snapshot)
    const again = await suite.start(simConfig(suite.sim.url, namedChains(['main'])), { dir: first.dir })
    expect(again.logs.filter((l) => l.includes('last known good'))).toEqual([expect.stringContaining(`(${snapshot}) cannot be read as a config, so this one is compared with none: EISDIR`)])
    expect((await again.infer({ chain: 'main' })).status).toBe(200)
    // The router's own health is still answered (no snapshot to name), not a 500 a watchdog would count.
    const health = await heartbeat(again)
    expect([health.status, health.body.status, health.body.last_known_good]).toEqual([200, 'ok', null])
    expect((await fetch(`${again.url}/deadman`)).status).toBe(200)
    expect(again.logs).toContain(`witness: the last-known-good snapshot ${snapshot} cannot be read, so no config is the last known good: EISDIR: illegal operation on a directory, read`)
  })

  test("a call begun before a reload and failing after it reports nothing into the new config's record", async () => {
    const { w, clock } = await witness({ old: [{ provider: 'sim', model: 'm+latency-400+status-500', retries: 0 }] }, { deadman: { failing_window_s: 60 } })
    const before = suite.sim.count()
    const late = w.infer({ chain: 'old' })
    while (suite.sim.count() === before) await Bun.sleep(5)
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { good: [{ provider: 'sim', model: 'm' }] }, { deadman: { failing_window_s: 60 } }))
    expect((await w.post('/admin/reload', '')).status).toBe(200)
    expect((await late).status).toBe(502)
    clock.advance(61_000)
    // Counted, chain "old" (which the running config no longer has) would read as failing for good.
    const report = await heartbeat(w)
    expect(report.body.reasons ?? []).toEqual([])
    expect(report.status).toBe(200)
  })
})

describe('promotion to last known good', () => {
  const snapshotOf = (w: TestWitness) => `${w.configPath}.last-good`

  test('a config healthy for promote_after_s, with a successful call, is snapshotted next to the file with its hash', async () => {
    const { w, clock } = await witness({ default: [{ provider: 'sim', model: 'm' }] }, { deadman: { promote_after_s: 300 } })
    await w.deadman.checkNow()
    clock.advance(301_000)
    await w.deadman.checkNow()
    expect(existsSync(snapshotOf(w))).toBe(false) // healthy long enough, but nothing served yet

    expect((await w.infer({})).status).toBe(200)
    await w.deadman.checkNow()
    const bytes = readFileSync(w.configPath)
    expect(readFileSync(snapshotOf(w))).toEqual(bytes)
    expect(readFileSync(`${snapshotOf(w)}.sha256`, 'utf8')).toBe(`${sha256(bytes)}  witness.yaml.last-good\n`)
    expect((await heartbeat(w)).body.last_known_good).toBe(sha256(bytes))
    expect(w.logs.some((l) => l.includes(`promoted config sha256 ${sha256(bytes)}`))).toBe(true)
  })

  test('a config whose listen or database settings wait for a restart is not promoted: it has not run on them', async () => {
    const extra = { deadman: { promote_after_s: 60 } }
    const { w, clock } = await witness({ default: [{ provider: 'sim', model: 'm' }] }, extra)
    await promote(w, clock)
    const good = readFileSync(snapshotOf(w))
    // Reloaded with a database setting changed (applied at a restart only) and a chain changed.
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm2' }] }, { ...extra, database_busy_timeout_ms: 2500 }))
    expect((await (await w.post('/admin/reload', '')).json()).restart_required).toEqual(['database_busy_timeout_ms'])
    expect((await w.infer({})).status).toBe(200)
    for (let i = 0; i < 3; i++) {
      await w.deadman.checkNow()
      clock.advance(61_000)
    }
    expect(readFileSync(snapshotOf(w))).toEqual(good)
    const refusals = w.logs.filter((l) => l.includes('not promoting config sha256'))
    expect(refusals).toEqual([
      `witness: not promoting config sha256 ${sha256(readFileSync(w.configPath))} to last known good: its database_busy_timeout_ms waits for a restart, so it has not run on it (promoted once a start on it has proven it)`,
    ])
  })

  test('a start on a config without auth while the last known good has it says so loudly (an alert), and does not promote it over the snapshot', async () => {
    const dir = tempDir()
    const extra = { deadman: { promote_after_s: 60 } }
    const withAuth = simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { ...extra, auth: { operators: { op: { token_sha256: sha256('op-token-0123456789') } } } })
    const snapshot = new TextEncoder().encode(`${JSON.stringify(withAuth, null, 2)}\n`)
    promoteLastGood(join(dir, 'witness.yaml'), snapshot)
    const clock = manualClock()
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, extra), { clock, dir })
    expect(w.logs.filter((l) => l.includes('ALERT'))).toEqual([
      `witness: ALERT witness: this config has no auth and the last known good (sha256 ${sha256(snapshot).slice(0, 12)}…) has: witness runs open (no token asked; agents name themselves), and this config will not be promoted over it`,
    ])
    expect((await w.infer({})).status).toBe(200)
    for (let i = 0; i < 3; i++) {
      await w.deadman.checkNow()
      clock.advance(61_000)
    }
    expect(readFileSync(snapshotOf(w))).toEqual(Buffer.from(snapshot))
    expect(w.logs.filter((l) => l.includes('not promoting')).length).toBe(1)
    expect(w.logs.some((l) => l.includes('it has no auth and the last known good has'))).toBe(true)
  })

  test('a snapshot out of step with its .sha256 (a hand edit, or an older witness killed between the two renames of a promotion) is no last known good, and the next promotion repairs the pair', async () => {
    const { w, clock } = await witness({ default: [{ provider: 'sim', model: 'm' }] }, { deadman: { promote_after_s: 300 } })
    const bytes = readFileSync(w.configPath)
    // The snapshot holds this config, its .sha256 still names the one promoted before it.
    writeFileSync(snapshotOf(w), bytes)
    writeFileSync(`${snapshotOf(w)}.sha256`, `${sha256('an older config')}  witness.yaml.last-good\n`)
    expect((await heartbeat(w)).body.last_known_good).toBeNull()
    expect((await w.infer({})).status).toBe(200)
    await w.deadman.checkNow()
    clock.advance(301_000)
    await w.deadman.checkNow()
    expect(readFileSync(`${snapshotOf(w)}.sha256`, 'utf8')).toBe(`${sha256(bytes)}  witness.yaml.last-good\n`)
    expect((await heartbeat(w)).body.last_known_good).toBe(sha256(bytes))
  })

  test('a promotion killed between its renames leaves a valid pair: the old one, or the new snapshot with the hash it staged (and the read completes that pair)', async () => {
    const { w, clock } = await witness({ default: [{ provider: 'sim', model: 'm' }] }, { deadman: { promote_after_s: 60 } })
    await promote(w, clock)
    const a = readFileSync(w.configPath)
    // The next config runs (reloaded), and its promotion is cut short: on disk as it would be left.
    const b = Buffer.from(`${a}\n# the next config\n`)
    writeFileSync(w.configPath, b)
    expect((await w.post('/admin/reload', '')).status).toBe(200)
    const staged = `${snapshotOf(w)}.sha256.next`
    // Killed after staging the new hash, before the snapshot's rename: the old pair stands.
    writeFileSync(staged, `${sha256(b)}  witness.yaml.last-good\n`)
    expect((await heartbeat(w)).body.last_known_good).toBe(sha256(a))
    // Killed after the snapshot's rename, before the hash's: the new snapshot is what was promoted.
    writeFileSync(snapshotOf(w), b)
    expect((await heartbeat(w)).body.last_known_good).toBe(sha256(b))
    expect(readFileSync(`${snapshotOf(w)}.sha256`, 'utf8')).toBe(`${sha256(b)}  witness.yaml.last-good\n`)
    expect(existsSync(staged)).toBe(false)
  })

  test.skipIf(!Bun.which('strace'))('a promotion killed -9 between the renames of the snapshot and of its hash (renames slowed by strace) leaves the new pair, and no temp file', async () => {
    const dir = tempDir()
    const configPath = join(dir, 'witness.yaml')
    writeFileSync(configPath, 'first: config\n')
    promoteLastGood(configPath, readFileSync(configPath))
    const next = Buffer.from('second: config\n')
    const script = `const { promoteLastGood } = await import(${JSON.stringify(join(ROOT, 'src/deadman/last-good.ts'))}); await Bun.write(${JSON.stringify(join(dir, 'pid'))}, String(process.pid)); promoteLastGood(${JSON.stringify(configPath)}, new TextEncoder().encode(${JSON.stringify(next.toString())}))`
    const rename = 'rename,renameat,renameat2'
    const tracer = Bun.spawn(['strace', '-f', '-qq', '-o', '/dev/null', '-e', `trace=${rename}`, '-e', `inject=${rename}:delay_enter=400000`, BUN, '-e', script], { stdout: 'ignore', stderr: 'ignore' })
    try {
      // Once the snapshot holds the new bytes, the rename of its hash is still on its way: kill -9 then.
      const deadline = Date.now() + 15_000
      while (Date.now() < deadline && !(existsSync(join(dir, 'pid')) && sha256(readFileSync(`${configPath}.last-good`)) === sha256(next))) await Bun.sleep(5)
      process.kill(Number(readFileSync(join(dir, 'pid'), 'utf8')), 'SIGKILL')
    } finally {
      await tracer.exited
    }
    const snapshot = readLastGood(configPath)!
    expect(snapshotProblem(snapshot)).toBeNull()
    expect(snapshot.hash).toBe(sha256(next))
    expect(readdirSync(dir).filter((f) => f.includes('.tmp-') || f.endsWith('.next'))).toEqual([])
  })

  test('not before promote_after_s of passing checks', async () => {
    const { w, clock } = await witness({ default: [{ provider: 'sim', model: 'm' }] }, { deadman: { promote_after_s: 300 } })
    await w.infer({})
    await w.deadman.checkNow()
    clock.advance(299_000)
    await w.deadman.checkNow()
    expect(existsSync(snapshotOf(w))).toBe(false)
    clock.advance(1_000)
    await w.deadman.checkNow()
    expect(existsSync(snapshotOf(w))).toBe(true)
  })

  test('a failed check starts the wait again', async () => {
    const { w, clock } = await witness(
      { default: [{ provider: 'sim', model: 'm' }], bad: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] },
      { deadman: { promote_after_s: 300, failing_window_s: 10 } },
    )
    await w.deadman.checkNow()
    // Only the bad chain has been called, failing for 10 s: every chain called is failing.
    for (let i = 0; i < 3; i++) {
      await w.infer({ chain: 'bad' })
      clock.advance(6_000)
    }
    clock.advance(182_000)
    await w.deadman.checkNow()
    expect((await heartbeat(w)).status).toBe(503)
    await w.infer({}) // a success: healthy again from here
    await w.deadman.checkNow()
    clock.advance(200_000)
    await w.deadman.checkNow()
    expect(existsSync(snapshotOf(w))).toBe(false) // 400 s since the first check, only 200 s of them passing
    clock.advance(100_000)
    await w.deadman.checkNow()
    expect(existsSync(snapshotOf(w))).toBe(true)
  })

  test('a reloaded config earns its own promotion: the snapshot keeps the old one until then', async () => {
    const { w, clock } = await witness({ default: [{ provider: 'sim', model: 'm' }] }, { deadman: { promote_after_s: 60 } })
    await w.infer({})
    await w.deadman.checkNow()
    clock.advance(60_000)
    await w.deadman.checkNow()
    const first = readFileSync(w.configPath)
    expect(readFileSync(snapshotOf(w))).toEqual(first)

    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim2', model: 'm' }] }, { deadman: { promote_after_s: 60 } }))
    await w.post('/admin/reload', '')
    await w.deadman.checkNow()
    clock.advance(60_000)
    await w.deadman.checkNow()
    expect(readFileSync(snapshotOf(w))).toEqual(first) // no call served on the new config yet
    await w.infer({})
    await w.deadman.checkNow()
    expect(readFileSync(snapshotOf(w))).toEqual(readFileSync(w.configPath))
  })

  test('a call that started on the config before a reload and succeeds after it does not earn the new config its promotion', async () => {
    const { w, clock } = await witness({ default: [{ provider: 'sim', model: 'm+latency-300' }] }, { deadman: { promote_after_s: 60 } })
    const slow = w.infer({})
    while (suite.sim.count() === 0) await Bun.sleep(5)
    // The new config fails every call made on it.
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman: { promote_after_s: 60 } }))
    expect((await w.post('/admin/reload', '')).status).toBe(200)
    expect((await slow).status).toBe(200)
    await w.deadman.checkNow()
    clock.advance(60_000)
    await w.deadman.checkNow()
    expect(existsSync(snapshotOf(w))).toBe(false)
  })

  test('the snapshot is as private as the config file', async () => {
    const { w, clock } = await witness({ default: [{ provider: 'sim', model: 'm' }] }, { deadman: { promote_after_s: 60 } })
    chmodSync(w.configPath, 0o600)
    await w.infer({})
    await w.deadman.checkNow()
    clock.advance(60_000)
    await w.deadman.checkNow()
    expect(statSync(snapshotOf(w)).mode & 0o777).toBe(0o600)
    expect(statSync(`${snapshotOf(w)}.sha256`).mode & 0o777).toBe(0o600)
  })
})
