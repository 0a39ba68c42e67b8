/**
 * Errors answer in the shape of the API the path belongs to, whichever
 * middleware raised them (open mode's 403/415, auth's 401, a 404 before any
 * route ran): the official SDKs raise their own error classes with the
 * witness type and message inside. Nothing is written or sent upstream.
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { describe, expect, test } from 'bun:test'
import { hashToken } from '../src/auth/tokens.ts'
import { readRows } from './support/rows.ts'
import { useSimulator } from './support/sim-suite.ts'
import { simConfig } from './support/witness.ts'

const suite = useSimulator()
const TOKEN = 'ezra-token-0123456789'
const chains = { default: [{ provider: 'sim', model: 'm' }] }
const ask = [{ role: 'user' as const, content: 'hello' }]
const json = { 'content-type': 'application/json' }
const messageBody = JSON.stringify({ model: 'default', max_tokens: 10, messages: ask })

const open = () => suite.start(simConfig(suite.sim.url, chains))
const guarded = () => suite.start(simConfig(suite.sim.url, chains, { auth: { agents: { ezra: { token_sha256: hashToken(TOKEN) } } } }))

describe('/v1/messages answers every error in the Anthropic shape', () => {
  test('a wrong token: the Anthropic SDK raises AuthenticationError carrying the Anthropic error body', async () => {
    const w = await guarded()
    const client = new Anthropic({ baseURL: w.url, apiKey: 'wit_wrong', maxRetries: 0 })
    const error = await client.messages.create({ model: 'default', max_tokens: 10, messages: ask }).catch((e) => e)
    expect(error).toBeInstanceOf(Anthropic.AuthenticationError)
    expect(error.error).toEqual({ type: 'error', error: { type: 'unauthorized', message: 'the token is not recognised' } })
    expect(error.message).toContain('the token is not recognised')
    // models.list() from the Anthropic SDK (it sends anthropic-version) is refused in its shape too.
    const list = await client.models.list().catch((e) => e)
    expect(list).toBeInstanceOf(Anthropic.AuthenticationError)
    expect(list.error).toMatchObject({ type: 'error', error: { type: 'unauthorized' } })
    expect(readRows(w.dbPath)).toEqual([])
    expect(suite.sim.count()).toBe(0)
  })

  test("open mode's refusals (a foreign Host, a body not sent as JSON) are Anthropic-shaped", async () => {
    const w = await open()
    const port = new URL(w.url).port
    const rebound = new Anthropic({ baseURL: w.url, apiKey: 'x', maxRetries: 0, defaultHeaders: { host: `evil.example:${port}`, 'x-agent-name': 'a' } })
    const forbidden = await rebound.messages.create({ model: 'default', max_tokens: 10, messages: ask }).catch((e) => e)
    expect(forbidden).toBeInstanceOf(Anthropic.PermissionDeniedError)
    expect(forbidden.error).toMatchObject({ type: 'error', error: { type: 'forbidden', message: expect.stringContaining('loopback host names') } })
    const plain = await fetch(`${w.url}/v1/messages`, { method: 'POST', headers: { 'content-type': 'text/plain', 'x-agent-name': 'a' }, body: messageBody })
    expect(plain.status).toBe(415)
    expect(await plain.json()).toEqual({
      type: 'error',
      error: { type: 'unsupported_media_type', message: 'request bodies must be sent as content-type: application/json (got "text/plain")' },
    })
    expect(readRows(w.dbPath)).toEqual([])
    expect(suite.sim.count()).toBe(0)
  })

  test('a path under /v1/messages that witness does not serve is an Anthropic NotFoundError', async () => {
    const w = await open()
    const client = new Anthropic({ baseURL: w.url, apiKey: 'x', maxRetries: 0, defaultHeaders: { 'x-agent-name': 'a' } })
    const error = await client.messages.batches.list().catch((e) => e)
    expect(error).toBeInstanceOf(Anthropic.NotFoundError)
    expect(error.error).toEqual({ type: 'error', error: { type: 'not_found', message: 'no route for GET /v1/messages/batches' } })
    const get = await fetch(`${w.url}/v1/messages`)
    expect(get.status).toBe(404)
    expect(await get.json()).toEqual({ type: 'error', error: { type: 'not_found', message: 'no route for GET /v1/messages' } })
  })
})

describe('/v1/chat/completions and the other /v1 paths answer in the OpenAI shape', () => {
  test("open mode's 415 on /v1/chat/completions carries type and code", async () => {
    const w = await open()
    const res = await fetch(`${w.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'text/plain', 'x-agent-name': 'a' }, body: JSON.stringify({ model: 'default', messages: ask }) })
    expect(res.status).toBe(415)
    expect(await res.json()).toEqual({
      error: { message: 'request bodies must be sent as content-type: application/json (got "text/plain")', type: 'unsupported_media_type', code: 'unsupported_media_type', param: null },
    })
  })

  test('an endpoint witness lacks is an OpenAI NotFoundError with the witness type as its code', async () => {
    const w = await open()
    const client = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: 'x', maxRetries: 0, defaultHeaders: { 'x-agent-name': 'a' } })
    const error = await client.embeddings.create({ model: 'default', input: 'hello' }).catch((e) => e)
    expect(error).toBeInstanceOf(OpenAI.NotFoundError)
    expect(error.code).toBe('not_found')
    expect(error.message).toContain('no route for POST /v1/embeddings')
    // The same unknown path from an Anthropic client (anthropic-version) is Anthropic-shaped.
    const anthropic = await fetch(`${w.url}/v1/complete`, { method: 'POST', headers: { ...json, 'anthropic-version': '2023-06-01' }, body: '{}' })
    expect(await anthropic.json()).toMatchObject({ type: 'error', error: { type: 'not_found' } })
  })

  test('a wrong token on /v1/chat/completions and /v1/models is an OpenAI AuthenticationError with a code', async () => {
    const w = await guarded()
    const client = new OpenAI({ baseURL: `${w.url}/v1`, apiKey: 'wit_wrong', maxRetries: 0 })
    for (const call of [() => client.chat.completions.create({ model: 'default', messages: ask }), () => client.models.list()]) {
      const error = await call().catch((e) => e)
      expect(error).toBeInstanceOf(OpenAI.AuthenticationError)
      expect(error.code).toBe('unauthorized')
      expect(error.message).toContain('the token is not recognised')
    }
  })
})

describe("witness's own paths keep witness's shape", () => {
  test('/v1/infer and unknown paths outside /v1 answer { error: { type, message } } only', async () => {
    const w = await open()
    const plain = await fetch(`${w.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' })
    expect(await plain.json()).toEqual({ error: { type: 'unsupported_media_type', message: 'request bodies must be sent as content-type: application/json (got "text/plain")' } })
    expect(await (await fetch(`${w.url}/nowhere`)).json()).toEqual({ error: { type: 'not_found', message: 'no route for GET /nowhere' } })
  })
})
