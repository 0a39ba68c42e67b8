/**
 * The dashboard's routes over HTTP, without a browser: the page holds no
 * data and is locked without an operator token; the fragments need one;
 * their parameters are checked like the read API's; the page's own files
 * are served, with a CSP that allows nothing from elsewhere.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { hashToken } from '../src/auth/tokens.ts'
import { seed } from './support/seed-requests.ts'
import { type TestWitness, startWitness } from './support/witness.ts'

const OPERATOR = 'operator-token-routes-0123'
const AGENT = 'agent-token-routes-0123'
const providers = { kimi: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' } }
const chains = { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] }
const FRAGMENTS = ['/dashboard/comparison', '/dashboard/series', '/dashboard/log', '/dashboard/story/1', '/dashboard/did-call?agent=ezra&provider=kimi', '/dashboard/deadman', '/dashboard/names']
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

describe('with auth', () => {
  let w: TestWitness
  beforeAll(async () => {
    w = await startWitness({ providers, chains, auth: { agents: { ezra: { token_sha256: hashToken(AGENT) } }, operators: { alexander: { token_sha256: hashToken(OPERATOR) } } } })
    await seed(w.store, [{ agent: 'ezra', at: new Date().toISOString(), rows: [{ provider: 'kimi', status: 'success', latencyMs: 12 }] }])
  })
  afterAll(() => w.stop())

  const page = async (headers: Record<string, string> = {}) => {
    const res = await fetch(`${w.url}/`, { headers })
    return { res, html: await res.text() }
  }

  test('the page holds no data, and is locked (login first) without an operator token', async () => {
    const { res, html } = await page()
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toStartWith('text/html')
    expect(html).toStartWith('<!doctype html>')
    expect(html).toContain('<body class="locked" data-auth="token">')
    expect(html).toContain('id="login-form"')
    for (const data of ['ezra', 'kimi', 'alexander']) expect(html).not.toContain(data)
    expect((await page(bearer(AGENT))).html).toContain('<body class="locked"')
    expect((await page(bearer('wrong-token-0123456789'))).html).toContain('<body class="locked"')
  })

  test('a page request that carries the operator token is not locked', async () => {
    expect((await page(bearer(OPERATOR))).html).toContain('<body class="" data-auth="token">')
  })

  test('every fragment needs an operator token: 401 without one, 403 with an agent token', async () => {
    for (const path of FRAGMENTS) {
      expect([path, (await fetch(`${w.url}${path}`)).status]).toEqual([path, 401])
      expect([path, (await fetch(`${w.url}${path}`, { headers: bearer(AGENT) })).status]).toEqual([path, 403])
      const res = await fetch(`${w.url}${path}`, { headers: bearer(OPERATOR) })
      expect([path, res.status, res.headers.get('content-type'), res.headers.get('cache-control')]).toEqual([path, 200, 'text/html; charset=UTF-8', 'no-store'])
    }
  })
})

describe('open (no auth)', () => {
  let w: TestWitness
  beforeAll(async () => {
    w = await startWitness({ providers, chains })
  })
  afterAll(() => w.stop())

  const error = async (path: string) => {
    const res = await fetch(`${w.url}${path}`)
    const body = (await res.json()) as { error: { type: string; issues?: { path: string }[] } }
    return [res.status, body.error.type, ...(body.error.issues ?? []).map((i) => i.path)]
  }

  test('the page is open, and only scripts, styles and connections to witness itself are allowed', async () => {
    const res = await fetch(`${w.url}/`)
    expect(await res.text()).toContain('<body class="" data-auth="open">')
    const csp = res.headers.get('content-security-policy')!
    expect(csp).toContain("default-src 'none'")
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain("connect-src 'self'")
    expect(csp).toContain("frame-ancestors 'none'")
  })

  test("the page's script is served as plain JavaScript and its stylesheet as CSS, from witness itself", async () => {
    const script = await fetch(`${w.url}/dashboard/app.js`)
    expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    const js = await script.text()
    expect(js).toContain('sessionStorage')
    // Types are gone (a browser could not run them).
    expect(js).not.toMatch(/\): Promise<|: HTMLElement\b/)
    const style = await fetch(`${w.url}/dashboard/style.css`)
    expect(style.headers.get('content-type')).toBe('text/css; charset=utf-8')
    expect(await style.text()).toContain('prefers-color-scheme: dark')
  })

  test('a bad fragment parameter is a 400 naming it; a missing row is a 404', async () => {
    expect(await error('/dashboard/comparison?window=2h')).toEqual([400, 'invalid_request', 'window'])
    expect(await error('/dashboard/series?window=1h&bucket=1m')).toEqual([400, 'invalid_request', 'bucket'])
    expect(await error('/dashboard/log?format=csv')).toEqual([400, 'invalid_request', 'format'])
    expect(await error('/dashboard/log?status=fine')).toEqual([400, 'invalid_request', 'status'])
    expect(await error("/dashboard/log?agent=x'%20OR%201=1")).toEqual([400, 'invalid_request', 'agent'])
    expect(await error('/dashboard/story/abc')).toEqual([400, 'invalid_request', 'id'])
    expect(await error('/dashboard/story/999')).toEqual([404, 'not_found'])
    expect(await error('/dashboard/did-call?agent=ezra')).toEqual([400, 'invalid_request', 'provider'])
  })
})
