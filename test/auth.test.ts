/**
 * Tokens: who may write rows under which agent's name, and who may read
 * what. A real witness with `auth`, a real simulator, a real SQLite file.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promoteLastGood } from '../src/deadman/last-good.ts'
import { hashToken, newToken, ownerOf } from '../src/auth/tokens.ts'
import { parseConfig } from '../src/config.ts'
import { ConfigError } from '../src/errors.ts'
import { serve } from '../src/main.ts'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { readRows } from './support/rows.ts'
import { seedRows } from './support/seed.ts'
import { tempDir } from './support/temp.ts'
import { simConfig, startWitness, type TestWitness } from './support/witness.ts'

const EZRA = 'ezra-token-0123456789'
const BEZALEL = 'bezalel-token-0123456789'
const OPERATOR = 'operator-token-0123456789'
const auth = {
  agents: { ezra: { token_sha256: hashToken(EZRA) }, bezalel: { token_sha256: hashToken(BEZALEL).toUpperCase() } },
  operators: { alexander: { token_sha256: hashToken(OPERATOR) } },
}
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })
const message = [{ role: 'user', content: 'hello there' }]

let sim: Simulator
let w: TestWitness

beforeAll(async () => {
  sim = startSimulator()
  w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { auth }))
})
afterAll(async () => {
  await w.stop(0)
  await sim.stop()
})
beforeEach(() => sim.reset())

async function expectError(res: Response, status: number, type: string) {
  expect(res.status).toBe(status)
  const body = await res.json()
  expect(body.error.type).toBe(type)
  return body.error as { message: string }
}

const get = (path: string, headers: Record<string, string> = {}) => fetch(`${w.url}${path}`, { headers })

describe('tokens', () => {
  test('a token matches the agent or operator holding its hash (hex in any case), and nothing else', () => {
    const config = parseConfig({ ...simConfig('http://127.0.0.1:9', { default: [{ provider: 'sim', model: 'm' }] }), auth })
    expect(ownerOf(EZRA, config.auth!)).toEqual({ kind: 'agent', name: 'ezra' })
    expect(ownerOf(BEZALEL, config.auth!)).toEqual({ kind: 'agent', name: 'bezalel' })
    expect(ownerOf(OPERATOR, config.auth!)).toEqual({ kind: 'operator', name: 'alexander' })
    expect(ownerOf(`${EZRA}x`, config.auth!)).toBeNull()
    expect(ownerOf('', config.auth!)).toBeNull()
  })

  test('new tokens are long, random and URL-safe', () => {
    const a = newToken()
    expect(a).toMatch(/^wit_[A-Za-z0-9_-]{43}$/)
    expect(newToken()).not.toBe(a)
    expect(hashToken(a)).toMatch(/^[0-9a-f]{64}$/)
  })
})

describe('inference with auth', () => {
  test('no token: 401 unauthorized; no row is written and nothing goes upstream', async () => {
    const before = readRows(w.dbPath).length
    const error = await expectError(await w.post('/v1/infer', { agent: 'ezra', messages: message }), 401, 'unauthorized')
    expect(error.message).toContain('Authorization: Bearer')
    expect(readRows(w.dbPath)).toHaveLength(before)
    expect(sim.count()).toBe(0)
  })

  test('a wrong token: 401; nothing is written or called, and the message does not repeat the token', async () => {
    const before = readRows(w.dbPath).length
    const wrong = 'not-a-real-token-5551234'
    for (const headers of [bearer(wrong), { 'x-api-key': wrong }, { authorization: `Basic ${btoa('ezra:x')}` }]) {
      const error = await expectError(await w.post('/v1/infer', { agent: 'ezra', messages: message }, headers), 401, 'unauthorized')
      expect(error.message).not.toContain(wrong)
    }
    expect(readRows(w.dbPath)).toHaveLength(before)
    expect(sim.count()).toBe(0)
  })

  test("the row's agent_name is the token's agent, from a Bearer token or an x-api-key", async () => {
    const res = await w.post('/v1/infer', { messages: message }, bearer(EZRA))
    expect(res.status).toBe(200)
    const viaKey = await w.post('/v1/infer', { agent: 'bezalel', messages: message }, { 'x-api-key': BEZALEL })
    expect(viaKey.status).toBe(200)
    const ids = [res, viaKey].map((r) => Number(r.headers.get('x-witness-log-ids')))
    const rows = readRows(w.dbPath).filter((r) => ids.includes(r.id))
    expect(rows.map((r) => r.agent_name)).toEqual(['ezra', 'bezalel'])
  })

  test('an agent naming another agent in the body or the X-Agent-Name header gets 403 agent_mismatch; nothing is written or called', async () => {
    const before = readRows(w.dbPath).length
    const inBody = await expectError(await w.post('/v1/infer', { agent: 'bezalel', messages: message }, bearer(EZRA)), 403, 'agent_mismatch')
    expect(inBody.message).toBe('the token belongs to agent "ezra" but the "agent" field names agent "bezalel"')
    await expectError(await w.post('/v1/infer', { messages: message }, { ...bearer(EZRA), 'x-agent-name': 'bezalel' }), 403, 'agent_mismatch')
    await expectError(await w.post('/v1/infer', { agent: 'ezra', messages: message }, { ...bearer(EZRA), 'x-agent-name': 'bezalel' }), 403, 'agent_mismatch')
    expect(readRows(w.dbPath)).toHaveLength(before)
    expect(sim.count()).toBe(0)
  })

  test('an operator token cannot make inference calls, and two different tokens in one request are refused', async () => {
    await expectError(await w.post('/v1/infer', { agent: 'ezra', messages: message }, bearer(OPERATOR)), 403, 'forbidden')
    await expectError(await w.post('/v1/infer', { messages: message }, { ...bearer(EZRA), 'x-api-key': BEZALEL }), 401, 'unauthorized')
    expect(sim.count()).toBe(0)
  })

  test('GET /heartbeat stays open', async () => {
    expect((await get('/heartbeat')).status).toBe(200)
  })
})

describe('reads with auth', () => {
  test('read and operator endpoints refuse a missing or wrong token with 401', async () => {
    for (const path of ['/requests', '/requests/1', '/requests/did-call?agent=ezra&provider=sim', '/stats', '/metrics']) {
      await expectError(await get(path), 401, 'unauthorized')
      await expectError(await get(path, bearer('nope-nope-nope')), 401, 'unauthorized')
    }
  })

  test('/metrics needs an operator token: an agent token is 403', async () => {
    await expectError(await get('/metrics', bearer(EZRA)), 403, 'forbidden')
    expect((await get('/metrics', bearer(OPERATOR))).status).toBe(200)
  })

  test("/requests with an agent token and no agent= returns only that agent's rows", async () => {
    await w.post('/v1/infer', { messages: message }, bearer(EZRA))
    await w.post('/v1/infer', { messages: message }, bearer(BEZALEL))
    const mine = await (await get('/requests', bearer(EZRA))).json()
    expect(mine.rows.length).toBeGreaterThan(0)
    expect(new Set(mine.rows.map((r: { agent_name: string }) => r.agent_name))).toEqual(new Set(['ezra']))
    const explicit = await (await get('/requests?agent=ezra', bearer(EZRA))).json()
    expect(explicit.rows).toEqual(mine.rows)
  })

  test("an agent token asking for another agent's rows is 403 (list, export, did-call, stats); another agent's row by id is not there for it (404)", async () => {
    const res = await w.post('/v1/infer', { messages: message }, bearer(BEZALEL))
    const bezalelRow = res.headers.get('x-witness-log-ids')
    for (const path of ['/requests?agent=bezalel', '/requests?agent=bezalel&format=csv', '/requests/did-call?agent=bezalel&provider=sim', '/stats?agent=bezalel']) {
      const error = await expectError(await get(path, bearer(EZRA)), 403, 'forbidden')
      expect(error.message).toContain('may read only its own rows')
    }
    // By id, neither the row's existence nor its agent is told: the same 404 as a row that does not exist.
    const byId = await expectError(await get(`/requests/${bezalelRow}`, bearer(EZRA)), 404, 'not_found')
    expect(byId.message).toBe(`no row with id ${bezalelRow} of agent "ezra"`)
    expect(byId.message).not.toContain('bezalel')
    expect((await get(`/requests/${bezalelRow}`, bearer(BEZALEL))).status).toBe(200)
  })

  test("did-call's never_seen tells an agent token of its own rows alone: not whether another agent ever called the provider", async () => {
    await seedRows(w.dbPath, [{ timestamp: new Date().toISOString(), agent: 'bezalel', provider: 'openrouter' }])
    const ask = async (provider: string, token: string, agent = '') => (await (await get(`/requests/did-call?provider=${provider}&since=1h${agent}`, bearer(token))).json()).never_seen
    // Called by bezalel alone, and called by nobody: the same answer to ezra.
    expect(await ask('openrouter', EZRA)).toEqual(['provider'])
    expect(await ask('nobody-called-it', EZRA)).toEqual(['provider'])
    // The operator sees every agent's rows.
    expect(await ask('openrouter', OPERATOR, '&agent=ezra')).toBeUndefined()
    expect(await ask('nobody-called-it', OPERATOR, '&agent=ezra')).toEqual(['provider'])
  })

  test("an agent's stats cover only its own rows; an operator sees every agent", async () => {
    const operator = await (await get('/stats?by=agent', bearer(OPERATOR))).json()
    expect(operator.groups.map((g: { agent: string }) => g.agent).sort()).toEqual(['bezalel', 'ezra'])
    const agent = await (await get('/stats?by=agent', bearer(EZRA))).json()
    expect(agent.agent).toBe('ezra')
    expect(agent.groups.map((g: { agent: string }) => g.agent)).toEqual(['ezra'])
    const all = await (await get('/requests?limit=1000', bearer(OPERATOR))).json()
    expect(new Set(all.rows.map((r: { agent_name: string }) => r.agent_name))).toEqual(new Set(['ezra', 'bezalel']))
  })
})

describe('auth config and open mode', () => {
  const base = simConfig('http://127.0.0.1:9', { default: [{ provider: 'sim', model: 'm' }] })

  test('without auth, a non-loopback listen address is a config error that says why', () => {
    for (const host of ['0.0.0.0', '192.168.1.20', '::', 'witness.example.com']) {
      let caught: unknown
      try {
        parseConfig({ ...base, listen: { host } })
      } catch (error) {
        caught = error
      }
      expect(caught).toBeInstanceOf(ConfigError)
      const issue = (caught as ConfigError).issues.find((i) => i.path === 'listen.host')
      expect(issue?.message).toContain('without `auth` witness runs open')
    }
    for (const host of ['127.0.0.1', '127.0.0.2', 'localhost', '::1', '[::1]']) expect(() => parseConfig({ ...base, listen: { host } })).not.toThrow()
    expect(parseConfig({ ...base, listen: { host: '0.0.0.0' }, auth }).auth?.agents.ezra).toBeDefined()
  })

  test('serve refuses a non-loopback host given on the command line when the config has no auth', async () => {
    const dir = tempDir()
    const configPath = join(dir, 'witness.yaml')
    writeFileSync(configPath, JSON.stringify({ ...base, database: './w.db' }))
    await expect(serve({ configPath, host: '0.0.0.0', port: 0, log: () => {} })).rejects.toThrow(/given on the command line:\n {2}- --host: "0.0.0.0" is not a loopback address/)
  })

  test('a reload cannot drop auth, on a public address or on loopback (a file caught half-written would open witness unsaid)', async () => {
    const dir = tempDir()
    const configPath = join(dir, 'witness.yaml')
    writeFileSync(configPath, JSON.stringify({ ...base, database: './w.db', auth }))
    const running = await serve({ configPath, host: '0.0.0.0', port: 0, env: {}, jobs: false, background: false, log: () => {} })
    try {
      const before = running.config().hash
      writeFileSync(configPath, JSON.stringify({ ...base, database: './w.db' }))
      let caught: unknown
      try {
        running.reload()
      } catch (error) {
        caught = error
      }
      expect((caught as ConfigError).message).toContain('config reload refused')
      expect((caught as { details?: { issues: { path: string; message: string }[] } }).details?.issues).toEqual([
        { path: 'auth', message: expect.stringContaining('witness listens on "0.0.0.0", which is not a loopback address, and a reload cannot move the socket') },
      ])
      expect(running.config().hash).toBe(before)
      expect(running.config().auth).not.toBeNull()
    } finally {
      await running.stop(0)
    }
    writeFileSync(configPath, JSON.stringify({ ...base, database: './w.db', auth }))
    const loopback = await serve({ configPath, host: '127.0.0.1', port: 0, env: {}, jobs: false, background: false, log: () => {} })
    try {
      writeFileSync(configPath, JSON.stringify({ ...base, database: './w.db' }))
      expect(() => loopback.reload()).toThrow('a reload does not open witness')
      expect(loopback.config().auth).not.toBeNull()
      // Tokens still come and go by reload.
      writeFileSync(configPath, JSON.stringify({ ...base, database: './w.db', auth: { operators: auth.operators } }))
      expect(loopback.reload().status).toBe('reloaded')
      // The last known good without auth (it ran open, and proved itself) is taken: the watchdog's rollback to it.
      const open = new TextEncoder().encode(JSON.stringify({ ...base, database: './w.db' }))
      promoteLastGood(configPath, open)
      writeFileSync(configPath, open)
      expect(loopback.reload().status).toBe('reloaded')
      expect(loopback.config().auth).toBeNull()
    } finally {
      await loopback.stop(0)
    }
  })

  test('open mode answers only loopback host names, only JSON bodies (no cross-site simple POST), and no write a page of another site sends', async () => {
    const open = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    try {
      const port = new URL(open.url).port
      // DNS rebinding: a page's own host name pointed at 127.0.0.1.
      const rebound = await fetch(`${open.url}/requests`, { headers: { host: `evil.example:${port}` } })
      expect(rebound.status).toBe(403)
      expect((await rebound.json()).error.type).toBe('forbidden')
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`]) {
        expect((await fetch(`${open.url}/requests`, { headers: { host } })).status).toBe(200)
      }
      // The bodies a page may POST cross-site without a preflight: none is taken, none is logged.
      const body = JSON.stringify({ agent: 'a', messages: message })
      for (const type of ['text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', null]) {
        const res = await fetch(`${open.url}/v1/infer`, { method: 'POST', headers: type ? { 'content-type': type } : {}, body: type ? body : new Blob([body]) })
        expect(res.status).toBe(415)
        expect((await res.json()).error).toMatchObject({ type: 'unsupported_media_type', message: expect.stringContaining('application/json') })
      }
      expect(readRows(open.dbPath)).toEqual([])
      // A page of another site posting with no body at all (an empty form): refused by its Origin or Sec-Fetch-Site.
      // A page of a local dev server (loopback, another port) is another site too.
      const local = [{ origin: 'http://localhost:3000', 'sec-fetch-site': 'same-site' }, { origin: 'http://127.0.0.1:3000' }, { 'sec-fetch-site': 'same-site' }]
      for (const headers of [{ origin: 'https://evil.example' }, { origin: 'null' }, { 'sec-fetch-site': 'cross-site' }, ...local] as Record<string, string>[]) {
        const res = await fetch(`${open.url}/admin/reload`, { method: 'POST', headers })
        expect(res.status).toBe(403)
      }
      expect((await fetch(`${open.url}/admin/reload`, { method: 'POST', headers: { origin: `http://127.0.0.1:${port}` } })).status).toBe(200)
      expect((await fetch(`${open.url}/admin/reload`, { method: 'POST' })).status).toBe(200)
      expect((await open.infer({ agent: 'a', messages: message })).status).toBe(200)
      expect((await fetch(`${open.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-8' }, body })).status).toBe(200)
    } finally {
      await open.stop(0)
    }
  })

  test('with auth, tokens decide: any host name and content type reach the routes', async () => {
    const res = await fetch(`${w.url}/v1/infer`, { method: 'POST', headers: { ...bearer(EZRA), host: 'witness.fleet.internal', 'content-type': 'text/plain' }, body: JSON.stringify({ messages: message }) })
    expect(res.status).toBe(200)
  })

  test("with auth, a write a browser sends from another site's page is refused though a proxy added the token; the same page's own origin is not", async () => {
    // What a page of evil.example makes a browser send through a proxy that adds the operator's token.
    const page = (headers: Record<string, string>) => fetch(`${w.url}/admin/reload`, { method: 'POST', headers: { ...bearer(OPERATOR), host: 'witness.fleet.internal', ...headers } })
    await expectError(await page({ origin: 'https://evil.example', 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' }), 403, 'forbidden')
    await expectError(await page({ origin: 'null' }), 403, 'forbidden')
    await expectError(await page({ 'sec-fetch-site': 'same-site' }), 403, 'forbidden')
    await expectError(await page({ origin: 'https://witness.fleet.internal.evil.example' }), 403, 'forbidden')
    const rollback = await fetch(`${w.url}/deadman/rollback`, { method: 'POST', headers: { ...bearer(OPERATOR), origin: 'https://evil.example', 'content-type': 'text/plain' }, body: JSON.stringify({ agent: 'ezra', from_config_hash: 'a', to_config_hash: 'b', result: 'applied' }) })
    await expectError(rollback, 403, 'forbidden')
    // Reads are not writes, and a write from witness's own origin (or from no browser at all) goes on.
    expect((await fetch(`${w.url}/requests`, { headers: { ...bearer(OPERATOR), origin: 'https://evil.example' } })).status).toBe(200)
    expect((await page({ origin: 'https://witness.fleet.internal', 'sec-fetch-site': 'same-origin' })).status).toBe(200)
    expect((await page({})).status).toBe(200)
  })

  test('token hashes must be 64 hex digits, and no two principals may share one', () => {
    let caught: ConfigError | undefined
    try {
      parseConfig({ ...base, auth: { agents: { ezra: { token_sha256: 'abc' }, 'bad name': { token_sha256: hashToken('x') } }, operators: { op: { token_sha256: hashToken(EZRA) } } } })
    } catch (error) {
      caught = error as ConfigError
    }
    expect(caught?.issues.map((i) => i.path)).toEqual(['auth.agents.ezra.token_sha256', 'auth.agents.bad name'])
    try {
      parseConfig({ ...base, auth: { agents: { ezra: { token_sha256: hashToken(EZRA) } }, operators: { op: { token_sha256: hashToken(EZRA) } } } })
    } catch (error) {
      caught = error as ConfigError
    }
    expect(caught?.issues).toEqual([{ path: 'auth.operators.op.token_sha256', message: 'same token hash as auth.agents.ezra; every agent and operator needs its own token' }])
  })

  test("no agent may bear the router's own name (deadman.name), under which its rollbacks are written: it would read them and beat as the router", () => {
    const issuesOf = (config: Record<string, unknown>) => {
      try {
        parseConfig(config)
      } catch (error) {
        return (error as ConfigError).issues
      }
      return []
    }
    const message = "is the router's own name (deadman.name), under which its rollbacks are written: give the agent another name, or the router another deadman.name"
    expect(issuesOf({ ...base, auth: { agents: { witness: { token_sha256: hashToken(EZRA) } } } })).toEqual([{ path: 'auth.agents.witness', message }])
    expect(issuesOf({ ...base, deadman: { name: 'forge-router' }, auth: { agents: { 'forge-router': { token_sha256: hashToken(EZRA) } } } })).toEqual([{ path: 'auth.agents.forge-router', message }])
    expect(issuesOf({ ...base, deadman: { name: 'forge-router' }, auth: { agents: { witness: { token_sha256: hashToken(EZRA) } } } })).toEqual([])
    // Nor may a watched agent (in open mode callers name themselves, but the config need not).
    expect(issuesOf({ ...base, deadman: { agents: { witness: { max_silence_s: 60 } } } })).toEqual([
      { path: 'deadman.agents.witness', message: "is the router's own name (deadman.name), under which its rollbacks are written: watch the agent under another name, or give the router another deadman.name" },
    ])
  })
})

describe('the deadman routes under auth', () => {
  test("POST /heartbeat takes the agent's own token and names the token's agent; another agent's name is 403", async () => {
    await expectError(await w.post('/heartbeat', { agent: 'ezra' }), 401, 'unauthorized')
    const ok = await w.post('/heartbeat', { config_hash: 'abc' }, bearer(EZRA))
    expect(ok.status).toBe(200)
    expect((await ok.json()).agent).toBe('ezra')
    await expectError(await w.post('/heartbeat', { agent: 'bezalel' }, bearer(EZRA)), 403, 'agent_mismatch')
    await expectError(await w.post('/heartbeat', { agent: 'ezra' }, bearer(OPERATOR)), 403, 'forbidden')
  })

  test('GET /deadman, POST /deadman/rollback and POST /admin/reload need an operator token', async () => {
    const rollback = { agent: 'ezra', old_config_hash: 'a', new_config_hash: 'b', reason: 'drill' }
    const rows = readRows(w.dbPath).length
    await expectError(await get('/deadman'), 401, 'unauthorized')
    await expectError(await get('/deadman', bearer(EZRA)), 403, 'forbidden')
    await expectError(await w.post('/deadman/rollback', rollback), 401, 'unauthorized')
    await expectError(await w.post('/deadman/rollback', rollback, bearer(EZRA)), 403, 'forbidden')
    await expectError(await w.post('/admin/reload', {}, bearer(BEZALEL)), 403, 'forbidden')
    expect(readRows(w.dbPath)).toHaveLength(rows) // nobody but an operator could write a rollback row
    expect((await get('/deadman', bearer(OPERATOR))).status).toBe(200)
    const recorded = await w.post('/deadman/rollback', rollback, bearer(OPERATOR))
    expect(recorded.status).toBe(201)
    expect(readRows(w.dbPath).at(-1)).toMatchObject({ status: 'rollback', provider: 'deadman', agent_name: 'ezra' })
    expect((await w.post('/admin/reload', {}, bearer(OPERATOR))).status).toBe(200)
  })
})
