/**
 * The simulator's directives given in the `x-sim` header instead of the
 * model name: each works on its own, they combine with the model's (the
 * header's win where both say), and a provider's `headers:` in the witness
 * config is how a drill sets them for every call to that provider.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { readRows } from './support/rows.ts'
import { simConfig, startWitness } from './support/witness.ts'

let sim: Simulator
beforeAll(() => {
  sim = startSimulator({ seed: 1 })
})
afterAll(() => sim.stop())
beforeEach(() => sim.reset())

const messages = [{ role: 'user', content: 'hi' }]

/** A call to the simulator with the given x-sim header (and any other headers). */
function call(xsim: string, body: Record<string, unknown> = {}, options: { path?: string; headers?: Record<string, string>; signal?: AbortSignal } = {}) {
  return fetch(`${sim.url}${options.path ?? '/v1/chat/completions'}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-sim': xsim, ...options.headers },
    body: JSON.stringify({ model: 'm', messages, max_tokens: 10, ...body }),
    signal: options.signal,
  })
}

describe('x-sim header directives', () => {
  test('status-N and retry-after-S: an error in each wire format with Retry-After', async () => {
    const openai = await call('status-503,retry-after-2')
    expect(openai.status).toBe(503)
    expect(openai.headers.get('retry-after')).toBe('2')
    expect(await openai.json()).toEqual({ error: { message: 'simulated HTTP 503', type: 'api_error', code: null } })
    const anthropic = await call('status-529', {}, { path: '/v1/messages' })
    expect(anthropic.status).toBe(529)
    expect(await anthropic.json()).toEqual({ type: 'error', error: { type: 'overloaded_error', message: 'simulated HTTP 529' } })
  })

  test('a word that is no directive (a typo), or one without its number, is a 400 naming it, not ignored', async () => {
    const typo = await call('latancy-200,status-x')
    expect(typo.status).toBe(400)
    expect(((await typo.json()) as { error: { message: string } }).error.message).toBe(
      'unknown sim directive(s): latancy-200, status-x (the README\'s "The simulator" lists them)',
    )
    expect((await call('', { model: 'm+bogus-1' })).status).toBe(400)
    expect((await call('retry-after-0.2,cost-0.0012,latency-1-3')).status).toBe(200)
  })

  test('tokens, served model and reply text, separated by commas, pluses or spaces', async () => {
    for (const header of ['tokens-7-3,served-other,reply-hi_there', 'tokens-7-3+served-other+reply-hi_there', 'tokens-7-3 served-other  reply-hi_there']) {
      const body = await (await call(header)).json()
      expect(body, header).toMatchObject({ model: 'other', choices: [{ message: { content: 'hi there' } }], usage: { prompt_tokens: 7, completion_tokens: 3 } })
    }
  })

  test("they combine with the model name's directives, and win where both set the same thing", async () => {
    const body = await (await call('tokens-9-9', { model: 'base+tokens-1-1+served-fromname' })).json()
    expect(body).toMatchObject({ model: 'fromname', usage: { prompt_tokens: 9, completion_tokens: 9 } })
    // The model says fail; the header says 200: the header is applied last.
    expect((await call('status-200', { model: 'base+status-500' })).status).toBe(200)
  })

  test('malformed, empty, no-usage and tool-NAME shape the JSON answer', async () => {
    expect(await (await call('malformed')).text()).toBe('{"id": "chatcmpl-broken", "choices": [')
    expect(await (await call('empty')).json()).toEqual({})
    expect(await (await call('no-usage')).json()).not.toHaveProperty('usage')
    const tool = await (await call('tool-get_weather')).json()
    expect(tool.choices[0]).toMatchObject({ finish_reason: 'tool_calls', message: { tool_calls: [{ function: { name: 'get_weather' } }] } })
  })

  test('streams: chunks-N and no-done; cut-N breaks the connection after N content chunks', async () => {
    const text = await (await call('chunks-3,no-done', { stream: true })).text()
    const data = text.split('\n').filter((l) => l.startsWith('data: '))
    expect(data.filter((l) => l.includes('"content"')).length).toBe(4) // the role chunk and three pieces
    expect(text).not.toContain('[DONE]')
    const cut = await call('chunks-6,cut-2', { stream: true })
    const reader = cut.body!.getReader()
    let received = ''
    const read = async () => {
      for (let part = await reader.read(); !part.done; part = await reader.read()) received += new TextDecoder().decode(part.value)
    }
    await expect(read()).rejects.toThrow()
    expect(received.split('\n').filter((l) => l.startsWith('data: ') && l.includes('"content"')).length).toBe(3)
  })

  test('script-A-B answers in turn per header and x-sim-key; latency-N waits; hang holds until the caller leaves', async () => {
    expect((await call('script-503-200')).status).toBe(503)
    expect((await call('script-503-200')).status).toBe(200)
    expect((await call('script-503-200')).status).toBe(200)
    expect((await call('script-503-200', {}, { headers: { 'x-sim-key': 'other' } })).status).toBe(503)

    const started = performance.now()
    expect((await call('latency-120')).status).toBe(200)
    expect(performance.now() - started).toBeGreaterThanOrEqual(115)

    sim.reset()
    await expect(call('hang', {}, { signal: AbortSignal.timeout(100) })).rejects.toThrow()
    for (let i = 0; i < 100 && !sim.requests[0]!.aborted; i++) await Bun.sleep(10)
    expect(sim.requests[0]).toMatchObject({ aborted: true, headers: { 'x-sim': 'hang' } })
  })

  test('echo-key puts the credentials received into the error body', async () => {
    const res = await call('echo-key,status-401', {}, { headers: { authorization: 'Bearer sk-test-abcdefghijklmnop' } })
    expect((await res.json()).error.message).toBe('simulated HTTP 401 (received credentials: Bearer sk-test-abcdefghijklmnop)')
  })

  test("through witness: a provider's headers: carry x-sim to every call to it, and the rows show what it did", async () => {
    const w = await startWitness(
      simConfig(
        sim.url,
        { default: [{ provider: 'flaky', model: 'm', retries: 0 }, { provider: 'sim', model: 'm' }] },
        { providers: { flaky: { type: 'openai', base_url: `${sim.url}/v1`, headers: { 'x-sim': 'status-503,retry-after-0' } } } },
      ),
    )
    try {
      const res = await w.infer({})
      expect(res.status).toBe(200)
      expect((await res.json()).provider).toBe('sim')
      expect(sim.requests.map((r) => r.headers['x-sim'] ?? null)).toEqual(['status-503,retry-after-0', null])
      expect(readRows(w.dbPath).map((r) => [r.provider, r.status])).toEqual([
        ['flaky', 'error'],
        ['sim', 'fallback'],
        ['sim', 'success'],
      ])
      expect(readRows(w.dbPath)[0]!.error_message).toContain('HTTP 503')
    } finally {
      await w.stop(0)
    }
  })
})
