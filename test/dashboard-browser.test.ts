/**
 * The dashboard in a real browser (headless Chromium through playwright-core)
 * against a real witness with `auth`, a seeded database and an injected
 * clock: login, the comparison's numbers (computed by hand below), the time
 * series, filters, a request's story, the did-call form, the deadman panel,
 * a phone screen and dark mode; and an unauthenticated visit that gets the
 * login form and no data.
 *
 * `WITNESS_SCREENSHOTS=1 bun test test/dashboard-browser.test.ts` also saves
 * the screenshots in docs/ (shown in the README), of a day of synthetic
 * traffic (bench/fill.ts).
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import type { BrowserContext, Page } from 'playwright-core'
import { fillDatabase } from '../bench/fill.ts'
import { hashToken } from '../src/auth/tokens.ts'
import { launchChromium, chromiumMissing } from './support/browser.ts'
import { type SeedRequest, seed } from './support/seed-requests.ts'
import { tempDir } from './support/temp.ts'
import { type TestWitness, manualClock, startWitness } from './support/witness.ts'

const T0 = Date.parse('2026-11-25T12:00:00.000Z')
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString()
const OPERATOR = 'operator-token-for-the-dashboard'
const EZRA = 'ezra-token-for-the-dashboard'
const SHOTS = process.env.WITNESS_SCREENSHOTS ? join(import.meta.dir, '..', 'docs') : null
const XSS = `<img src=x onerror="document.title='owned'">`

const kimi = { provider: 'kimi', model: 'kimi-k2.5' }
const openrouter = { provider: 'openrouter', model: 'google/gemini-2.5-pro' }
const groq = { provider: 'groq', model: 'llama-3.3-70b' }
const fallbackFromKimi = (why: string) => ({ status: 'fallback' as const, errorMessage: `fallback from kimi/kimi-k2.5: ${why}` })

// Within the last hour: R1-R5. Within 24 h: R6, R7, R9. Within 7 d: R8.
const DATA: SeedRequest[] = [
  { agent: 'ezra', at: at(-50), rows: [{ ...kimi, status: 'success', latencyMs: 100, tokensIn: 1000, tokensOut: 500, responseId: 'kimi-r1' }] },
  { agent: 'ezra', at: at(-40), rows: [{ ...kimi, status: 'success', latencyMs: 300, tokensIn: 2000, tokensOut: 1000, responseId: 'kimi-r2' }] },
  {
    agent: 'bezalel',
    at: at(-30),
    rows: [
      { ...kimi, status: 'error', latencyMs: 5, errorMessage: 'HTTP 503 service unavailable' },
      { ...openrouter, ...fallbackFromKimi('HTTP 503 service unavailable') },
      { ...openrouter, status: 'success', latencyMs: 400, tokensIn: 100, tokensOut: 100, costUsd: 0.01, responseId: 'gen-or-r3' },
    ],
  },
  { agent: 'bezalel', chain: 'fast', at: at(-20), rows: [{ ...groq, status: 'success', latencyMs: 50, tokensIn: 10, tokensOut: 10 }] },
  {
    agent: 'allegro',
    at: at(-10),
    rows: [
      { ...kimi, status: 'timeout', latencyMs: 20_000, errorMessage: 'timeout after 20000 ms' },
      { ...groq, ...fallbackFromKimi('timeout after 20000 ms') },
      { ...groq, status: 'error', latencyMs: 7, errorMessage: 'HTTP 500 internal server error' },
    ],
  },
  { agent: 'ezra', at: at(-180), rows: [{ ...kimi, status: 'success', latencyMs: 200, tokensIn: 500, tokensOut: 500 }] },
  { agent: 'allegro', at: at(-300), rows: [{ ...openrouter, status: 'success', latencyMs: 600, tokensIn: 200, tokensOut: 200, costUsd: 0.02 }] },
  { agent: 'ezra', at: at(-2 * 1440), rows: [{ ...groq, status: 'success', latencyMs: 80 }] },
  { agent: 'allegro', at: at(-120), rows: [{ ...kimi, status: 'error', latencyMs: 9, errorMessage: XSS }] },
]

const config = {
  providers: {
    kimi: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' },
    openrouter: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' },
    groq: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' },
  },
  chains: { default: [kimi, openrouter], fast: [groq] },
  // kimi is priced; openrouter reports its own cost; groq has neither (its cost is unknown).
  pricing: { 'kimi/kimi-k2.5': { input_per_mtok: 1, output_per_mtok: 4 } },
  auth: {
    agents: { ezra: { token_sha256: hashToken(EZRA) } },
    operators: { alexander: { token_sha256: hashToken(OPERATOR) } },
  },
  deadman: { agents: { ezra: { max_silence_s: 300 }, bezalel: { max_silence_s: 60, rollback_command: 'true' } } },
}

// The comparison, by hand. Attempts are success/error/timeout rows; a request counts once, toward
// the provider that served it or else the last one it tried; percentiles are nearest-rank over
// successful attempts; kimi's cost is 1 $/Mtok in + 4 $/Mtok out.
const LAST_24H = {
  // R1, R2, R6 succeed; R3's and R9's errors; R5's timeout. Requests: R1, R2, R6 (served), R9 (failed).
  // Latencies 100, 200, 300. Cost 0.001+0.002 + 0.002+0.004 + 0.0005+0.002 = 0.0115.
  kimi: ['6', '50%', '4', '75%', '200 ms', '300 ms', '3,500', '2,000', '$0.0115', '2'],
  // R3's and R7's successes (reported costs 0.01 + 0.02).
  openrouter: ['2', '100%', '2', '100%', '400 ms', '600 ms', '300', '300', '$0.03', '0'],
  // R4 serves; R5 fails on groq (its last step). No price, no reported cost: unknown.
  groq: ['2', '50%', '2', '50%', '50 ms', '50 ms', '10', '10', '—', '0'],
}
const LAST_1H = {
  kimi: ['4', '50%', '2', '100%', '100 ms', '300 ms', '3,000', '1,500', '$0.009', '2'],
  openrouter: ['1', '100%', '1', '100%', '400 ms', '400 ms', '100', '100', '$0.01', '0'],
  groq: ['2', '50%', '2', '50%', '50 ms', '50 ms', '10', '10', '—', '0'],
}
const COLUMNS = ['attempts', 'success_rate', 'requests', 'request_success_rate', 'p50_ms', 'p95_ms', 'tokens_in', 'tokens_out', 'cost_usd', 'fallbacks_out']

/** Reads `read` until it equals `want` (the page updates asynchronously) or `withinMs` pass; returns the last value. */
async function settled<T>(read: () => Promise<T>, want: T, withinMs = 5000): Promise<T> {
  const deadline = Date.now() + withinMs
  let last = await read()
  while (!Bun.deepEquals(last, want) && Date.now() < deadline) {
    await Bun.sleep(25)
    last = await read()
  }
  return last
}

