/**
 * The simulator's vocabulary for drills: chaos mode picks faults from a
 * seeded generator (so a run can be replayed) and records each pick, and a
 * request is counted on arrival, even one whose body never came.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { bytesOf, sendRaw } from './support/raw-http.ts'
import { eventually } from './support/process.ts'

const started: Simulator[] = []
afterEach(async () => {
  for (const sim of started.splice(0)) await sim.stop()
})

function sim(seed: number): Simulator {
  const s = startSimulator({ seed })
  started.push(s)
  return s
}

/** Sends `n` requests one after another (so the generator is drawn in order), each given up after 100 ms (a hang). */
async function send(s: Simulator, model: string, n: number, stream = false): Promise<void> {
  for (let i = 0; i < n; i++) {
    await fetch(`${s.url}/v1/chat/completions`, {
      method: 'POST',
      body: JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'hi' }] }),
      signal: AbortSignal.timeout(100),
    })
      .then((res) => res.text())
      .catch(() => null)
  }
}

describe('chaos mode', () => {
  test('the same seed plays the same faults in the same order; another seed does not', async () => {
    const [a, b, c] = [sim(42), sim(42), sim(43)]
    for (const s of [a, b, c]) await send(s, 'm+chaos-60', 30)
    const faults = (s: Simulator) => s.requests.map((r) => r.fault)
    expect(faults(a)).toEqual(faults(b))
    expect(faults(a)).not.toEqual(faults(c))
    expect(a.seed).toBe(42)
  })

  test('chaos-0 never misbehaves; chaos-100 always does, with stream faults only on streams', async () => {
    const s = sim(7)
    await send(s, 'm+chaos-0', 10)
    expect(s.requests.map((r) => r.fault)).toEqual(Array(10).fill('none'))
    s.reset()
    await send(s, 'm+chaos-100', 25)
    await send(s, 'm+chaos-100+chunks-4', 25, true)
    const plain = new Set(s.requests.slice(0, 25).map((r) => r.fault))
    const streams = new Set(s.requests.slice(25).map((r) => r.fault))
    expect(plain.has('none')).toBe(false)
    expect([...plain].some((f) => ['cut', 'stall', 'no-done'].includes(f!))).toBe(false)
    expect(streams.has('none')).toBe(false)
    expect([...streams].some((f) => ['cut', 'stall', 'no-done'].includes(f!))).toBe(true)
  })

  test('without a chaos directive nothing is recorded as a fault', async () => {
    const s = sim(1)
    await send(s, 'm+latency-0-5', 3)
    expect(s.requests.map((r) => r.fault)).toEqual([null, null, null])
  })
})

describe('what the simulator received', () => {
  test('a request whose body never arrived is counted, and marked aborted', async () => {
    const s = sim(1)
    const head = bytesOf('POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nX-Witness-Log-Id: 7\r\n\r\n{"model":')
    await sendRaw(s.port, { head, pieces: [], pieceDelayMs: 0 }, 100)
    await eventually(() => s.count() === 1 && s.requests[0]?.aborted === true)
    expect(s.count()).toBe(1)
    expect(s.requests[0]).toMatchObject({ aborted: true, headers: expect.objectContaining({ 'x-witness-log-id': '7' }) })
  })
})
