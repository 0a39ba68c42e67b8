/**
 * Who the agent is on the drop-in endpoints, first found wins: the
 * X-Agent-Name header, then the OpenAI `user` field, then Anthropic's
 * `metadata.user_id`. Checked in the row's agent_name, with the official
 * SDKs and raw fetch as callers.
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { describe, expect, test } from 'bun:test'
import { readMeta, readRows } from './support/rows.ts'
import { useSimulator } from './support/sim-suite.ts'
import { simConfig, type TestWitness } from './support/witness.ts'

const suite = useSimulator()
const ask = [{ role: 'user' as const, content: 'hello' }]
let witness: TestWitness | undefined
const w = async () => (witness ??= await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }], claude: [{ provider: 'simant', model: 'c' }] })))

/** The agent_name of every row the request wrote. */
function agentsOf(dbPath: string, requestId: string | null): string[] {
  const ids = new Set(readMeta(dbPath).filter((m) => m.request_id === requestId).map((m) => m.log_id))
  return readRows(dbPath).filter((r) => ids.has(r.id)).map((r) => r.agent_name)
}

describe('POST /v1/chat/completions', () => {
  test('the X-Agent-Name header wins over the user field', async () => {
    const server = await w()
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0, defaultHeaders: { 'X-Agent-Name': 'ezra' } })
    const { response } = await client.chat.completions.create({ model: 'default', messages: ask, user: 'allegro' }).withResponse()
    expect(agentsOf(server.dbPath, response.headers.get('x-witness-request-id'))).toEqual(['ezra'])
    const raw = await server.post('/v1/chat/completions', { model: 'default', messages: ask, user: 'allegro', stream: true }, { 'x-agent-name': 'ezra' })
    await raw.text()
    expect(agentsOf(server.dbPath, raw.headers.get('x-witness-request-id'))).toEqual(['ezra'])
  })

  test('without the header, the user field names the agent', async () => {
    const server = await w()
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'x', maxRetries: 0 })
    const { response } = await client.chat.completions.create({ model: 'default', messages: ask, user: 'allegro' }).withResponse()
    expect(agentsOf(server.dbPath, response.headers.get('x-witness-request-id'))).toEqual(['allegro'])
  })

  test('a user field that is no agent name (free text) is a 400 saying what a name may hold; nothing is written', async () => {
    const server = await w()
    const rows = readRows(server.dbPath).length
    const res = await server.post('/v1/chat/completions', { model: 'default', messages: ask, user: 'user 42' })
    expect(res.status).toBe(400)
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(
      'invalid agent name (the "user" field): agent names are 1-128 letters, digits, ".", "_", "-", "@" or ":"',
    )
    expect(readRows(server.dbPath)).toHaveLength(rows)
  })
})

describe('POST /v1/messages', () => {
  test('the X-Agent-Name header wins over metadata.user_id', async () => {
    const server = await w()
    const client = new Anthropic({ baseURL: server.url, apiKey: 'x', maxRetries: 0, defaultHeaders: { 'X-Agent-Name': 'ezra' } })
    const { response } = await client.messages.create({ model: 'claude', max_tokens: 10, messages: ask, metadata: { user_id: 'allegro' } }).withResponse()
    expect(agentsOf(server.dbPath, response.headers.get('x-witness-request-id'))).toEqual(['ezra'])
    const raw = await server.post('/v1/messages', { model: 'claude', max_tokens: 10, messages: ask, metadata: { user_id: 'allegro' } }, { 'x-agent-name': 'ezra' })
    expect(raw.status).toBe(200)
    expect(agentsOf(server.dbPath, raw.headers.get('x-witness-request-id'))).toEqual(['ezra'])
  })

  test('without the header, metadata.user_id names the agent, streamed too', async () => {
    const server = await w()
    const client = new Anthropic({ baseURL: server.url, apiKey: 'x', maxRetries: 0 })
    const { data: stream, response } = await client.messages.create({ model: 'claude', max_tokens: 10, messages: ask, metadata: { user_id: 'allegro' }, stream: true }).withResponse()
    for await (const _ of stream) {
      // read to the end
    }
    expect(agentsOf(server.dbPath, response.headers.get('x-witness-request-id'))).toEqual(['allegro'])
  })
})
