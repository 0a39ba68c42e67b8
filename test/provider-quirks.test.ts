/**
 * Providers' own ways of saying something went wrong, or what a call cost,
 * beyond the plain OpenAI shapes, against a loopback upstream sending their
 * exact bytes: an error carried in a 200 (OpenRouter once generation began,
 * vLLM behind RunPod, a choice that ended in `error`), Groq's 498, the real
 * reason behind OpenRouter's "Provider returned error", Gemini's error
 * array, and OpenRouter's cost when the operator brings the provider key.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { readMeta, readRows } from './support/rows.ts'
import { type TestWitness, startWitness } from './support/witness.ts'

const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } })
const answer = (extra: Record<string, unknown> = {}) => ({
  id: 'gen-1',
  object: 'chat.completion',
  model: 'm',
  choices: [{ index: 0, message: { role: 'assistant', content: 'Hello.' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 },
  ...extra,
})
const sse = (events: unknown[]) =>
  new Response(events.map((e) => `data: ${typeof e === 'string' ? e : JSON.stringify(e)}\n\n`).join(''), { headers: { 'content-type': 'text/event-stream' } })
const chunk = (delta: Record<string, unknown>, finish: string | null = null, extra: Record<string, unknown> = {}) => ({
  id: 'gen-1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta, finish_reason: finish, ...extra }],
})

const KEY = 'sk-keyed-0123456789abcdefghijklmnopqrstuv'

// Each test queues the upstream's answers, one per call.
let answers: Response[] = []
let calls = 0
const upstream = Bun.serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    await req.arrayBuffer()
    calls++
    return answers.shift() ?? new Response('no answer queued', { status: 500 })
  },
})
let w: TestWitness
beforeAll(async () => {
  w = await startWitness(
    {
    providers: {
      up: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1` },
      ant: { type: 'anthropic', base_url: `http://127.0.0.1:${upstream.port}/v1` },
      keyed: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1`, api_key_env: 'KEYED_API_KEY' },
      headered: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1`, headers: { 'x-tenant': 'TenantSecret_abcdef123' } },
    },
    chains: {
      keyed: [{ provider: 'keyed', model: 'm', retries: 0 }],
      headered: [{ provider: 'headered', model: 'm', retries: 0 }],
      once: [{ provider: 'up', model: 'm', retries: 0 }],
      brief: [{ provider: 'up', model: 'm', retries: 0, timeout_ms: 300 }],
      twice: [{ provider: 'up', model: 'm', retries: 1 }],
      // A fallback that would be paid for a second time, were the first answer thrown away.
      ant: [{ provider: 'ant', model: 'claude-x', retries: 0 }, { provider: 'up', model: 'm', retries: 0 }],
      paid: [{ provider: 'up', model: 'm', retries: 0 }, { provider: 'ant', model: 'claude-x', retries: 0 }],
      // The same, on a model of its own: not cooling down after the failures other tests made.
      held: [{ provider: 'up', model: 'm-held', retries: 0 }, { provider: 'ant', model: 'claude-x', retries: 0 }],
    },
    },
    { env: { KEYED_API_KEY: KEY } },
  )
})
afterAll(async () => {
  await w.stop(0)
  upstream.stop(true)
})
beforeEach(() => {
  answers = []
  calls = 0
})

async function ask(chain: string, stream = false) {
  const res = await w.post('/v1/chat/completions', { model: chain, stream, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
  return { status: res.status, headers: res.headers, text: await res.text() }
}
const lastRows = (n: number) => readRows(w.dbPath).slice(-n)
const lastMeta = () => readMeta(w.dbPath).at(-1)!

test("OpenRouter's error in a 200 (a provider failing once generation began) is that provider's failure, retried, with its real reason", async () => {
  answers = [
    json({
      error: { code: 502, message: 'Provider returned error', metadata: { provider_name: 'Anthropic', raw: '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}' } },
    }),
    json(answer()),
  ]
  const res = await ask('twice')
  expect(res.status).toBe(200)
  expect(calls).toBe(2)
  expect(lastRows(2).map((r) => [r.status, r.error_message])).toEqual([
    ['error', 'error in a 200 answer (code 502): Provider returned error (Anthropic: Overloaded)'],
    ['success', null],
  ])
  expect(readMeta(w.dbPath).at(-2)!.http_status).toBe(200)
})

test("vLLM's error object in a 200 (a bad request, code 400) is not retried, and its message is kept", async () => {
  answers = [json({ object: 'error', message: "This model's maximum context length is 4096 tokens", type: 'BadRequestError', param: null, code: 400 }), json(answer())]
  const res = await ask('twice')
  expect(res.status).toBe(502)
  expect(res.headers.get('x-should-retry')).toBe('false')
  expect(calls).toBe(1)
  expect(lastRows(1)[0]).toMatchObject({ status: 'error', error_message: "error in a 200 answer (code 400): This model's maximum context length is 4096 tokens" })
})

test('a choice that ended in error (OpenRouter finish_reason "error") is no success, whole or streamed', async () => {
  answers = [json(answer({ choices: [{ index: 0, message: { role: 'assistant', content: 'The answer is' }, finish_reason: 'error', error: { code: 502, message: 'upstream cut' } }] }))]
  expect((await ask('once')).status).toBe(502)
  expect(lastRows(1)[0]).toMatchObject({ status: 'error', error_message: 'error in a 200 answer (code 502): upstream cut' })

  answers = [sse([chunk({ role: 'assistant', content: 'The answer is' }), chunk({}, 'error', { error: { code: 502, message: 'upstream cut' } }), '[DONE]'])]
  const streamed = await ask('once', true)
  expect(streamed.text).not.toContain('[DONE]')
  expect(lastRows(1)[0]).toMatchObject({ status: 'error', error_message: 'stream interrupted after 1 chunks (upstream error event: upstream cut)' })
})

test('an `event: error` in an OpenAI-compatible stream (a gateway\'s, with `{"message":…}`) is the upstream\'s error, though [DONE] follows: no success row, no clean end for any client', async () => {
  const stream = () =>
    new Response(
      `data: ${JSON.stringify(chunk({ role: 'assistant', content: 'partial' }))}\n\nevent: error\ndata: {"message":"upstream exploded","code":"server_error"}\n\ndata: [DONE]\n\n`,
      { headers: { 'content-type': 'text/event-stream' } },
    )
  answers = [stream()]
  const openai = await ask('once', true)
  expect(openai.text).toContain('"content":"partial"')
  expect(openai.text).toContain('upstream exploded')
  expect(openai.text).not.toContain('[DONE]')
  expect(lastRows(1)[0]).toMatchObject({ status: 'error', error_message: 'stream interrupted after 1 chunks (upstream error event: upstream exploded)' })

  answers = [stream()]
  const res = await w.post('/v1/messages', { model: 'once', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
  const text = await res.text()
  expect(text).toContain('event: error')
  expect(text).not.toContain('message_stop')
  expect(lastRows(1)[0]).toMatchObject({ status: 'error', error_message: 'stream interrupted after 1 chunks (upstream error event: upstream exploded)' })

  // As the first event: the call fails, and is an error row, not a stream.
  answers = [new Response('event: error\ndata: {"message":"no capacity"}\n\ndata: [DONE]\n\n', { headers: { 'content-type': 'text/event-stream' } })]
  expect((await ask('once', true)).status).toBe(502)
  expect(lastRows(1)[0]).toMatchObject({ status: 'error', error_message: 'upstream error event: no capacity' })
})

test('a 200 whose body is no answer (not JSON) keeps the status it came with: the row says the upstream answered 200', async () => {
  answers = [new Response('<html>gateway says hi</html>', { headers: { 'content-type': 'application/json' } })]
  expect((await ask('once')).status).toBe(502)
  expect(lastRows(1)[0]).toMatchObject({ status: 'error', error_message: 'malformed response: body is not JSON' })
  expect(lastMeta().http_status).toBe(200)
})

test('a JSON error in place of an asked-for stream keeps its message', async () => {
  answers = [json({ object: 'error', message: 'worker failed to load the model', code: 500 })]
  expect((await ask('once', true)).status).toBe(502)
  expect(lastRows(1)[0]!.error_message).toBe('error in a 200 answer (code 500): worker failed to load the model')
})

test("Groq's 498 (flex tier capacity exceeded) is retried, and a client is not told to give up", async () => {
  answers = [json({ error: { message: 'Flex tier capacity exceeded. Please try again later.', type: 'capacity_exceeded' } }, 498), json(answer())]
  expect((await ask('twice')).status).toBe(200)
  expect(calls).toBe(2)
  answers = [json({ error: { message: 'Flex tier capacity exceeded.', type: 'capacity_exceeded' } }, 498)]
  const res = await ask('once')
  expect(res.status).toBe(502)
  expect(res.headers.get('x-should-retry')).not.toBe('false')
  expect(lastRows(1)[0]!.error_message).toBe('HTTP 498 capacity exceeded: Flex tier capacity exceeded.')
})

test("Gemini's error body, an array of one error, gives its message", async () => {
  answers = [json([{ error: { code: 400, message: 'API key not valid. Please pass a valid API key.', status: 'INVALID_ARGUMENT' } }], 400)]
  await ask('once')
  expect(lastRows(1)[0]!.error_message).toBe('HTTP 400 bad request: API key not valid. Please pass a valid API key.')
})

test("OpenRouter's cost with the operator's own provider key (BYOK) is the provider's bill plus OpenRouter's fee", async () => {
  const usage = { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12, cost: 0.0165, is_byok: true, cost_details: { upstream_inference_cost: 0.33 } }
  answers = [json(answer({ usage }))]
  await ask('once')
  expect(lastMeta().cost_usd).toBeCloseTo(0.3465, 10)
  answers = [json(answer({ usage: { ...usage, is_byok: false, cost: 0.02, cost_details: { upstream_inference_cost: null } } }))]
  await ask('once')
  expect(lastMeta().cost_usd).toBeCloseTo(0.02, 10)
})

test("the prompt never reaches a row through an error body: not from OpenRouter's metadata.raw, not JSON-escaped in a provider's own body", async () => {
  const prompt = 'Patient record:\nname "Jane Roe", born 1970'
  const echo = { detail: [{ type: 'string_too_long', loc: ['body', 'messages', 0, 'content'], msg: 'too long', input: prompt }] }
  answers = [
    json({ error: { code: 400, message: 'Provider returned error', metadata: { provider_name: 'SomeHost', raw: JSON.stringify(echo) } } }, 400),
    json(echo, 422),
  ]
  for (let i = 0; i < 2; i++) {
    const res = await w.post('/v1/chat/completions', { model: 'once', messages: [{ role: 'user', content: prompt }] }, { 'x-agent-name': 'ezra' })
    expect(await res.text()).not.toContain('Jane Roe')
  }
  const [viaRouter, direct] = lastRows(2)
  expect(viaRouter!.error_message).toBe('HTTP 400 bad request: Provider returned error (SomeHost)')
  expect(direct!.error_message).toStartWith('HTTP 422 unprocessable entity: ')
  expect(direct!.error_message).not.toContain('Jane Roe')

  // Python's json escapes every non-ASCII character (Zo\u00eb): the echo is found all the same.
  const accented = 'Patient record:\nname "Zoë Roe", born 1970'
  const pythonEcho = JSON.stringify({ detail: [{ msg: 'too long', input: accented }] }).replace('ë', '\\u00eb')
  answers = [new Response(pythonEcho, { status: 422, headers: { 'content-type': 'application/json' } })]
  await w.post('/v1/chat/completions', { model: 'once', messages: [{ role: 'user', content: accented }] }, { 'x-agent-name': 'ezra' })
  expect(lastRows(1)[0]!.error_message).not.toMatch(/Zo(ë|\\u00eb) Roe/)
})

test("OpenRouter's plain-text metadata.raw (its usual 429) is the provider's own words", async () => {
  const raw = 'meta-llama/llama-3.3-70b-instruct:free is temporarily rate-limited upstream. Please retry shortly.'
  answers = [json({ error: { code: 429, message: 'Provider returned error', metadata: { provider_name: 'Venice', raw } } }, 429)]
  await ask('once')
  expect(lastRows(1)[0]!.error_message).toBe(`HTTP 429 rate limited: Provider returned error (Venice: ${raw})`)
})

test("a stream whose first event is an error with a code (OpenRouter, after its keep-alive comments) is that HTTP error: a 400 is not retried", async () => {
  const opened = (code: number) =>
    new Response(`: OPENROUTER PROCESSING\n\ndata: ${JSON.stringify({ error: { code, message: 'bad request: tools[0] is invalid' } })}\n\n`, { headers: { 'content-type': 'text/event-stream' } })
  answers = [opened(400), sse([chunk({ content: 'never' }), '[DONE]'])]
  const refused = await ask('twice', true)
  expect(calls).toBe(1)
  expect(refused.status).toBe(502)
  expect(refused.headers.get('x-should-retry')).toBe('false')
  expect(lastRows(1)[0]!.error_message).toBe('error in a 200 answer (code 400): bad request: tools[0] is invalid')
  // A 502 in the same place is the provider's failure, tried again.
  calls = 0
  answers = [opened(502), sse([chunk({ content: 'Hello.' }), '[DONE]'])]
  expect((await ask('twice', true)).status).toBe(200)
  expect(calls).toBe(2)
})

test("Gemini's 429 says how long to wait in its body (RetryInfo's retryDelay), with no Retry-After header: it is honoured and passed on", async () => {
  const limited = [{ error: { code: 429, message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED', details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '37s' }] } }]
  answers = [json(limited, 429)]
  const res = await ask('once')
  expect(res.status).toBe(502)
  expect(res.headers.get('retry-after')).toBe('37')
  expect(lastRows(1)[0]!.error_message).toBe('HTTP 429 rate limited (retry-after 37 s): Resource has been exhausted (e.g. check quota).')
})

test("OpenRouter's 429 says when its limit resets (X-RateLimit-Reset, an instant in ms, in the body's metadata or as a header): a daily cap hours away is not retried into", async () => {
  const resetAt = Date.now() + 2 * 3600_000
  const limited = { error: { message: 'Rate limit exceeded: free-models-per-day. ', code: 429, metadata: { headers: { 'X-RateLimit-Limit': '50', 'X-RateLimit-Remaining': '0', 'X-RateLimit-Reset': String(resetAt) } } } }
  answers = [json(limited, 429), json(answer())]
  const res = await ask('twice')
  expect(res.status).toBe(502)
  expect(calls).toBe(1) // hours away: past retry_after_cap_ms, so not waited for
  expect(lastRows(1)[0]!.error_message).toMatch(/^HTTP 429 rate limited \(retry-after 7\d{3}(\.\d)? s\): Rate limit exceeded: free-models-per-day\.$/) // tenths once the reset is a moment nearer
  // The same as a header, in seconds, a moment away: waited for, then retried.
  calls = 0
  answers = [new Response('{"error":{"message":"slow down","code":429}}', { status: 429, headers: { 'x-ratelimit-reset': String(Math.ceil(Date.now() / 1000) + 1) } }), json(answer())]
  expect((await ask('twice')).status).toBe(200)
  expect(calls).toBe(2)
  // Up to 2 s away when sent (a whole second, rounded up), and a moment less when read: under 1 s shows in ms.
  expect(lastRows(2)[0]!.error_message).toMatch(/^HTTP 429 rate limited \(retry-after ([12](\.\d)? s|\d{1,3} ms)\): slow down$/)
})

test('output tokens count the reasoning a layer left out of completion_tokens but counted in total_tokens, and nothing else the total holds', async () => {
  // Gemini thinking behind an OpenAI-compatible layer (xAI reports the same way).
  answers = [json(answer({ usage: { prompt_tokens: 20, completion_tokens: 198, total_tokens: 623, completion_tokens_details: { reasoning_tokens: 405 } } }))]
  await ask('once')
  expect(lastRows(1)[0]).toMatchObject({ tokens_in: 20, tokens_out: 603 })
  // OpenAI's own: reasoning is inside completion_tokens already.
  answers = [json(answer({ usage: { prompt_tokens: 20, completion_tokens: 603, total_tokens: 623, completion_tokens_details: { reasoning_tokens: 405 } } }))]
  await ask('once')
  expect(lastRows(1)[0]).toMatchObject({ tokens_in: 20, tokens_out: 603 })
  // Gemini's tool-use tokens are in its total but are input: not output, nor priced as output.
  answers = [json(answer({ usage: { prompt_tokens: 1041, completion_tokens: 3093, total_tokens: 381679 } }))]
  await ask('once')
  expect(lastRows(1)[0]).toMatchObject({ tokens_in: 1041, tokens_out: 3093 })
})

test("Groq's streamed usage, sent in x_groq (its last chunk), is the row's and reaches an Anthropic client", async () => {
  const groq = () => sse([
    chunk({ role: 'assistant', content: 'Hi.' }),
    { id: 'gen-1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], x_groq: { id: 'req_01', usage: { prompt_tokens: 38, completion_tokens: 5, total_tokens: 43 } } },
    '[DONE]',
  ])
  answers = [groq()]
  expect((await ask('once', true)).status).toBe(200)
  expect(lastRows(1)[0]).toMatchObject({ status: 'success', tokens_in: 38, tokens_out: 5 })
  answers = [groq()]
  const res = await w.post('/v1/messages', { model: 'once', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
  expect(await res.text()).toContain('"usage":{"input_tokens":38,"output_tokens":5}')
  expect(lastRows(1)[0]).toMatchObject({ status: 'success', tokens_in: 38, tokens_out: 5 })
})

test("an OpenAI client that asks for usage reads it at the top level of the chunk, also from Kimi (in the choice) and Groq (in x_groq)", async () => {
  const usage = { prompt_tokens: 19, completion_tokens: 13, total_tokens: 32 }
  const shapes = [
    { id: 'gen-1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop', usage }] },
    { id: 'gen-1', object: 'chat.completion.chunk', model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], x_groq: { id: 'req_1', usage } },
  ]
  const usageChunk = { id: 'gen-1', object: 'chat.completion.chunk', model: 'm', choices: [], usage }
  // Groq, asked for include_usage, sends both: x_groq.usage on its last chunk, then the usage chunk.
  for (const last of [[shapes[0]], [shapes[1]], [shapes[1], usageChunk]]) {
    answers = [sse([chunk({ role: 'assistant', content: 'Hi.' }), ...last, '[DONE]'])]
    const res = await w.post('/v1/chat/completions', { model: 'once', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
    const chunks = (await res.text()).split('\n\n').filter((f) => f.startsWith('data: {')).map((f) => JSON.parse(f.slice(6)) as { usage?: unknown; choices: unknown[] })
    // Once, in a chunk of its own at the end: clients that add up chunk.usage count it once.
    expect(chunks.filter((c) => c.usage)).toEqual([expect.objectContaining({ choices: [], usage })])
    expect(chunks.at(-1)!.usage).toEqual(usage)
    expect(lastRows(1)[0]).toMatchObject({ tokens_in: 19, tokens_out: 13 })
  }
})

test("a stream Groq stopped early (x_groq.error) is no success, and an OpenAI client is sent an error its SDK raises", async () => {
  answers = [sse([chunk({ role: 'assistant', content: 'Hel' }), { choices: [], x_groq: { id: 'req_02', error: 'stream stopped early: internal server error' } }, '[DONE]'])]
  const res = await ask('once', true)
  expect(res.text).not.toContain('[DONE]')
  expect(res.text).toContain('"error":{"message":"stream interrupted after 1 chunks (upstream error event: stream stopped early: internal server error)"')
  expect(lastRows(1)[0]).toMatchObject({ status: 'error', error_message: 'stream interrupted after 1 chunks (upstream error event: stream stopped early: internal server error)' })
  // vLLM's error object mid-stream is no top-level `error` either, nor a choice's error beside `error: null`: the client gets one that is.
  answers = [sse([chunk({ role: 'assistant', content: 'Hel' }), { object: 'error', message: 'engine died', code: 500 }, '[DONE]'])]
  expect((await ask('once', true)).text).toContain('"error":{"message":"stream interrupted after 1 chunks (upstream error event: engine died)"')
  answers = [sse([chunk({ role: 'assistant', content: 'Hel' }), { error: null, ...chunk({}, 'error', { error: { message: 'choice died', code: 502 } }) }, '[DONE]'])]
  expect((await ask('once', true)).text).toContain('"error":{"message":"stream interrupted after 1 chunks (upstream error event: choice died)"')
})

test("Gemini's error array as a stream's event is its error (a 503: retried), not a malformed stream", async () => {
  const overloaded = [{ error: { code: 503, message: 'The model is overloaded. Please try again later.', status: 'UNAVAILABLE' } }]
  answers = [sse([overloaded]), sse([chunk({ role: 'assistant', content: 'Hi.' }), chunk({}, 'stop'), '[DONE]'])]
  expect((await w.post('/v1/chat/completions', { model: 'twice', stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })).status).toBe(200)
  expect(calls).toBe(2)
  expect(lastRows(2)[0]).toMatchObject({ status: 'error', error_message: 'error in a 200 answer (code 503): The model is overloaded. Please try again later.' })
})

test('an Anthropic client is told the output tokens the row records, reasoning a layer left out of completion_tokens included', async () => {
  const usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 115, completion_tokens_details: { reasoning_tokens: 100 } }
  answers = [json(answer({ usage }))]
  const whole = await w.post('/v1/messages', { model: 'once', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
  expect(((await whole.json()) as { usage: unknown }).usage).toEqual({ input_tokens: 10, output_tokens: 105 })
  expect(lastRows(1)[0]).toMatchObject({ tokens_in: 10, tokens_out: 105 })
  answers = [sse([chunk({ role: 'assistant', content: 'Hi.' }), chunk({}, 'stop'), { id: 'gen-1', object: 'chat.completion.chunk', model: 'm', choices: [], usage }, '[DONE]'])]
  const streamed = await w.post('/v1/messages', { model: 'once', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
  expect(await streamed.text()).toContain('"usage":{"input_tokens":10,"output_tokens":105}')
  expect(lastRows(1)[0]).toMatchObject({ tokens_in: 10, tokens_out: 105 })
})

test('a JSON error of any shape in place of an asked-for stream keeps its message, and is retried', async () => {
  const shapes = [
    [{ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }, 'Overloaded'],
    [{ message: 'CUDA out of memory' }, 'CUDA out of memory'],
    [[{ error: { code: 503, message: 'The model is overloaded.', status: 'UNAVAILABLE' } }], 'The model is overloaded.'],
  ] as const
  for (const [body, message] of shapes) {
    calls = 0
    answers = [json(body), sse([chunk({ content: 'Hello.' }), '[DONE]'])]
    expect((await ask('twice', true)).status).toBe(200)
    expect(calls).toBe(2)
    expect(lastRows(2)[0]!.error_message).toBe(`error in a 200 answer: ${message}`)
  }
})

describe('an upstream that ignores `stream: true` and answers a whole completion', () => {
  /** The JSON of each `data:` line of an SSE body. */
  const dataOf = (text: string) =>
    text
      .split('\n')
      .filter((l) => l.startsWith('data: ') && l !== 'data: [DONE]')
      .map((l) => JSON.parse(l.slice(6)) as Record<string, any>)

  test('is a success with its tokens, paid for once, served to an OpenAI client as a stream', async () => {
    answers = [json(answer())]
    const { status, text } = await ask('paid', true)
    expect(status).toBe(200)
    expect(text).toEndWith('data: [DONE]\n\n')
    const chunks = dataOf(text)
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('Hello.')
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === 'gen-1')).toBe(true)
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('stop')
    expect(calls).toBe(1)
    expect(lastRows(1)[0]).toMatchObject({ provider: 'up', status: 'success', tokens_in: 10, tokens_out: 2, error_message: null })
    expect(readMeta(w.dbPath).at(-1)).toMatchObject({ http_status: 200, response_id: 'gen-1', served_model: 'm' })
  })

  test('an answer larger than one event may be (16 MB) is served whole: the limit is for what an upstream streams', async () => {
    const big = 'x'.repeat(17 * 1024 * 1024)
    answers = [json(answer({ choices: [{ index: 0, message: { role: 'assistant', content: big }, finish_reason: 'stop' }] }))]
    const { status, text } = await ask('paid', true)
    expect(status).toBe(200)
    expect(dataOf(text).map((c) => c.choices[0]?.delta?.content ?? '').join('').length).toBe(big.length)
    expect(lastRows(1)[0]).toMatchObject({ status: 'success', tokens_in: 10, tokens_out: 2 })
  })

  test("is served to an Anthropic client as a Messages stream, with its usage", async () => {
    answers = [json(answer())]
    const res = await w.post('/v1/messages', { model: 'paid', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
    const events = dataOf(await res.text())
    expect(events.map((e) => e.type)).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
    expect(events[2]!.delta).toEqual({ type: 'text_delta', text: 'Hello.' })
    expect(events[4]).toMatchObject({ delta: { stop_reason: 'end_turn' }, usage: { input_tokens: 10, output_tokens: 2 } })
    expect(calls).toBe(1)
    expect(lastRows(1)[0]).toMatchObject({ status: 'success', tokens_in: 10, tokens_out: 2 })
  })

  test('from Anthropic, text and a tool call reach an OpenAI client as chunks, and its tokens the row', async () => {
    answers = [
      json({
        id: 'msg_whole', type: 'message', role: 'assistant', model: 'claude-x', stop_reason: 'tool_use', stop_sequence: null,
        content: [{ type: 'text', text: 'Let me look.' }, { type: 'tool_use', id: 'toolu_1', name: 'lookup', input: { city: 'Paris' } }],
        usage: { input_tokens: 30, output_tokens: 12 },
      }),
    ]
    const { status, text } = await ask('ant', true)
    expect(status).toBe(200)
    const chunks = dataOf(text)
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('Let me look.')
    const calls_ = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? [])
    expect(calls_[0]).toMatchObject({ index: 0, id: 'toolu_1', function: { name: 'lookup' } })
    expect(JSON.parse(calls_.map((c: any) => c.function.arguments).join(''))).toEqual({ city: 'Paris' })
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('tool_calls')
    expect(calls).toBe(1)
    expect(lastRows(1)[0]).toMatchObject({ provider: 'ant', status: 'success', tokens_in: 30, tokens_out: 12 })
  })

  test("from Anthropic, reaches an Anthropic client as the Messages stream Anthropic would have sent, thinking's signature kept", async () => {
    const content = [{ type: 'thinking', thinking: 'Hmm.', signature: 'sig-1' }, { type: 'text', text: 'Hi.' }]
    answers = [json({ id: 'msg_whole', type: 'message', role: 'assistant', model: 'claude-x', stop_reason: 'end_turn', stop_sequence: null, content, usage: { input_tokens: 7, output_tokens: 3 } })]
    const res = await w.post('/v1/messages', { model: 'ant', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
    const events = dataOf(await res.text())
    expect(events[0]).toMatchObject({ type: 'message_start', message: { id: 'msg_whole', model: 'claude-x', content: [], usage: { input_tokens: 7 } } })
    expect(events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta)).toEqual([
      { type: 'thinking_delta', thinking: 'Hmm.' },
      { type: 'signature_delta', signature: 'sig-1' },
      { type: 'text_delta', text: 'Hi.' },
    ])
    expect(events.at(-2)).toMatchObject({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 3 } })
    expect(events.at(-1)).toEqual({ type: 'message_stop' })
    expect(lastRows(1)[0]).toMatchObject({ provider: 'ant', status: 'success', tokens_in: 7, tokens_out: 3 })
  })

  test("keeps what cites its sources: OpenAI's annotations in a delta, Anthropic's citations as citations_delta events", async () => {
    const annotations = [{ type: 'url_citation', url_citation: { url: 'https://example.test/a', title: 'A', start_index: 0, end_index: 6 } }]
    answers = [json(answer({ choices: [{ index: 0, message: { role: 'assistant', content: 'Hello.', annotations }, finish_reason: 'stop' }] }))]
    const chunks = dataOf((await ask('paid', true)).text)
    expect(chunks.flatMap((c) => c.choices[0]?.delta?.annotations ?? [])).toEqual(annotations)

    const citation = { type: 'char_location', cited_text: 'The sky is blue.', document_index: 0, document_title: 'Facts', start_char_index: 0, end_char_index: 16 }
    const content = [{ type: 'text', text: 'The sky is blue.', citations: [citation] }]
    answers = [json({ id: 'msg_cited', type: 'message', role: 'assistant', model: 'claude-x', stop_reason: 'end_turn', stop_sequence: null, content, usage: { input_tokens: 7, output_tokens: 5 } })]
    const res = await w.post('/v1/messages', { model: 'ant', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
    const events = dataOf(await res.text())
    expect(events.find((e) => e.type === 'content_block_start')!.content_block).toEqual({ type: 'text', text: '', citations: [] })
    expect(events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta)).toEqual([
      { type: 'citations_delta', citation },
      { type: 'text_delta', text: 'The sky is blue.' },
    ])
  })

  test('that is no completion and no error is still refused as malformed', async () => {
    answers = [json({ hello: 'world' })]
    expect((await ask('once', true)).status).toBe(502)
    expect(lastRows(1)[0]).toMatchObject({ status: 'error', tokens_in: null, error_message: 'malformed response: expected an event stream, got application/json' })
  })
})

