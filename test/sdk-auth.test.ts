/**
 * With `auth`, the agent's witness token is what the SDK sends as its API key
 * (Authorization: Bearer from OpenAI clients, x-api-key from Anthropic
 * clients), so base URL and key are the whole change.
 */
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import OpenAI from 'openai'
import { hashToken } from '../src/auth/tokens.ts'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { readRows } from './support/rows.ts'
import { simConfig, startWitness, type TestWitness } from './support/witness.ts'

const TOKEN = 'wit_bezalel-test-token-0123456789abcdefghij'
const OPERATOR = 'wit_operator-test-token-0123456789abcdefgh'
let sim: Simulator
let w: TestWitness

beforeAll(async () => {
  sim = startSimulator()
  w = await startWitness(
    simConfig(
      sim.url,
      { default: [{ provider: 'sim', model: 'kimi-k2.5' }], claude: [{ provider: 'simant', model: 'claude-sonnet-4' }] },
      { auth: { agents: { bezalel: { token_sha256: hashToken(TOKEN) } }, operators: { alexander: { token_sha256: hashToken(OPERATOR) } } } },
    ),
  )
})
afterAll(async () => {
  await w.stop(0)
  await sim.stop()
})

const ask = [{ role: 'user' as const, content: 'hello' }]

describe('SDKs with a witness token as their API key', () => {
  test('OpenAI: the token names the agent; the row is written under it', async () => {
    const client = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: TOKEN, maxRetries: 0 })
    const reply = await client.chat.completions.create({ model: 'default', messages: ask, user: 'end-user-42' })
    expect(reply.choices[0]!.message.content).toBeTruthy()
    expect(readRows(w.dbPath).at(-1)!.agent_name).toBe('bezalel')
    expect(JSON.stringify(sim.requests.at(-1)!.headers)).not.toContain(TOKEN) // the witness token never goes upstream
  })

  test('Anthropic: the token arrives as x-api-key', async () => {
    const client = new Anthropic({ baseURL: w.url, apiKey: TOKEN, maxRetries: 0 })
    const reply = await client.messages.create({ model: 'claude', max_tokens: 10, messages: ask })
    expect(reply.content.length).toBeGreaterThan(0)
    expect(readRows(w.dbPath).at(-1)!.agent_name).toBe('bezalel')
    expect(sim.requests.at(-1)!.headers['x-api-key']).toBeUndefined()
  })

  test('a wrong token is an authentication error and nothing is written or called', async () => {
    const rows = readRows(w.dbPath).length
    const calls = sim.count()
    const openai = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: 'wit_wrong', maxRetries: 0 })
    expect(await openai.chat.completions.create({ model: 'default', messages: ask }).catch((e) => e)).toBeInstanceOf(OpenAI.AuthenticationError)
    const anthropic = new Anthropic({ baseURL: w.url, apiKey: 'wit_wrong', maxRetries: 0 })
    expect(await anthropic.messages.create({ model: 'claude', max_tokens: 10, messages: ask }).catch((e) => e)).toBeInstanceOf(Anthropic.AuthenticationError)
    expect(readRows(w.dbPath)).toHaveLength(rows)
    expect(sim.count()).toBe(calls)
  })

  test('naming another agent in X-Agent-Name is 403 agent_mismatch; an operator token cannot infer', async () => {
    const spoof = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: TOKEN, defaultHeaders: { 'X-Agent-Name': 'ezra' }, maxRetries: 0 })
    const error = await spoof.chat.completions.create({ model: 'default', messages: ask }).catch((e) => e)
    expect(error).toBeInstanceOf(OpenAI.PermissionDeniedError)
    expect(error.code).toBe('agent_mismatch')
    const operator = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: OPERATOR, maxRetries: 0 })
    expect(await operator.chat.completions.create({ model: 'default', messages: ask }).catch((e) => e)).toBeInstanceOf(OpenAI.PermissionDeniedError)
  })

  test("count_tokens takes the agent's token as /v1/messages does: another agent's name is 403 agent_mismatch", async () => {
    const count = (headers: Record<string, string>) =>
      new Anthropic({ baseURL: w.url, apiKey: TOKEN, maxRetries: 0, defaultHeaders: headers }).messages.countTokens({ model: 'claude', messages: ask })
    expect((await count({})).input_tokens).toBeGreaterThan(0)
    expect((await count({ 'X-Agent-Name': 'bezalel' })).input_tokens).toBeGreaterThan(0)
    const error = await count({ 'X-Agent-Name': 'ezra' }).catch((e) => e)
    expect(error).toBeInstanceOf(Anthropic.PermissionDeniedError)
    expect(error.error.error.type).toBe('agent_mismatch')
  })

  test('models.list() needs a token too', async () => {
    const models = await new OpenAI({ baseURL: `${w.url}/v1`, apiKey: TOKEN, maxRetries: 0 }).models.list()
    expect(models.data.map((m) => m.id)).toEqual(['default', 'claude'])
    expect(await new OpenAI({ baseURL: `${w.url}/v1`, apiKey: 'nope', maxRetries: 0 }).models.list().catch((e) => e)).toBeInstanceOf(OpenAI.AuthenticationError)
  })
})