const comparisonRow = (page: Page, provider: string) =>
  page.$$eval(`#comparison tr[data-provider="${provider}"] td`, (tds, cols) => cols.map((c) => tds.find((td) => td.dataset.col === c)?.textContent ?? null), COLUMNS)
const ranking = (page: Page, id: string) => page.$$eval(`#comparison [data-ranking="${id}"] li`, (lis) => lis.map((li) => li.textContent!.replace(/\s+/g, ' ').trim()))
const logRows = (page: Page) =>
  page.$$eval('#log tbody tr', (trs) => trs.map((tr) => `${tr.querySelector('[data-col=agent]')!.textContent} ${tr.querySelector('[data-col=provider]')!.textContent} ${tr.dataset.status}`))

async function signIn(page: Page, url: string, token = OPERATOR): Promise<void> {
  await page.goto(`${url}/`)
  await page.fill('#login-token', token)
  await page.click('#login-form button[type=submit]')
}

describe.skipIf(chromiumMissing)('the dashboard in a browser', () => {
  let w: TestWitness
  let browser: BrowserContext
  let page: Page
  let ids: number[][]
  const consoleErrors: string[] = []

  beforeAll(async () => {
    const clock = manualClock(T0 - 120_000)
    w = await startWitness(config, { clock })
    ids = await seed(w.store, DATA)
    // Two minutes on: bezalel (watched, never beat) is past its 60 s of silence and is rolled back; ezra beats.
    clock.advance(120_000)
    await w.deadman.checkNow()
    expect((await w.post('/heartbeat', { agent: 'ezra' }, { authorization: `Bearer ${EZRA}` })).status).toBe(200)
    browser = await launchChromium()
    page = await browser.newPage()
    page.on('console', (m) => void (m.type() === 'error' && consoleErrors.push(m.text())))
    page.on('pageerror', (e) => void consoleErrors.push(e.message))
    await signIn(page, w.url)
    await page.waitForSelector('#comparison tr[data-provider="kimi"]')
    await page.waitForSelector('#deadman tr[data-agent="ezra"]')
    await page.waitForSelector('#series svg')
    await page.waitForSelector('#log tbody tr')
  })

  afterAll(async () => {
    await browser?.close()
    await w?.stop()
  })

  test('after signing in with the operator token every panel loads, without a console error', async () => {
    expect(await page.locator('#login').isVisible()).toBe(false)
    for (const panel of ['#comparison', '#series', '#log', '#did-call', '#deadman']) expect(await page.locator(panel).isVisible()).toBe(true)
    expect(await page.evaluate(() => sessionStorage.getItem('witness.operator-token'))).toBe(OPERATOR)
    expect(consoleErrors).toEqual([])
  })

  test('the comparison shows the numbers computed from the rows of the chosen window, and the rankings', async () => {
    for (const [provider, want] of Object.entries(LAST_24H)) expect(await comparisonRow(page, provider)).toEqual(want)
    expect(await ranking(page, 'fastest')).toEqual(['groq 50 ms', 'kimi 200 ms', 'openrouter 400 ms'])
    // By the success of each provider's calls; kimi and groq tie at 50%, kimi served more of its requests.
    expect(await ranking(page, 'most_reliable')).toEqual(['openrouter 100%', 'kimi 50%', 'groq 50%'])
    // USD per million tokens: kimi 0.0115 / 5,500 tokens, openrouter 0.03 / 600; groq's cost is unknown.
    expect(await ranking(page, 'cheapest')).toEqual(['kimi $2.09', 'openrouter $50.00'])

    await page.click('[data-window="1h"]')
    expect(await settled(() => comparisonRow(page, 'kimi'), LAST_1H.kimi)).toEqual(LAST_1H.kimi)
    expect(await comparisonRow(page, 'openrouter')).toEqual(LAST_1H.openrouter)
    expect(await comparisonRow(page, 'groq')).toEqual(LAST_1H.groq)
    // kimi served all its requests, but half its calls failed (a fallback rescued them): 50%, not 100%.
    expect(await ranking(page, 'most_reliable')).toEqual(['openrouter 100%', 'kimi 50%', 'groq 50%'])

    // Seven days take in R8, two days old: groq served it in 80 ms.
    await page.click('[data-window="7d"]')
    const groq7d = ['3', '66.7%', '3', '66.7%', '50 ms', '80 ms', '10', '10', '—', '0']
    expect(await settled(() => comparisonRow(page, 'groq'), groq7d)).toEqual(groq7d)
    await page.click('[data-window="24h"]')
    expect(await settled(() => comparisonRow(page, 'kimi'), LAST_24H.kimi)).toEqual(LAST_24H.kimi)
  })

  test('the time series shows attempts per bucket by status and a latency line per provider', async () => {
    await page.waitForSelector('#series [data-line="kimi p50"]')
    // 24 h in 30-minute buckets: ten attempts. 11:00-11:30 holds R1 and R2; 11:30-12:00 holds R3 (an error,
    // then a success), R4 (a success) and R5 (a timeout, then an error).
    // The last test went back to 24 h: the series may still be redrawing (the comparison is what it waited for).
    const caption = () => page.locator('#series figcaption').first().textContent().then((text) => text?.includes('(30 min buckets, 10 attempts)'))
    expect(await settled(caption, true)).toBe(true)
    expect(await page.locator('#series g[data-bucket="2026-11-25T11:00:00.000Z"] title').textContent()).toBe('11-25 11:00 UTC (30 min): 2 success, 0 error, 0 timeout')
    expect(await page.locator('#series g[data-bucket="2026-11-25T11:30:00.000Z"] title').textContent()).toBe('11-25 11:30 UTC (30 min): 2 success, 2 error, 1 timeout')
    const lines = await page.$$eval('#series [data-line]', (gs) => gs.map((g) => g.getAttribute('data-line')))
    expect(lines).toEqual(['groq p50', 'groq p95', 'kimi p50', 'kimi p95', 'openrouter p50', 'openrouter p95'])
  })

  test('filters narrow the live log by agent, provider and status', async () => {
    // Every row, newest first: bezalel's rollback (written at 12:00) on top.
    expect((await logRows(page))[0]).toBe('bezalel deadman rollback')
    expect(await page.locator('#log tbody tr').count()).toBe(14)

    await page.fill('#log-filter input[name=agent]', 'ezra')
    const ezra = ['ezra kimi success', 'ezra kimi success', 'ezra kimi success', 'ezra groq success']
    expect(await settled(() => logRows(page), ezra)).toEqual(ezra)

    await page.fill('#log-filter input[name=provider]', 'kimi')
    expect(await settled(() => logRows(page), ezra.slice(0, 3))).toEqual(ezra.slice(0, 3))

    await page.fill('#log-filter input[name=agent]', '')
    await page.fill('#log-filter input[name=provider]', '')
    await page.selectOption('#log-filter select[name=status]', 'error')
    const errors = ['allegro groq error', 'bezalel kimi error', 'allegro kimi error']
    expect(await settled(() => logRows(page), errors)).toEqual(errors)

    // A message is text, never markup: the row that carries an <img onerror> shows it as written.
    expect(await page.locator('#log td.message', { hasText: XSS }).count()).toBe(1)
    expect(await page.title()).toBe('witness')

    await page.selectOption('#log-filter select[name=status]', '')
    expect((await settled(() => logRows(page).then((r) => r.length), 14)) as number).toBe(14)
  })

  test("clicking a row opens its request's story: attempts, fallback, who served it, the response id", async () => {
    const [kimiError, fallback, served] = ids[2]!
    await page.click(`#log tr[data-story="${fallback}"]`)
    const story = page.locator('#story[open] .story')
    await story.waitFor()
    expect(await story.locator('[data-served-by]').textContent()).toBe('openrouter')
    expect(await story.locator('[data-response-id]').textContent()).toBe('gen-or-r3')
    expect(await story.locator('.steps > li').evaluateAll((lis) => lis.map((li) => `${li.getAttribute('data-row')} ${li.className}`))).toEqual([
      `${kimiError} step s-error`,
      `${fallback} step s-fallback current`,
      `${served} step s-success`,
    ])
    expect(await story.textContent()).toContain('2 attempts, 1 fallback')
    expect(await story.textContent()).toContain('fallback from kimi/kimi-k2.5: HTTP 503 service unavailable')
    await page.keyboard.press('Escape')
    await page.locator('#story[open]').waitFor({ state: 'detached' })

    // A request that no provider served says so.
    await page.click(`#log tr[data-story="${ids[4]![2]}"]`)
    expect(await page.locator('#story[open] [data-outcome]').textContent()).toBe('failed: no provider served it')
    expect(await page.locator('#story[open] [data-response-id]').textContent()).toBe('—')
    // A click on the backdrop closes it too.
    await page.mouse.click(5, 5)
    await page.locator('#story[open]').waitFor({ state: 'detached' })
  })

  test('the did-call form answers yes and no', async () => {
    const ask = async (agent: string, provider: string, since: string) => {
      await page.fill('#did-call-form input[name=agent]', agent)
      await page.fill('#did-call-form input[name=provider]', provider)
      await page.selectOption('#did-call-form select[name=since]', since)
      const before = await page.locator('#did-call-answer').innerHTML()
      await page.click('#did-call-form button[type=submit]')
      await settled(async () => (await page.locator('#did-call-answer').innerHTML()) !== before && (await page.locator('#did-call-answer .answer').count()) === 1, true)
      const answer = page.locator('#did-call-answer .answer')
      return { called: await answer.getAttribute('data-called'), verdict: await answer.locator('.verdict').textContent(), text: (await answer.textContent())! }
    }
    const yes = await ask('ezra', 'kimi', '24h')
    expect(yes).toMatchObject({ called: 'true', verdict: 'Yes' })
    expect(yes.text).toContain('called provider kimi 3 times since 2026-11-24 12:00:00 UTC (3 success)')
    // allegro's only openrouter call is five hours old.
    expect(await ask('allegro', 'openrouter', '1h')).toMatchObject({ called: 'false', verdict: 'No' })
    expect(await ask('allegro', 'openrouter', '24h')).toMatchObject({ called: 'true', verdict: 'Yes' })
    // ezra never went near openrouter.
    const no = await ask('ezra', 'openrouter', '7d')
    expect(no).toMatchObject({ called: 'false', verdict: 'No' })
    expect(no.text).toContain('made no call to provider openrouter')
  })

  test('the deadman panel shows each watched agent with its last beat, state and last rollback, and the router config', async () => {
    const agent = (name: string, col: string) => page.locator(`#deadman tr[data-agent="${name}"] [data-col="${col}"]`).textContent()
    expect(await agent('ezra', 'state')).toBe('ok')
    expect(await agent('ezra', 'last_beat')).toBe('2026-11-25 12:00:00')
    expect(await agent('ezra', 'last_rollback')).toBe('—')
    expect(await agent('bezalel', 'state')).toBe('rolled back')
    expect(await agent('bezalel', 'last_beat')).toBe('never')
    expect(await agent('bezalel', 'last_rollback')).toContain('2026-11-25 12:00:00: rolled back agent bezalel')
    expect(await page.locator('#deadman [data-config-hash]').getAttribute('title')).toBe(w.config().hash)
    expect(await page.locator('#deadman .router').textContent()).toContain('none yet')
  })

  test('on a phone screen the page fits the width, and dark mode is dark', async () => {
    const phone = await browser.newPage()
    try {
      await phone.setViewportSize({ width: 390, height: 844 })
      await phone.emulateMedia({ colorScheme: 'dark' })
      await signIn(phone, w.url)
      await phone.waitForSelector('#comparison tr[data-provider="kimi"]')
      await phone.waitForSelector('#series svg')
      expect(await phone.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
      // Each chart's axis labels lie wholly inside it (the larger type on a phone cut "100 ms" to "00 ms").
      const cut = await phone.evaluate(() =>
        [...document.querySelectorAll<SVGTextElement>('#series svg text.label')].filter((t) => t.getBBox().x < 0).map((t) => t.textContent),
      )
      expect(await phone.evaluate(() => document.querySelectorAll('#series svg text.label').length)).toBeGreaterThan(3)
      expect(cut).toEqual([])
      const dark = await phone.evaluate(() => [getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color])
      expect(dark).toEqual(['rgb(15, 19, 24)', 'rgb(228, 232, 238)'])
      await phone.emulateMedia({ colorScheme: 'light' })
      expect(await phone.evaluate(() => getComputedStyle(document.body).backgroundColor)).toBe('rgb(246, 247, 249)')
    } finally {
      await phone.close()
    }
  })

  test('the log refreshes itself while "live" is ticked, and holds still while it is not', async () => {
    const top = () => logRows(page).then((rows) => rows[0])
    await seed(w.store, [{ agent: 'latecomer', at: at(0.5), rows: [{ ...groq, status: 'success', latencyMs: 42 }] }])
    expect(await settled(top, 'latecomer groq success', 8000)).toBe('latecomer groq success')

    await page.uncheck('#log-filter input[name=live]')
    await Bun.sleep(800) // the filter form reloads once on any change (debounced 250 ms)
    await seed(w.store, [{ agent: 'straggler', at: at(1), rows: [{ ...groq, status: 'success', latencyMs: 43 }] }])
    await Bun.sleep(6000) // past a refresh that would have happened
    expect(await top()).toBe('latecomer groq success')

    await page.check('#log-filter input[name=live]')
    expect(await settled(top, 'straggler groq success', 8000)).toBe('straggler groq success')
  }, 30_000)

  test('a panel whose answer is slow is not asked again meanwhile, and signing out drops answers still on their way', async () => {
    const tab = await browser.newPage()
    try {
      // Every log answer takes 7 s; the log refreshes every 5 s.
      let inFlight = 0
      let most = 0
      let asked = 0
      await tab.route('**/dashboard/log*', async (route) => {
        asked++
        most = Math.max(most, ++inFlight)
        await Bun.sleep(7000)
        await route.continue().catch(() => {})
        inFlight--
      })
      await signIn(tab, w.url)
      await Bun.sleep(11_000)
      expect(asked).toBeGreaterThanOrEqual(2)
      expect(most).toBe(1)
      await tab.unroute('**/dashboard/log*')

      // A comparison on its way when the operator signs out is not shown after.
      await tab.route('**/dashboard/comparison*', async (route) => {
        await Bun.sleep(1500)
        await route.continue().catch(() => {})
      })
      await tab.click('[data-window="7d"]')
      await Bun.sleep(300)
      await tab.click('#logout')
      await Bun.sleep(2500)
      expect(await tab.evaluate(() => document.body.classList.contains('locked'))).toBe(true)
      expect(await tab.evaluate(() => document.querySelector('#comparison .body')!.innerHTML)).toBe('')
    } finally {
      await tab.close()
    }
  }, 30_000)

  test('no console error or page error came up through all of the above', () => {
    expect(consoleErrors).toEqual([])
  })

  test('an unauthenticated visit gets the login form and no data; a wrong or agent token is refused', async () => {
    const visitor = await browser.newPage()
    try {
      const fragments: string[] = []
      visitor.on('request', (r) => void (new URL(r.url()).pathname.startsWith('/dashboard/') && !/\.(js|css)$/.test(r.url()) && fragments.push(r.url())))
      await visitor.goto(`${w.url}/`)
      await visitor.waitForLoadState('networkidle')
      expect(await visitor.locator('#login').isVisible()).toBe(true)
      expect(await visitor.locator('#dashboard').isVisible()).toBe(false)
      expect(fragments).toEqual([])
      const text = await visitor.evaluate(() => document.body.innerText)
      for (const seen of ['kimi', 'openrouter', 'ezra', 'bezalel', '%']) expect(text).not.toContain(seen)

      // The data itself needs the token.
      const statuses = await visitor.evaluate(() =>
        Promise.all(['/dashboard/comparison', '/dashboard/log', '/dashboard/story/1', '/stats/series', '/requests', '/deadman'].map(async (p) => (await fetch(p)).status)),
      )
      expect(statuses).toEqual([401, 401, 401, 401, 401, 401])

      await signIn(visitor, w.url, 'not-a-token-at-all')
      await visitor.waitForSelector('#login-error:has-text("not recognised")')
      expect(await visitor.locator('#dashboard').isVisible()).toBe(false)
      await signIn(visitor, w.url, EZRA)
      await visitor.waitForSelector('#login-error:has-text("needs an operator token")')
      expect(await visitor.locator('#dashboard').isVisible()).toBe(false)
      expect(await visitor.evaluate(() => document.querySelector('#dashboard')!.textContent)).not.toContain('kimi')
      expect(await visitor.evaluate(() => sessionStorage.getItem('witness.operator-token'))).toBeNull()
    } finally {
      await visitor.close()
    }
  })
})

describe.skipIf(chromiumMissing || !SHOTS)('screenshots for the README', () => {
  test('a day of synthetic traffic: the whole page on a desktop, a story, and a phone in dark mode', async () => {
    const dir = tempDir()
    fillDatabase(join(dir, 'witness.db'), { rows: 20_000, days: 1, endMs: Date.now() })
    // The fill leaves its last calls in flight; a start would finish them as errors ("router stopped"), which is not the picture wanted.
    const db = new Database(join(dir, 'witness.db'))
    db.exec("DELETE FROM request_log_meta WHERE log_id IN (SELECT id FROM request_log WHERE status = 'pending'); DELETE FROM request_log WHERE status = 'pending'")
    db.close()
    const endpoint = (name: string) => ({ type: 'openai', base_url: `http://127.0.0.1:9/${name}/v1` })
    const names = ['kimi', 'openrouter', 'ollama', 'groq', 'mimo', 'runpod']
    const busy = await startWitness(
      { providers: Object.fromEntries(names.map((n) => [n, endpoint(n)])), chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] }, pricing: { 'kimi/kimi-k2.5': { input_per_mtok: 0.6, output_per_mtok: 2.5 } }, deadman: { agents: { bezalel: { max_silence_s: 300 }, ezra: { max_silence_s: 300 } } } },
      { dir },
    )
    const browser = await launchChromium()
    try {
      await busy.post('/heartbeat', { agent: 'bezalel', config_hash: 'a3f9c2d17e4b' })
      const page = await browser.newPage()
      await page.setViewportSize({ width: 1280, height: 1500 })
      await page.goto(`${busy.url}/`)
      await page.waitForSelector('#comparison tr[data-provider="kimi"]')
      await page.waitForSelector('#series [data-line]')
      await page.waitForSelector('#deadman tr[data-agent="bezalel"]')
      await page.screenshot({ path: join(SHOTS!, 'dashboard.png'), fullPage: true })
      await page.selectOption('#log-filter select[name=status]', 'fallback')
      await page.waitForSelector('#log tr[data-status="fallback"]')
      await page.click('#log tr[data-status="fallback"]')
      await page.waitForSelector('#story[open] .story')
      await page.screenshot({ path: join(SHOTS!, 'dashboard-story.png') })

      const phone = await browser.newPage()
      await phone.setViewportSize({ width: 390, height: 844 })
      await phone.emulateMedia({ colorScheme: 'dark' })
      await phone.goto(`${busy.url}/`)
      await phone.waitForSelector('#series [data-line]')
      await phone.screenshot({ path: join(SHOTS!, 'dashboard-phone-dark.png') })
    } finally {
      await browser.close()
      await busy.stop()
    }
  }, 60_000)
})
