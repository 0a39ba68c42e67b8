/**
 * The official Anthropic SDK as a real caller, pointed at witness by base URL
 * only, against Anthropic and OpenAI upstreams (translated both ways).
 */
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { readMeta, readRows } from './support/rows.ts'
import { simConfig, startWitness, type TestWitness } from './support/witness.ts'

let sim: Simulator
let w: TestWitness
let client: Anthropic

beforeAll(async () => {
  sim = startSimulator()
  w = await startWitness(
    simConfig(sim.url, {
      default: [{ provider: 'simant', model: 'claude-sonnet-4+tokens-30-7+chunks-4' }],
      kimi: [{ provider: 'sim', model: 'kimi-k2.5+tokens-12-9+chunks-3' }],
      tools: [{ provider: 'simant', model: 'claude-sonnet-4+tool-get_weather' }],
      kimitools: [{ provider: 'sim', model: 'kimi-k2.5+tool-get_weather' }],
      fallback: [{ provider: 'simant', model: 'down+status-529', retries: 0 }, { provider: 'sim', model: 'backup+chunks-3' }],
      cut: [{ provider: 'simant', model: 'cut+chunks-8+cut-3' }],
      slow: [{ provider: 'simant', model: 'slow+chunks-60+chunk-delay-50' }],
    }),
  )
  client = new Anthropic({ baseURL: w.url, apiKey: 'not-a-provider-key', defaultHeaders: { 'x-agent-name': 'ezra' }, maxRetries: 0 })
})
afterAll(async () => {
  await w.stop(0)
  await sim.stop()
})
beforeEach(() => sim.reset())

const ask: Anthropic.MessageParam[] = [{ role: 'user', content: 'What is the weather in Paris?' }]
const tools: Anthropic.Tool[] = [{ name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }]

function rowsOf(requestId: string | null) {
  const ids = new Set(readMeta(w.dbPath).filter((m) => m.request_id === requestId).map((m) => m.log_id))
  return readRows(w.dbPath).filter((r) => ids.has(r.id))
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _ of stream) {
    // read to the end
  }
}

