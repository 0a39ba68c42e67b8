/**
 * The dashboard's routes over HTTP, without a browser: the page holds no
 * data and is locked without an operator token; the fragments need one;
 * their parameters are checked like the read API's; the page's own files
 * are served, with a CSP that allows nothing from elsewhere.
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { hashToken } from '../src/auth/tokens.ts'
import { runArchive } from '../src/retention/archive-job.ts'
import { seedRows } from './support/seed.ts'
import { seed } from './support/seed-requests.ts'
import { tempDir } from './support/temp.ts'
import { type TestWitness, manualClock, startWitness } from './support/witness.ts'

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
    // Submitted before its script ran (or without it), the sign-in form must not put the token in a URL:
    // it posts, and its field has no name (so it is not sent at all).
    const form = /<form id="login-form"[^>]*>[\s\S]*?<\/form>/.exec(html)?.[0] ?? ''
    expect(form).toContain('method="post"')
    expect(form).toContain('type="password"')
    expect(form).not.toMatch(/\sname=/)
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
    expect(res.headers.get('x-frame-options')).toBe('DENY')
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
    // The fragments that take no parameter refuse one, as the others refuse an unknown one.
    expect(await error('/dashboard/deadman?x=1')).toEqual([400, 'invalid_request', 'x'])
    expect(await error('/dashboard/names?agent=ezra')).toEqual([400, 'invalid_request', 'agent'])
    expect(await error('/dashboard/story/1?archives=1')).toEqual([400, 'invalid_request', 'archives'])
    expect(await error('/dashboard/story/999')).toEqual([404, 'not_found'])
    expect(await error('/dashboard/did-call?agent=ezra')).toEqual([400, 'invalid_request', 'provider'])
  })
})

describe('what the panels read', () => {
  const NOW = Date.parse('2026-11-25T12:00:00.000Z')
  const DAY = 86_400_000
  const html = async (w: TestWitness, path: string) => {
    const res = await fetch(`${w.url}${path}`)
    expect([path, res.status]).toEqual([path, 200])
    return res.text()
  }

  test('a window reaching past keep_days reads the archives too: did-call, the comparison and the series see archived calls', async () => {
    // ravi called kimi 3, 5 and 10 days ago (archived with keep_days 2), and claude an hour ago (live).
    const dir = tempDir()
    const livePath = join(dir, 'witness.db')
    const old = [3, 5, 10].map((days) => ({ timestamp: new Date(NOW - days * DAY).toISOString(), agent: 'ravi', provider: 'kimi' }))
    await seedRows(livePath, [...old, { timestamp: new Date(NOW - 3_600_000).toISOString(), agent: 'ravi', provider: 'claude' }])
    const retention = { keepDays: 2, archiveDir: join(dir, 'archive'), archiveKeepDays: 0, maxDbMb: 512 }
    await runArchive({ livePath, retention, syncConfigured: false, now: () => NOW })
    const w = await startWitness(
      { providers: { kimi: {}, claude: { type: 'anthropic', base_url: 'http://127.0.0.1:9' } }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] }, retention: { keep_days: 2, archive_dir: './archive' } },
      { dir, clock: manualClock(NOW) },
    )
    try {
      expect(new Database(livePath, { readonly: true }).query('SELECT count(*) AS n FROM request_log').get()).toEqual({ n: 1 })
      expect(await html(w, '/dashboard/did-call?agent=ravi&provider=kimi&since=7d')).toContain('<p class="verdict">Yes</p>')
      // Within keep_days the live file alone answers (and says No: the calls are older).
      expect(await html(w, '/dashboard/did-call?agent=ravi&provider=kimi&since=1d')).toContain('<p class="verdict">No</p>')
      const week = await html(w, '/dashboard/comparison?window=7d')
      expect(week).toContain('data-provider="kimi"')
      expect(week).toContain('data-provider="claude"')
      expect(await html(w, '/dashboard/series?window=7d')).toContain('(2 h buckets, 3 attempts)')
    } finally {
      await w.stop()
    }
  })

  test('a provider every request skipped (no API key) still has a row in the comparison, with its fallbacks out', async () => {
    const w = await startWitness({ providers: { kimi: {}, claude: { type: 'anthropic', base_url: 'http://127.0.0.1:9' } }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] } }, { clock: manualClock(NOW) })
    try {
      const skipped = { provider: 'claude', status: 'fallback' as const, errorMessage: 'fallback from kimi/kimi-k2.5: skipped, API key KIMI_KEY is not set' }
      await seed(w.store, [1, 2, 3].map((m) => ({ agent: 'ezra', at: new Date(NOW - m * 60_000).toISOString(), rows: [skipped, { provider: 'claude', status: 'success' as const, latencyMs: 40 }] })))
      const page = await html(w, '/dashboard/comparison?window=1h')
      const row = (provider: string) => [...page.matchAll(new RegExp(`<tr data-provider="${provider}">(.*?)</tr>`, 'g'))].map((m) => [...m[1]!.matchAll(/data-col="(\w+)">([^<]*)</g)].map((c) => `${c[1]}=${c[2]}`))
      expect(row('kimi')).toEqual([['attempts=0', 'success_rate=—', 'requests=—', 'request_success_rate=—', 'p50_ms=—', 'p95_ms=—', 'tokens_in=—', 'tokens_out=—', 'cost_usd=—', 'fallbacks_out=3']])
      expect(row('claude')[0]).toContain('attempts=3')
    } finally {
      await w.stop()
    }
  })

  test("a request's story counts only moves as fallbacks: a last step skipped with nowhere to go says so, not 'moved to'", async () => {
    const w = await startWitness({ providers: { kimi: {}, mimo: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] } }, { clock: manualClock(NOW) })
    try {
      await seed(w.store, [
        {
          agent: 'ezra',
          at: new Date(NOW - 60_000).toISOString(),
          rows: [
            { provider: 'kimi', status: 'timeout' as const, latencyMs: 300, errorMessage: 'timeout after 300 ms' },
            { provider: 'mimo', status: 'fallback' as const, errorMessage: 'fallback from kimi/kimi-k2.5: timeout after 300 ms' },
            { provider: 'mimo', status: 'fallback' as const, errorMessage: 'skipped mimo/mimo-v2: API key MIMO_API_KEY is not set; no further step' },
          ],
        },
      ])
      const page = await html(w, '/dashboard/story/1')
      expect(page).toContain('1 attempt, 1 fallback')
      expect([...page.matchAll(/<div class="detail"><span>([^<]*)<\/span>/g)].map((m) => m[1])).toEqual(['300 ms', 'moved to mimo', 'mimo skipped, no further step'])
    } finally {
      await w.stop()
    }
  })

  test('the bucket still running is drawn at its rate so far, not spread over the whole bucket', async () => {
    // 30 calls in the last minute of a 2 h bucket that began 37 minutes ago.
    const now = Date.parse('2026-11-25T12:37:00.000Z')
    const w = await startWitness({ providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] } }, { clock: manualClock(now) })
    try {
      await seed(w.store, Array.from({ length: 30 }, (_, i) => ({ agent: 'ezra', at: new Date(now - 60_000 + i * 1000).toISOString(), rows: [{ provider: 'kimi', status: 'success' as const, latencyMs: 5 }] })))
      const page = await html(w, '/dashboard/series?window=7d')
      expect(page).toContain('11-25 12:00 UTC (2 h, 37 min of it in the window): 30 success, 0 error, 0 timeout')
      // 30 over the 37 minutes covered: 0.81 a minute, read off the bar against the axis (its top label, 162 px up).
      const top = Number(/<text class="label" x="76" y="16" text-anchor="end">([\d.]+)<\/text>/.exec(page)![1])
      const height = Number(/<rect class="s-success" [^>]*height="([\d.]+)"/.exec(page)![1])
      expect((height / 162) * top).toBeCloseTo(30 / 37, 2)
    } finally {
      await w.stop()
    }
  })
})
