/**
 * Whose failure a call's is: an answer witness cannot read is the provider's
 * (`malformed response: …`, the chain falls back), but a failure of
 * witness's own code while reading a good answer is witness's, thrown as it
 * is (an `internal error` row and a logged stack), not blamed on the provider.
 * A real loopback upstream; the adapter is the real one, with one method
 * replaced where witness's own failure is needed.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { callCompletion, openStream } from '../providers/call.ts'
import { openaiAdapter } from '../providers/openai.ts'
import type { Adapter } from '../providers/types.ts'
import { ProviderError } from '../providers/provider-error.ts'

const ANSWER = { id: 'a', object: 'chat.completion', model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }] }
let body = JSON.stringify(ANSWER)
let type = 'application/json'
const upstream = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response(body, { headers: { 'content-type': type } }) })
afterAll(() => upstream.stop(true))

const target = () => ({ provider: 'up', baseUrl: `http://127.0.0.1:${upstream.port}/v1`, model: 'm' })
const options = () => ({ signal: new AbortController().signal, now: () => performance.now() })
const request = (stream = false) => ({ wire: 'openai' as const, body: { messages: [{ role: 'user', content: 'hi' }] }, stream })
const broken: Adapter = {
  ...openaiAdapter,
  completion() {
    throw new TypeError('a bug in witness')
  },
  observe() {
    throw new TypeError('a bug in witness')
  },
}

async function failure(call: Promise<unknown>): Promise<unknown> {
  try {
    await call
  } catch (error) {
    return error
  }
  throw new Error('the call did not fail')
}

describe('a failure reading an answer', () => {
  test('a body that is not JSON, or no completion, is the provider\'s: a malformed ProviderError', async () => {
    body = '{"id":'
    type = 'application/json'
    const notJson = await failure(callCompletion(openaiAdapter, target(), request(), options()))
    expect(notJson).toBeInstanceOf(ProviderError)
    expect((notJson as ProviderError).detail).toBe('malformed response: body is not JSON')
    body = JSON.stringify({ hello: 'world' })
    expect(((await failure(callCompletion(openaiAdapter, target(), request(), options()))) as ProviderError).detail).toBe(
      'malformed response: response is not a chat.completion (no choices array)',
    )
  })

  test("witness's own failure on a good answer is thrown as it is, whole answer or stream, not blamed on the provider", async () => {
    body = JSON.stringify(ANSWER)
    type = 'application/json'
    const whole = await failure(callCompletion(broken, target(), request(), options()))
    expect(whole).toBeInstanceOf(TypeError)
    // A stream answered with JSON (an upstream that ignored `stream: true`) is read by the same adapter.
    const asStream = await failure(openStream(broken, target(), request(true), options()))
    expect(asStream).toBeInstanceOf(TypeError)

    body = `data: ${JSON.stringify({ id: 'a', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: { content: 'hi' } }] })}\n\n`
    type = 'text/event-stream'
    expect(await failure(openStream(broken, target(), request(true), options()))).toBeInstanceOf(TypeError)
    // Not asked to stream, but streamed: folded, each event read by the adapter first.
    expect(await failure(callCompletion(broken, target(), request(), options()))).toBeInstanceOf(TypeError)
  })
})
