/**
 * Bad input gets a clear 4xx naming what is wrong, writes no row, calls no
 * upstream, and leaves the server up.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { MAX_JSON_DEPTH } from '../src/routes/request-body.ts'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { bytesOf, rawRequest, sendRaw } from './support/raw-http.ts'
import { readRows } from './support/rows.ts'
import { simConfig, startWitness, type TestWitness } from './support/witness.ts'

let sim: Simulator
let w: TestWitness

beforeAll(async () => {
  sim = startSimulator()
  w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { max_body_mb: 0.01, body_timeout_ms: 300 }))
})
afterAll(async () => {
  await w.stop(0)
  await sim.stop()
})

async function expectError(res: Response, status: number, type: string) {
  expect(res.status).toBe(status)
  const body = await res.json()
  expect(body.error.type).toBe(type)
  return body.error
}

describe('POST /v1/infer refuses bad input', () => {
  test('malformed JSON is a 400 saying so', async () => {
    const error = await expectError(await w.post('/v1/infer', '{"agent": "a", "messages": ['), 400, 'invalid_request')
    expect(error.message).toStartWith('request body is not valid JSON')
  })

  test('a JSON array or string body is a 400', async () => {
    await expectError(await w.post('/v1/infer', '[1,2]'), 400, 'invalid_request')
    await expectError(await w.post('/v1/infer', '"hi"'), 400, 'invalid_request')
  })

  test('wrong types are a 400 listing each path', async () => {
    const error = await expectError(await w.post('/v1/infer', { agent: 5, chain: ['x'], messages: [{ role: 3 }] }), 400, 'invalid_request')
    expect(error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['agent', 'chain', 'messages[0].role'])
  })

  test('missing messages is a 400', async () => {
    const error = await expectError(await w.post('/v1/infer', { agent: 'a' }), 400, 'invalid_request')
    expect(error.issues[0].path).toBe('messages')
  })

  test('no agent is a 400 that says how to name one', async () => {
    const error = await expectError(await w.post('/v1/infer', { messages: [{ role: 'user', content: 'x' }] }), 400, 'invalid_request')
    expect(error.message).toContain('X-Agent-Name')
  })

  test('an agent in the body and a different one in the header is a 400', async () => {
    const error = await expectError(await w.post('/v1/infer', { agent: 'a', messages: [{ role: 'user', content: 'x' }] }, { 'x-agent-name': 'b' }), 400, 'invalid_request')
    expect(error.message).toContain('different agent')
  })

  test('an agent name with spaces or control characters is a 400', async () => {
    await expectError(await w.post('/v1/infer', { agent: 'a b', messages: [{ role: 'user', content: 'x' }] }), 400, 'invalid_request')
    await expectError(await w.post('/v1/infer', { agent: 'a\nb', messages: [{ role: 'user', content: 'x' }] }), 400, 'invalid_request')
  })

  test('an unknown chain is a 404 naming the configured chains', async () => {
    const error = await expectError(await w.post('/v1/infer', { agent: 'a', chain: 'nope', messages: [{ role: 'user', content: 'x' }] }), 404, 'unknown_chain')
    expect(error.message).toBe('unknown chain "nope"; configured chains: default')
  })

  test('a body over max_body_mb is a 413 before anything is parsed', async () => {
    const huge = JSON.stringify({ agent: 'a', messages: [{ role: 'user', content: 'x'.repeat(20_000) }] })
    await expectError(await w.post('/v1/infer', huge), 413, 'payload_too_large')
    // Without a content-length (chunked), the limit holds too.
    const chunked = await fetch(`${w.url}/v1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(huge))
          c.close()
        },
      }),
    })
    await expectError(chunked, 413, 'payload_too_large')
  })

  test('a body far above max_body_mb, declared or chunked, gets the JSON 413 from witness, not an empty one from Bun', async () => {
    // Above the cap Bun used to be given (max_body_mb + 1 MB), where Bun answered an empty 413 itself.
    const huge = JSON.stringify({ agent: 'a', messages: [{ role: 'user', content: 'x'.repeat(3_000_000) }] })
    const rows = readRows(w.dbPath).length
    const calls = sim.count()
    const declared = await w.post('/v1/infer', huge)
    expect(declared.headers.get('content-type')).toStartWith('application/json')
    expect((await expectError(declared, 413, 'payload_too_large')).message).toBe('request body is larger than max_body_mb (10485 bytes)')
    const piece = new TextEncoder().encode('x'.repeat(100_000))
    const chunked = await fetch(`${w.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-agent-name': 'a' },
      body: new ReadableStream({
        start(c) {
          for (let i = 0; i < 30; i++) c.enqueue(piece)
          c.close()
        },
      }),
    })
    await expectError(chunked, 413, 'payload_too_large')
    // A declared length no server could take is still answered by witness, before a byte of it is read.
    const port = Number(new URL(w.url).port)
    const petabyte = await sendRaw(port, rawRequest('POST', '/v1/infer', [['Content-Type', 'application/json'], ['Content-Length', String(2 ** 50)]], null), 5_000)
    expect(petabyte.status).toBe(413)
    expect(JSON.parse(petabyte.body).error.type).toBe('payload_too_large')
    expect(readRows(w.dbPath)).toHaveLength(rows)
    expect(sim.count()).toBe(calls)
  })

  test('a body that is not valid UTF-8 is a 400, not forwarded with the bytes replaced', async () => {
    const body = bytesOf('{"agent":"a","messages":[{"role":"user","content":"caf', [0xe9], '"}]}')
    const error = await expectError(await fetch(`${w.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }), 400, 'invalid_request')
    expect(error.message).toBe('request body is not valid UTF-8')
  })

  test(`a body nested deeper than ${MAX_JSON_DEPTH} levels is a 400 naming where, however deep`, async () => {
    const deep = (n: number) => `${'['.repeat(n)}${']'.repeat(n)}`
    const error = await expectError(await w.post('/v1/infer', `{"agent":"a","messages":[{"role":"user","content":${deep(200)}}]}`), 400, 'invalid_request')
    expect(error.issues[0].path).toStartWith('messages[0].content[0][0]')
    // Deep enough to overflow the stack when it is serialized for the upstream: still a 400, not a 500.
    await expectError(await w.post('/v1/infer', `{"agent":"a","messages":[{"role":"user","content":${deep(4_000)}}]}`), 400, 'invalid_request')
    // Nesting within the limit is fine (a heartbeat: it writes no request_log row).
    expect((await w.post('/heartbeat', `{"agent":"a","extra":${deep(100)}}`)).status).toBe(200)
  })

  test('a number too large for a double (1e999, which would go upstream as null) is a 400 naming where; nothing goes upstream', async () => {
    const calls = sim.count()
    const huge = await expectError(await w.post('/v1/infer', '{"agent":"a","max_tokens":1e999,"messages":[{"role":"user","content":"hi"}]}'), 400, 'invalid_request')
    expect(huge.issues).toEqual([{ path: 'max_tokens', message: 'a number too large to pass on (it would be sent as null)' }])
    const bias = await expectError(await w.post('/v1/chat/completions', '{"user":"a","model":"default","logit_bias":{"50256":-1e400},"messages":[{"role":"user","content":"hi"}]}'), 400, 'invalid_request')
    expect(bias.issues).toEqual([{ path: 'logit_bias.50256', message: 'a number too large to pass on (it would be sent as null)' }])
    expect(sim.count()).toBe(calls)
    // int64's maximum (in a generated tool schema), an exponent and a float with every digit are fine (a heartbeat: it writes no request_log row).
    expect((await w.post('/heartbeat', '{"agent":"a","n":9223372036854775807,"e":2e-1,"f":1e300,"g":0.9999999999999999}')).status).toBe(200)
  })

  test("OpenRouter's \"models\" (a list for it to fall back through) is a 400: the chain chooses the model; nothing goes upstream", async () => {
    const calls = sim.count()
    const rows = readRows(w.dbPath).length
    const chat = await expectError(await w.post('/v1/chat/completions', { user: 'a', model: 'default', models: ['openai/gpt-4o', 'anthropic/claude-sonnet-4'], messages: [{ role: 'user', content: 'hi' }] }), 400, 'invalid_request')
    expect(chat.issues.map((i: { path: string }) => i.path)).toEqual(['models'])
    expect(chat.issues[0].message).toContain('the chain chooses the model')
    await expectError(await w.post('/v1/infer', { agent: 'a', models: [], messages: [{ role: 'user', content: 'hi' }] }), 400, 'invalid_request')
    expect(sim.count()).toBe(calls)
    expect(readRows(w.dbPath)).toHaveLength(rows)
  })

  test('a body that stalls is a 408 after body_timeout_ms; one cut off by the client is no internal error', async () => {
    const port = Number(new URL(w.url).port)
    const stalled = rawRequest('POST', '/v1/infer', [['Content-Type', 'application/json'], ['Content-Length', '500']], bytesOf('{"agent":"a",'))
    const res = await sendRaw(port, stalled, 5_000)
    expect(res.status).toBe(408)
    expect(JSON.parse(res.body).error).toMatchObject({ type: 'request_timeout', message: 'request body did not arrive within body_timeout_ms (300 ms)' })
    const chunked = rawRequest('POST', '/v1/infer', [['Content-Type', 'application/json'], ['Transfer-Encoding', 'chunked']], bytesOf('5\r\n{"a":\r\n'))
    expect((await sendRaw(port, chunked, 5_000)).status).toBe(408)
    // A client that closes mid-body: answered 400 (to nobody), not logged as an unhandled error.
    const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } })
    socket.write('POST /v1/infer HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"agent"')
    await Bun.sleep(50)
    socket.end()
    await Bun.sleep(100)
    expect(w.logs.filter((l) => l.includes('unhandled error'))).toEqual([])
  })

  test('an unknown chain with a huge name is a 404 that does not echo it', async () => {
    const res = await w.post('/v1/chat/completions', { model: 'x'.repeat(9_000), messages: [{ role: 'user', content: 'x' }] }, { 'x-agent-name': 'a' })
    const text = await res.text()
    expect(res.status).toBe(404)
    expect(text.length).toBeLessThan(1_000)
    expect(JSON.parse(text).error.message).toStartWith(`unknown chain "${'x'.repeat(64)}…"`)
  })

  test('an HTTP/1.0 request without a Host header is served, not misrouted', async () => {
    const port = Number(new URL(w.url).port)
    const res = await sendRaw(port, { head: bytesOf('GET /v1/models HTTP/1.0\r\n\r\n'), pieces: [], pieceDelayMs: 0 }, 5_000)
    expect(res.status).toBe(200)
    expect(JSON.parse(res.body).data[0].id).toBe('default')
    const unknown = await sendRaw(port, { head: bytesOf('GET /nowhere HTTP/1.0\r\n\r\n'), pieces: [], pieceDelayMs: 0 }, 5_000)
    expect(unknown.status).toBe(404)
    expect(JSON.parse(unknown.body).error.message).toBe('no route for GET /nowhere')
  })

  test('unknown routes are a JSON 404', async () => {
    await expectError(await fetch(`${w.url}/v2/whatever`), 404, 'not_found')
  })

  test('after all of it, nothing was written or sent upstream and the server still answers', async () => {
    expect(readRows(w.dbPath)).toEqual([])
    expect(sim.requests).toHaveLength(0)
    expect((await fetch(`${w.url}/heartbeat`)).status).toBe(200)
    expect((await w.infer({})).status).toBe(200)
  })
})

describe('GET /heartbeat', () => {
  test('answers ok while the database is writable', async () => {
    const res = await fetch(`${w.url}/heartbeat`)
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ status: 'ok' })
  })
})