describe("an upstream that puts the call's key in its answer's id and model (broken, or hostile)", () => {
  test('the row, the chain and /v1/infer keep them with the key cut out, whole answer or stream; an honest model shaped like a key stays', async () => {
    answers = [json(answer({ id: `Bearer ${KEY}`, model: `echo/${KEY.slice(0, 30)}` }))]
    const whole = await ask('keyed')
    expect(whole.status).toBe(200)
    expect(lastMeta()).toMatchObject({ response_id: 'Bearer [redacted]', served_model: 'echo/[redacted]' })
    // Nor does the agent get it: the answer is not passed through as it came.
    expect(JSON.parse(whole.text)).toMatchObject({ id: 'Bearer [redacted]', model: 'echo/[redacted]', choices: [{ message: { content: 'Hello.' } }] })

    const echoed = { id: `Bearer ${KEY}`, object: 'chat.completion.chunk', model: KEY }
    answers = [sse([{ ...echoed, choices: [{ index: 0, delta: { content: 'Hi' }, finish_reason: null }] }, { ...echoed, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }, '[DONE]'])]
    const streamed = await ask('keyed', true)
    expect(streamed.status).toBe(200)
    expect(lastMeta()).toMatchObject({ response_id: 'Bearer [redacted]', served_model: '[redacted]' })
    expect(streamed.text).toContain('"content":"Hi"')
    expect(streamed.text).toContain('"id":"Bearer [redacted]","object":"chat.completion.chunk","model":"[redacted]"')
    expect(streamed.text).not.toContain(KEY.slice(3, 20))
    // An Anthropic client of the same upstream neither (its message_start names the answer's id and model).
    answers = [sse([{ ...echoed, choices: [{ index: 0, delta: { content: 'Hi' }, finish_reason: null }] }, { ...echoed, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }, '[DONE]'])]
    const messages = await w.post('/v1/messages', { model: 'keyed', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
    const messagesText = await messages.text()
    expect(messagesText).toContain('"text":"Hi"')
    expect(messagesText).not.toContain(KEY.slice(3, 20))

    // A configured header's value (not named like a credential) too, as error text cuts it out.
    answers = [json(answer({ model: 'echo TenantSecret_abcdef123' }))]
    const headered = await ask('headered')
    expect(JSON.parse(headered.text).model).toBe('echo [redacted]')
    expect(lastMeta()).toMatchObject({ served_model: 'echo [redacted]' })

    answers = [json(answer({ id: `gen-${KEY}`, model: 'xai-grok-4-fast-reasoning' }))]
    const res = await w.post('/v1/infer', { chain: 'keyed', messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
    expect(res.status).toBe(200)
    expect(await res.json()).toMatchObject({ response_id: 'gen-[redacted]', served_model: 'xai-grok-4-fast-reasoning' })
    expect(lastMeta()).toMatchObject({ response_id: 'gen-[redacted]', served_model: 'xai-grok-4-fast-reasoning' })
    // Nothing of the key is in the database file, the chain's records included.
    const { Database } = await import('bun:sqlite')
    const db = new Database(w.dbPath, { readonly: true })
    try {
      const records = db.query('SELECT record FROM log_chain').all() as { record: string }[]
      expect(records.some((r) => r.record.includes('gen-[redacted]'))).toBe(true)
      expect(records.filter((r) => r.record.includes(KEY.slice(3, 20)))).toEqual([])
    } finally {
      db.close()
    }
  })
})

describe('token counts that are no counts (negative, fractional, past 2^53, not numbers)', () => {
  test('are stored as unknown (a fraction cut to its whole part), and reach no client as reported', async () => {
    const odd = [
      [{ prompt_tokens: -5, completion_tokens: -3, total_tokens: -8 }, [null, null]],
      [{ prompt_tokens: 1e300, completion_tokens: 2.7, total_tokens: 1e300 }, [null, 2]],
      [{ prompt_tokens: 2 ** 63, completion_tokens: '7', total_tokens: 2 ** 63 }, [null, null]],
    ] as const
    for (const [usage, stored] of odd) {
      answers.push(json(answer({ usage })))
      expect((await ask('once')).status).toBe(200)
      const [row] = lastRows(1)
      expect([row!.tokens_in, row!.tokens_out]).toEqual([...stored])
    }
    // Streamed, and translated for an Anthropic client: its usage says 0, not -10.
    answers.push(sse([chunk({ role: 'assistant', content: 'Hi' }), chunk({}, 'stop'), { ...chunk({}), choices: [], usage: { prompt_tokens: -10, completion_tokens: 1.5 } }, '[DONE]']))
    const res = await w.post('/v1/messages', { model: 'once', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra', 'anthropic-version': '2023-06-01' })
    const text = await res.text()
    const delta = text.split('\n').filter((l) => l.includes('"message_delta"')).map((l) => JSON.parse(l.slice(6)))[0]
    expect(delta.usage).toEqual({ input_tokens: 0, output_tokens: 1 })
    expect([lastRows(1)[0]!.tokens_in, lastRows(1)[0]!.tokens_out]).toEqual([null, 1])
    // And from Anthropic: a negative cache count is no count; the input is what remains.
    answers.push(json({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Hi' }], stop_reason: 'end_turn', usage: { input_tokens: 12, cache_read_input_tokens: -100, output_tokens: -1 } }))
    const viaAnt = await w.post('/v1/chat/completions', { model: 'ant', messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'ezra' })
    expect((await viaAnt.json()).usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 0 })
    expect([lastRows(1)[0]!.tokens_in, lastRows(1)[0]!.tokens_out]).toEqual([12, null])
  })
})

describe('an upstream that streams an answer it was not asked to stream', () => {
  test("its usage is read where the provider puts it (Kimi's in the choice, Groq's in x_groq), for the row and the answer", async () => {
    const usage = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 }
    for (const last of [chunk({}, 'stop', { usage }), { ...chunk({}, 'stop'), x_groq: { id: 'req_1', usage } }]) {
      answers.push(sse([chunk({ role: 'assistant', content: 'Hel' }), chunk({ content: 'lo.' }), last, '[DONE]']))
      const { status, text } = await ask('once')
      expect(status).toBe(200)
      expect(JSON.parse(text)).toMatchObject({ object: 'chat.completion', choices: [{ message: { content: 'Hello.' } }], usage })
      expect(lastRows(1)[0]).toMatchObject({ status: 'success', tokens_in: 11, tokens_out: 7 })
    }
  })

  const events = (list: [string | null, unknown][]) =>
    new Response(list.map(([name, data]) => `${name ? `event: ${name}\n` : ''}data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`).join(''), { headers: { 'content-type': 'text/event-stream; charset=utf-8' } })

  test('OpenAI: its chunks are folded into the completion they carry, served whole, paid for once', async () => {
    answers.push(events([
      [null, chunk({ role: 'assistant', content: 'Hel' })],
      [null, chunk({ content: 'lo.' })],
      [null, chunk({ tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'get_time', arguments: '{"tz":' } }] })],
      [null, chunk({ tool_calls: [{ index: 0, function: { arguments: '"UTC"}' } }] })],
      [null, chunk({}, 'tool_calls')],
      [null, { ...chunk({}), choices: [], usage: { prompt_tokens: 7, completion_tokens: 4, total_tokens: 11 } }],
      [null, '[DONE]'],
    ]))
    const res = await ask('paid')
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toContain('application/json')
    const body = JSON.parse(res.text)
    expect(body).toMatchObject({ id: 'gen-1', object: 'chat.completion', model: 'm', usage: { prompt_tokens: 7, completion_tokens: 4 } })
    expect(body.choices).toEqual([
      { index: 0, message: { role: 'assistant', content: 'Hello.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_time', arguments: '{"tz":"UTC"}' } }] }, finish_reason: 'tool_calls' },
    ])
    expect(calls).toBe(1)
    expect(lastRows(1)[0]).toMatchObject({ provider: 'up', status: 'success', tokens_in: 7, tokens_out: 4 })
  })

  test('Anthropic: its events are folded into the message they carry, and reach an OpenAI client translated', async () => {
    answers.push(events([
      ['message_start', { type: 'message_start', message: { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-x', content: [], stop_reason: null, usage: { input_tokens: 9, output_tokens: 1 } } }],
      ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
      ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Checking.' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 0 }],
      ['content_block_start', { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_1', name: 'get_time', input: {} } }],
      ['content_block_delta', { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"tz":"UTC"}' } }],
      ['content_block_stop', { type: 'content_block_stop', index: 1 }],
      ['message_delta', { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 6 } }],
      ['message_stop', { type: 'message_stop' }],
    ]))
    const res = await ask('ant')
    expect(res.status).toBe(200)
    const message = JSON.parse(res.text).choices[0].message
    expect(message).toMatchObject({ content: 'Checking.', tool_calls: [{ id: 'toolu_1', function: { name: 'get_time', arguments: '{"tz":"UTC"}' } }] })
    expect(calls).toBe(1)
    expect(lastRows(1)[0]).toMatchObject({ provider: 'ant', status: 'success', tokens_in: 9, tokens_out: 6 })
  })

  test('one cut before its end, or carrying an error event, is a failure that says so, and the chain falls back', async () => {
    const message = { id: 'msg_2', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Hi' }], stop_reason: 'end_turn', usage: { input_tokens: 3, output_tokens: 1 } }
    answers.push(events([[null, chunk({ role: 'assistant', content: 'Hel' })]]), json(message))
    expect((await ask('paid')).status).toBe(200)
    expect(lastRows(3).map((r) => [r.provider, r.status, r.error_message])).toEqual([
      ['up', 'error', 'malformed response: an event stream (not asked for) that ended before its answer did'],
      ['ant', 'fallback', 'fallback from up/m: malformed response: an event stream (not asked for) that ended before its answer did'],
      ['ant', 'success', null],
    ])
    answers.push(events([['error', { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }]]), json(answer()))
    expect((await ask('ant')).status).toBe(200)
    expect(lastRows(3)[0]).toMatchObject({ provider: 'ant', status: 'error', error_message: expect.stringContaining('Overloaded') })
  })
})

describe('answers that say less than they seem to', () => {
  test('a Retry-After that is no number of seconds and no HTTP date is ignored: the backoff is used, not "retry at once"', async () => {
    for (const junk of ['-5', '1, 2', 'soon']) {
      answers.push(new Response('slow down', { status: 429, headers: { 'retry-after': junk } }), json(answer()))
      expect((await ask('twice')).status).toBe(200)
      expect(lastRows(2)[0]!.error_message).toBe('HTTP 429 rate limited: slow down')
    }
    // An HTTP date still counts.
    answers.push(new Response('slow down', { status: 429, headers: { 'retry-after': new Date(Date.now() + 300).toUTCString() } }), json(answer()))
    expect((await ask('twice')).status).toBe(200)
    expect(lastRows(2)[0]!.error_message).toMatch(/^HTTP 429 rate limited \(retry-after \d+ ms\): slow down$/)
  })

  test('an answer without a choice is no answer: an error row (with the tokens it reported) and the next step, whole or streamed', async () => {
    answers.push(json(answer({ choices: [], usage: { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 } })), json({ type: 'message', id: 'msg_1', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Hi.' }], stop_reason: 'end_turn', usage: { input_tokens: 3, output_tokens: 2 } }))
    const whole = await ask('paid')
    expect(whole.status).toBe(200)
    expect(whole.headers.get('x-witness-provider')).toBe('ant')
    expect(lastRows(3).map((r) => [r.provider, r.status, r.tokens_in, r.tokens_out, r.error_message])).toEqual([
      ['up', 'error', 11, 7, 'malformed response: an answer without a choice'],
      ['ant', 'fallback', null, null, expect.any(String)],
      ['ant', 'success', 3, 2, null],
    ])

    // Streamed, ending before any event: nothing was passed on yet, so the chain falls back.
    answers.push(sse(['[DONE]']), json({ type: 'message', id: 'msg_2', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Hi.' }], stop_reason: 'end_turn', usage: { input_tokens: 3, output_tokens: 2 } }))
    const streamed = await ask('paid', true)
    expect(streamed.status).toBe(200)
    expect(lastRows(3).map((r) => [r.provider, r.status])).toEqual([['up', 'error'], ['ant', 'fallback'], ['ant', 'success']])
    expect(lastRows(3)[0]!.error_message).toBe('malformed response: the stream ended without a choice')
    expect(streamed.text).toContain('"Hi."')

    // A "choice" that is no object is none either.
    answers.push(json(answer({ choices: [null] })), json({ type: 'message', id: 'msg_3', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Hi.' }], stop_reason: 'end_turn', usage: { input_tokens: 3, output_tokens: 2 } }))
    expect((await ask('paid')).status).toBe(200)
    expect(lastRows(3).map((r) => [r.provider, r.status, r.error_message?.startsWith('malformed') ?? null])).toEqual([['up', 'error', true], ['ant', 'fallback', false], ['ant', 'success', null]])
  })

  test('events before the first choice (a usage chunk first, Azure\'s prompt-filter results) are held: a stream that then ends without a choice falls back as one that sent nothing does; one whose choice follows reaches the client whole', async () => {
    const usageFirst = { id: 'gen-1', object: 'chat.completion.chunk', model: 'm', choices: [], usage: { prompt_tokens: 4, completion_tokens: 0, total_tokens: 4 } }
    answers.push(sse([usageFirst, { id: 'gen-1', object: 'chat.completion.chunk', model: 'm', choices: [] }, '[DONE]']), json({ type: 'message', id: 'msg_4', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'Hi.' }], stop_reason: 'end_turn', usage: { input_tokens: 3, output_tokens: 2 } }))
    const fell = await ask('held', true)
    expect(fell.status).toBe(200)
    expect(lastRows(3).map((r) => [r.provider, r.status, r.tokens_in, r.tokens_out])).toEqual([['up', 'error', 4, 0], ['ant', 'fallback', null, null], ['ant', 'success', 3, 2]])
    expect(lastRows(3)[0]!.error_message).toBe('malformed response: the stream ended without a choice')
    expect(fell.text).toContain('"Hi."')
    expect(fell.text).not.toContain('gen-1')

    const filter = { id: '', object: '', created: 0, model: '', choices: [], prompt_filter_results: [{ prompt_index: 0, content_filter_results: { hate: { filtered: false, severity: 'safe' } } }] }
    const hello = { id: 'chatcmpl-az', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta: { role: 'assistant', content: 'Hello' }, finish_reason: null }] }
    const stop = { ...hello, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }
    answers.push(sse([filter, hello, stop, '[DONE]']))
    const served = await ask('once', true)
    expect(served.status).toBe(200)
    expect(lastRows(1)[0]).toMatchObject({ provider: 'up', status: 'success' })
    expect(served.text.indexOf('prompt_filter_results')).toBeLessThan(served.text.indexOf('Hello'))
    expect(served.text).toContain('[DONE]')
  })

  test('a 501 or 505 is not retried: the server does not do what was asked', async () => {
    for (const status of [501, 505]) {
      answers.push(new Response('not here', { status }), json(answer()))
      expect((await ask('twice')).status).toBe(502)
      expect(calls).toBe(1)
      calls = 0
      answers = []
    }
  })
})

test('a 200 whose body does not come in time is a timeout whose row keeps the 200 it answered with, whole answer or stream', async () => {
  const stalled = (type: string) => new Response(new ReadableStream({ start: (c) => c.enqueue(new TextEncoder().encode(type.includes('json') ? '{"id":' : ': keep-alive\n\n')) }), { headers: { 'content-type': type } })
  for (const [stream, type] of [[false, 'application/json'], [true, 'text/event-stream']] as const) {
    answers.push(stalled(type))
    expect((await ask('brief', stream)).status).toBe(502)
    expect(lastRows(1)[0]).toMatchObject({ status: 'timeout' })
    expect(lastMeta().http_status).toBe(200)
  }
})