describe('Anthropic SDK through witness', () => {
  test('a non-streaming message, forwarded untouched to an Anthropic provider', async () => {
    const { data, response } = await client.messages.create({ model: 'default', max_tokens: 100, system: 'be brief', messages: ask, stop_sequences: ['###'] }).withResponse()
    expect(data.content as unknown[]).toEqual([{ type: 'text', text: 'sim reply to: What is the weather in Paris?' }])
    expect(data.model).toBe('claude-sonnet-4')
    expect(data.usage).toMatchObject({ input_tokens: 30, output_tokens: 7 })
    expect(sim.requests[0]!.body).toEqual({ model: 'claude-sonnet-4+tokens-30-7+chunks-4', max_tokens: 100, system: 'be brief', messages: ask, stop_sequences: ['###'] })
    expect(rowsOf(response.headers.get('x-witness-request-id'))).toMatchObject([{ agent_name: 'ezra', provider: 'simant', status: 'success', tokens_in: 30, tokens_out: 7 }])
  })

  test('a stream: events pass through, the final message and usage are right, the row is final by the end', async () => {
    const stream = client.messages.stream({ model: 'default', max_tokens: 100, messages: ask })
    const texts: string[] = []
    stream.on('text', (t) => texts.push(t))
    const final = await stream.finalMessage()
    expect(texts.length).toBeGreaterThan(1)
    expect(texts.join('')).toBe('sim reply to: What is the weather in Paris?')
    expect(final.stop_reason).toBe('end_turn')
    expect(final.usage.output_tokens).toBe(7)
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ status: 'success', tokens_in: 30, tokens_out: 7 })
  })

  test('an Anthropic client over an OpenAI provider: translated both ways, streamed too', async () => {
    const reply = await client.messages.create({ model: 'kimi', max_tokens: 64, system: 'be brief', messages: ask, metadata: { user_id: 'ignored-when-header-set' } })
    expect(reply.content as unknown[]).toEqual([{ type: 'text', text: 'sim reply to: What is the weather in Paris?' }])
    expect(reply.model).toBe('kimi-k2.5')
    expect(reply.usage).toMatchObject({ input_tokens: 12, output_tokens: 9 })
    expect(sim.requests[0]!.path).toBe('/v1/chat/completions')
    expect(sim.requests[0]!.body.messages).toEqual([{ role: 'system', content: 'be brief' }, { role: 'user', content: 'What is the weather in Paris?' }])

    const stream = client.messages.stream({ model: 'kimi', max_tokens: 64, messages: ask })
    const final = await stream.finalMessage()
    expect(final.content).toHaveLength(1)
    expect(final.content[0]).toMatchObject({ type: 'text', text: 'sim reply to: What is the weather in Paris?' })
    expect(final.usage.output_tokens).toBe(9)
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ status: 'success', tokens_in: 12, tokens_out: 9 })
  })

  test('a tool use round trip, on an Anthropic provider and through translation to an OpenAI one', async () => {
    for (const model of ['tools', 'kimitools']) {
      const first = await client.messages.create({ model, max_tokens: 100, messages: ask, tools })
      expect(first.stop_reason).toBe('tool_use')
      const use = first.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use')!
      expect(use.name).toBe('get_weather')
      expect(use.input).toEqual({ city: 'Paris' })
      const second = await client.messages.create({
        model,
        max_tokens: 100,
        tools,
        messages: [...ask, { role: 'assistant', content: first.content }, { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: '14 degrees' }] }],
      })
      expect(second.content[0]).toMatchObject({ type: 'text', text: 'sim reply to tool result: 14 degrees' })
    }
    const translated = sim.requests.filter((r) => r.path === '/v1/chat/completions')
    expect(translated[0]!.body.tools).toEqual([{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: tools[0]!.input_schema } }])
    expect(translated[1]!.body.messages).toContainEqual({ role: 'tool', tool_call_id: expect.any(String), content: '14 degrees' })
  })

  test('a streamed tool use from an OpenAI provider arrives as tool_use blocks', async () => {
    const final = await client.messages.stream({ model: 'kimitools', max_tokens: 100, messages: ask, tools }).finalMessage()
    expect(final.stop_reason).toBe('tool_use')
    expect(final.content.find((b) => b.type === 'tool_use')).toMatchObject({ name: 'get_weather', input: { city: 'Paris' } })
  })

  test('fallback before the first byte: an overloaded provider, the next one serves the stream', async () => {
    const { data: stream, response } = await client.messages.create({ model: 'fallback', max_tokens: 50, messages: ask, stream: true }).withResponse()
    await drain(stream)
    expect(rowsOf(response.headers.get('x-witness-request-id')).map((r) => [r.provider, r.status])).toEqual([['simant', 'error'], ['sim', 'fallback'], ['sim', 'success']])
  })

  test('a stream cut mid-way raises in the SDK and the row says so', async () => {
    const stream = client.messages.stream({ model: 'cut', max_tokens: 50, messages: ask })
    await expect(stream.finalMessage()).rejects.toThrow(/stream interrupted after \d+ chunks/)
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ status: 'error', error_message: expect.stringMatching(/^stream interrupted after \d+ chunks/) })
    expect(sim.requests).toHaveLength(1)
  })

  test('the client aborting mid-stream closes the upstream and finishes the row', async () => {
    const stream = client.messages.stream({ model: 'slow', max_tokens: 50, messages: ask })
    let deltas = 0
    stream.on('text', () => {
      if (++deltas === 3) stream.abort()
    })
    await stream.done().catch(() => {})
    for (let i = 0; i < 100 && readRows(w.dbPath).at(-1)!.status === 'pending'; i++) await Bun.sleep(10)
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ status: 'error', error_message: expect.stringMatching(/^client disconnected after \d+ chunks$/) })
    for (let i = 0; i < 100 && !sim.requests[0]!.aborted; i++) await Bun.sleep(10)
    expect(sim.requests[0]!.aborted).toBe(true)
  })

  test('metadata.user_id names the agent when no header does; none at all is a 400 saying how', async () => {
    const anonymous = new Anthropic({ baseURL: w.url, apiKey: 'x', maxRetries: 0 })
    await anonymous.messages.create({ model: 'default', max_tokens: 10, messages: ask, metadata: { user_id: 'allegro' } })
    expect(readRows(w.dbPath).at(-1)!.agent_name).toBe('allegro')
    const error = await anonymous.messages.create({ model: 'default', max_tokens: 10, messages: ask }).catch((e) => e)
    expect(error).toBeInstanceOf(Anthropic.BadRequestError)
    expect(error.message).toContain('metadata.user_id')
  })

  test('errors arrive in the Anthropic shape with the witness type inside', async () => {
    const unknown = await client.messages.create({ model: 'claude-opus-9', max_tokens: 10, messages: ask }).catch((e) => e)
    expect(unknown).toBeInstanceOf(Anthropic.NotFoundError)
    expect(unknown.error).toMatchObject({ type: 'error', error: { type: 'unknown_chain', message: expect.stringContaining('claude-opus-9') } })
    const bad = await fetch(`${w.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-agent-name': 'a' }, body: JSON.stringify({ model: 'default', messages: ask }) })
    expect(bad.status).toBe(400)
    expect(await bad.json()).toMatchObject({ type: 'error', error: { type: 'invalid_request', issues: [{ path: 'max_tokens' }] } })
  })

  test('models.list() shows the chains in the Anthropic shape, and models.retrieve() one of them', async () => {
    const page = await client.models.list()
    expect(page.data.map((m) => m.id)).toContain('default')
    expect(page.data[0]).toMatchObject({ type: 'model', id: 'default' })
    expect(await client.models.retrieve('default')).toMatchObject({ type: 'model', id: 'default', display_name: 'witness chain default' })
    expect(await client.models.retrieve('claude-opus-9').catch((e) => e)).toBeInstanceOf(Anthropic.NotFoundError)
  })

  test('countTokens() (Claude Code calls it as beta) is answered by witness: an estimate, nothing sent, no row', async () => {
    const rowsBefore = readRows(w.dbPath).length
    const short = await client.messages.countTokens({ model: 'default', messages: ask })
    const { data: long, response } = await client.beta.messages
      .countTokens({ model: 'kimi', system: 'be brief', messages: [...ask, { role: 'assistant', content: 'Sunny.' }, { role: 'user', content: 'And in Rome? '.repeat(200) }], tools })
      .withResponse()
    expect(short.input_tokens).toBeGreaterThan(5)
    expect(long.input_tokens).toBeGreaterThan(short.input_tokens + 600)
    expect(response.headers.get('x-witness-estimate')).toBe('true')
    // Claude Code's own path, with ?beta=true.
    const raw = await fetch(`${w.url}/v1/messages/count_tokens?beta=true`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': 'x', 'anthropic-version': '2023-06-01', 'anthropic-beta': 'token-counting-2024-11-01' },
      body: JSON.stringify({ model: 'default', messages: ask }),
    })
    expect(await raw.json()).toEqual({ input_tokens: short.input_tokens })
    expect(sim.requests).toHaveLength(0)
    expect(readRows(w.dbPath)).toHaveLength(rowsBefore)

    expect(await client.messages.countTokens({ model: 'claude-opus-9', messages: ask }).catch((e) => e)).toBeInstanceOf(Anthropic.NotFoundError)
    const bad = (await client.messages.countTokens({ model: 'default', messages: [] }).catch((e) => e)) as InstanceType<typeof Anthropic.BadRequestError>
    expect(bad).toBeInstanceOf(Anthropic.BadRequestError)
    expect(bad.error).toMatchObject({ type: 'error', error: { type: 'invalid_request', issues: [{ path: 'messages' }] } })
    // tools must be a list of tools, here and for /v1/messages.
    const notTools = await client.messages.create({ model: 'default', max_tokens: 10, messages: ask, tools: 'get_weather' as never }).catch((e) => e)
    expect(notTools.error).toMatchObject({ error: { type: 'invalid_request', issues: [{ path: 'tools' }] } })
  })
})
