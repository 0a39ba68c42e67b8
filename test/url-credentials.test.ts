/**
 * A base_url carrying a credential (a signed URL's `?sig=…`, `user:pass@`)
 * never shows it in a row or a client's error. Bun's fetch errors quote the
 * URL called (`ZlibError fetching "http://…?sig=…"`): they are said plainly
 * instead, and an upstream echoing the URL in its error body has the
 * credential cut out. The upstream is raw TCP, to send bytes fetch chokes on.
 */
import { describe, expect, test } from 'bun:test'
import { redactorOf } from '../providers/call.ts'
import { describeFetchFailure, withoutUrls } from '../providers/fetch-failure.ts'
import { readRows } from './support/rows.ts'
import { witnessOnce } from './support/witness.ts'

const SIG = 'S3cretSig0123456789'
const PASSWORD = 'S3cretPass0123456'
const encoder = new TextEncoder()

/** What the upstream answers, by the requested model. */
function answer(model: string, requestLine: string): (string | Uint8Array)[] {
  if (model === 'gzip-corrupt') {
    const gz = Bun.gzipSync(encoder.encode('data: {"id":"c1","choices":[]}\n\n'))
    return ['HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-encoding: gzip\r\nconnection: close\r\n\r\n', gz.subarray(0, 12), 'garbage-garbage-garbage']
  }
  if (model === 'gzip-corrupt-json') {
    const gz = Bun.gzipSync(encoder.encode('{"id":"c1","choices":[]}'))
    return ['HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-encoding: gzip\r\nconnection: close\r\n\r\n', gz.subarray(0, 12), 'garbage-garbage-garbage']
  }
  if (model === 'not-http') return ['SSH-2.0-OpenSSH_9.6\r\njunk']
  // An error body quoting the request line, query string and all (as some proxies do).
  const body = JSON.stringify({ error: { message: `no route for ${requestLine}` } })
  return [`HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`]
}

const upstream = Bun.listen<{ got: string }>({
  hostname: '127.0.0.1',
  port: 0,
  socket: {
    open(socket) {
      socket.data = { got: '' }
    },
    data(socket, bytes) {
      socket.data.got += new TextDecoder().decode(bytes)
      const split = socket.data.got.indexOf('\r\n\r\n')
      if (split < 0) return
      const length = Number(/content-length:\s*(\d+)/i.exec(socket.data.got)?.[1] ?? 0)
      if (socket.data.got.length - split - 4 < length) return
      const model = (JSON.parse(socket.data.got.slice(split + 4)) as { model: string }).model
      for (const part of answer(model, socket.data.got.split('\r\n')[0]!)) socket.write(part)
      socket.end()
    },
  },
})

const witness = witnessOnce(
  () => ({
    providers: { signed: { type: 'openai', base_url: `http://svc:${PASSWORD}@127.0.0.1:${upstream.port}/v1?sig=${SIG}` } },
    chains: Object.fromEntries(['gzip-corrupt', 'gzip-corrupt-json', 'not-http', 'echo'].map((m) => [m, [{ provider: 'signed', model: m, retries: 0 }]])),
  }),
  upstream,
)

function expectNoCredential(text: string) {
  expect(text).not.toContain('S3cret')
  expect(text).not.toContain('sig=')
  expect(text).not.toContain('svc:')
}

describe("a credential in base_url's query string or userinfo", () => {
  test.each([
    ['a corrupt compressed stream', 'gzip-corrupt', true, 'network error: corrupt compressed body (ZlibError)'],
    ['a corrupt compressed answer', 'gzip-corrupt-json', false, 'network error: corrupt compressed body (ZlibError)'],
    ['bytes that are no HTTP response', 'not-http', true, 'network error: not an HTTP response (Malformed_HTTP_Response)'],
  ])('is not in the row or the client error when fetch fails on %s: the reason is said plainly', async (_, model, stream, expected) => {
    const w = await witness()
    const res = await w.post('/v1/chat/completions', { model, stream, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
    const text = await res.text()
    expect(res.status).toBe(502)
    expectNoCredential(text)
    const row = readRows(w.dbPath).at(-1)!
    expect(row.error_message).toBe(expected)
    expect(row.endpoint).toBe(`http://127.0.0.1:${upstream.port}/v1/chat/completions`)
  })

  test('is cut out of an upstream error body that quotes the URL it was called at', async () => {
    const w = await witness()
    const res = await w.post('/v1/chat/completions', { model: 'echo', messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
    const text = await res.text()
    expectNoCredential(text.replaceAll('sig=[redacted]', ''))
    const message = readRows(w.dbPath).at(-1)!.error_message!
    expect(message).toStartWith('HTTP 404 not found: no route for POST /v1/chat/completions?sig=[redacted]')
    expect(message).not.toContain('S3cret')
  })
})

describe('what of a URL is taken for a credential, in an upstream error quoting it', () => {
  test('its userinfo and every query value but known-safe ones (a version, a deployment, a region), in every form (a literal + too)', () => {
    const sig = 'AbCdEfGh+IjKlMnOpQrStUvWx'
    const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3aXRuZXNzIn0.c2lnbmF0dXJl'
    const target = { provider: 'up', model: 'm', baseUrl: `https://svc:pw-12345678@h.test/v1?api-version=2024-10-21&deployment=gpt-4o-mini-2024&region=us-east-1&sig=${sig}&pwd=hunter2-hunter2&jwt=${jwt}&sv=2024-11-04` }
    const redact = redactorOf(target, { now: () => 0 } as never)
    expect(redact(`called ${target.baseUrl}`)).toBe('called https://svc:[redacted]@h.test/v1?api-version=2024-10-21&deployment=gpt-4o-mini-2024&region=us-east-1&sig=[redacted]&pwd=[redacted]&jwt=[redacted]&sv=[redacted]')
    expect(redact('The model `gpt-4o-mini-2024` does not exist in region us-east-1')).toBe('The model `gpt-4o-mini-2024` does not exist in region us-east-1')
    expect(redact(`signature ${sig.replace('+', ' ')} refused`)).not.toContain('IjKlMnOp')
  })

  test('a value after a `;` is a parameter of its own, even behind a known-safe name', () => {
    const sig = 'QwErTyUiOpAsDfGhJkL0123'
    const redact = redactorOf({ provider: 'up', model: 'm', baseUrl: `https://h.test/v1?api-version=1;sig=${sig}` }, { now: () => 0 } as never)
    expect(redact(`denied: sig ${sig} expired`)).toBe('denied: sig [redacted] expired')
  })
})

describe('a fetch failure Bun names by no known code', () => {
  test('keeps its words, with each URL cut to its public form and no `verbose: true` advice', () => {
    const said = 'SomethingOdd fetching "https://user:pw123456789@api.test/v1/chat/completions?sig=abc#frag". For more information, pass `verbose: true` in the second argument to fetch()'
    expect(describeFetchFailure('SomethingOdd', said)).toBe('SomethingOdd fetching "https://api.test/v1/chat/completions"')
    expect(withoutUrls('Unable to connect to http://u:p@h.test:8080/x?k=v.')).toBe('Unable to connect to http://h.test:8080/x.')
  })
})
