/**
 * Reading across the live database and the monthly archives: `archives=1`
 * on /requests (pages, cursors, exports), /requests/:id, did-call and
 * /stats, and `--archives` on the read commands. Rows are written by the
 * real store and moved by the real archive job into real (some compressed)
 * archive files.
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { hashToken } from '../src/auth/tokens.ts'
import type { RetentionSettings } from '../src/config.ts'
import { type ArchiveJobOptions, runArchive } from '../src/retention/archive-job.ts'
import { recordedArchiveMonths } from '../src/retention/archive-months.ts'
import { type ReadPeriod, archivesReached, openReadSources } from '../src/retention/read-sources.ts'
import { LOG_COLUMNS, type LogRow, newestFirst } from '../src/telemetry/queries.ts'
import { BUN, ROOT } from './support/process.ts'
import { type SeedRow, daysAgo, everyRow, seedRows } from './support/seed.ts'
import { tempDir } from './support/temp.ts'
import { manualClock, startWitness, type TestWitness } from './support/witness.ts'

const NOW = Date.parse('2026-11-25T12:00:00.000Z')
const DAY = 86_400_000
const CUTOFF = NOW - 30 * DAY
const EZRA = 'ezra-token-0123456789'
const OPERATOR = 'operator-token-0123456789'
const auth = {
  agents: { ezra: { token_sha256: hashToken(EZRA) }, bezalel: { token_sha256: hashToken('bezalel-token-0123456789') } },
  operators: { alexander: { token_sha256: hashToken(OPERATOR) } },
}
const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

interface Seeded extends SeedRow {
  id: number
}

/** A database in a temp dir with `rows` written, then the archive job run as of NOW (keep_days 30). */
async function archivedDir(rows: SeedRow[], job: Partial<ArchiveJobOptions> = {}) {
  const dir = tempDir()
  const livePath = join(dir, 'witness.db')
  const retention: RetentionSettings = { keepDays: 30, archiveDir: join(dir, 'archive'), archiveKeepDays: 0, maxDbMb: 512 }
  const ids = await seedRows(livePath, rows)
  const seeded: Seeded[] = rows.map((row, i) => ({ ...row, id: ids[i]! }))
  await runArchive({ livePath, retention, syncConfigured: false, now: () => NOW, ...job }).catch((error: Error) => {
    if (error.message !== 'killed') throw error
  })
  const files = () => readdirSync(retention.archiveDir).filter((n) => n.startsWith('request_log-') && !n.endsWith('-journal')).sort()
  return { dir, livePath, archiveDir: retention.archiveDir, seeded, files }
}

/** Starts a witness (with `auth`) on a prepared dir whose config names the archive dir. */
function witnessOn(dir: string): Promise<TestWitness> {
  return startWitness(
    { providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] }, retention: { archive_dir: './archive' }, auth },
    { dir, clock: manualClock(NOW) },
  )
}

/** Ids of `rows`, newest first (by timestamp, then id). */
const newestIds = (rows: Seeded[]) => [...rows].sort(newestFirst).map((r) => r.id)
const isLive = (r: Seeded) => Date.parse(r.timestamp) >= CUTOFF

// 40 calls every 3 days from 119 days back to 2 days back (oldest first), two agents, two providers, some errors;
// allegro's calls to mimo, all archived; and one request whose first try is archived and whose second is still live.
const OTHERS: SeedRow[] = [
  { timestamp: daysAgo(NOW, 50), agent: 'allegro', provider: 'mimo', status: 'success' },
  { timestamp: daysAgo(NOW, 80), agent: 'allegro', provider: 'mimo', status: 'timeout' },
  { timestamp: new Date(CUTOFF - 1000).toISOString(), agent: 'ezra', provider: 'kimi', status: 'error', requestId: 'req-straddle', seq: 1 },
  { timestamp: new Date(CUTOFF + 1000).toISOString(), agent: 'ezra', provider: 'groq', status: 'success', requestId: 'req-straddle', seq: 2 },
]
const ROWS: SeedRow[] = [
  ...Array.from({ length: 40 }, (_, n): SeedRow => {
    const i = 39 - n
    return { timestamp: daysAgo(NOW, 2 + i * 3), agent: i % 2 ? 'bezalel' : 'ezra', provider: i % 3 === 0 ? 'groq' : 'kimi', status: i % 5 === 4 ? 'error' : 'success' }
  }),
  ...OTHERS,
].sort((a, b) => a.timestamp.localeCompare(b.timestamp))

let t: Awaited<ReturnType<typeof archivedDir>>
let w: TestWitness

beforeAll(async () => {
  t = await archivedDir(ROWS)
  w = await witnessOn(t.dir)
})
afterAll(async () => {
  await w.stop(0)
})

async function get(path: string, token = OPERATOR): Promise<Response> {
  return fetch(`${w.url}${path}`, { headers: bearer(token) })
}
async function list(query: string, token = OPERATOR): Promise<{ rows: LogRow[]; next_cursor: string | null }> {
  const res = await get(`/requests${query}`, token)
  expect(res.status).toBe(200)
  return res.json()
}
async function allPages(query: string, token = OPERATOR): Promise<{ ids: number[]; pages: number }> {
  const ids: number[] = []
  let cursor: string | null = null
  let pages = 0
  do {
    const page = await list(`${query}${cursor ? `&cursor=${cursor}` : ''}`, token)
    ids.push(...page.rows.map((r) => r.id))
    cursor = page.next_cursor
    pages++
  } while (cursor)
  return { ids, pages }
}

/** Open files of this process (the server runs in it) that lie in `dir` (Linux /proc; [] elsewhere). */
function openFilesIn(dir: string): string[] {
  if (!existsSync('/proc/self/fd')) return []
  const out: string[] = []
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`)
      if (target.startsWith(dir)) out.push(target)
    } catch {
      // closed while listing
    }
  }
  return out
}

describe('the data set', () => {
  test('old rows are in monthly archives, closed months compressed, and the live file keeps the last 30 days', () => {
    const files = t.files()
    expect(files.filter((f) => f.endsWith('.db.zst')).length).toBeGreaterThanOrEqual(3)
    expect(files).toContain('request_log-2026-10.db')
    const where = new Map(everyRow(t.livePath, t.archiveDir).map((r) => [r.row.id, r.where]))
    for (const row of t.seeded) expect(where.get(row.id) === 'live', row.timestamp).toBe(isLive(row))
  })
})

describe('which archive files a read opens', () => {
  test('only the months overlapping [since, until), bounded by a cursor too; none without archives; all without since', async () => {
    const live = new Database(t.livePath, { readonly: true })
    const months = async (archiveDir: string | null, period: ReadPeriod) => {
      const sources = await openReadSources(live, archiveDir, period)
      const names = sources.archives.map((db) => (db.query("SELECT min(timestamp) AS t FROM request_log").get() as { t: string }).t.slice(0, 7))
      expect(sources.dbs[0]).toBe(live)
      sources.close()
      return names
    }
    try {
      expect(await months(t.archiveDir, {})).toEqual(['2026-10', '2026-09', '2026-08', '2026-07'])
      expect(await months(null, {})).toEqual([])
      expect(await months(t.archiveDir, { since: '2026-09-01T00:00:00.000Z', until: '2026-10-01T00:00:00.000Z' })).toEqual(['2026-09'])
      expect(await months(t.archiveDir, { since: '2026-08-31T23:59:59.999Z', until: '2026-10-01T00:00:00.001Z' })).toEqual(['2026-10', '2026-09', '2026-08'])
      expect(await months(t.archiveDir, { before: { timestamp: '2026-08-15T00:00:00.000Z', id: 5 } })).toEqual(['2026-08', '2026-07'])
      expect(await months(t.archiveDir, { since: '2026-11-01T00:00:00.000Z' })).toEqual([])
    } finally {
      live.close()
    }
  })
})

describe('GET /requests with archives=1', () => {
  test('without archives=1 only live rows are returned; with it, every row of the period from the live file and the archives', async () => {
    const since = NOW - 60 * DAY
    const inPeriod = t.seeded.filter((r) => Date.parse(r.timestamp) >= since)
    expect(inPeriod.some((r) => !isLive(r))).toBe(true)
    expect((await list('?since=60d&limit=1000')).rows.map((r) => r.id)).toEqual(newestIds(inPeriod.filter(isLive)))
    const both = await list('?since=60d&limit=1000&archives=1')
    expect(both.rows.map((r) => r.id)).toEqual(newestIds(inPeriod))
    expect(Object.keys(both.rows[0]!)).toEqual([...LOG_COLUMNS])
    expect((await list('?since=60d&limit=1000&archives=0')).rows.map((r) => r.id)).toEqual(newestIds(inPeriod.filter(isLive)))
  })

  test('a period wholly in the past is answered from compressed months, with filters applied in each file', async () => {
    const [from, to] = [NOW - 100 * DAY, NOW - 40 * DAY]
    const query = `since=${new Date(from).toISOString()}&until=${new Date(to).toISOString()}`
    const inPeriod = t.seeded.filter((r) => Date.parse(r.timestamp) >= from && Date.parse(r.timestamp) < to)
    expect(inPeriod.length).toBeGreaterThan(10)
    expect((await list(`?${query}`)).rows).toEqual([])
    // The server decompresses a month to the cache itself when no fresh copy is there.
    rmSync(join(t.archiveDir, '.cache'), { recursive: true, force: true })
    expect((await list(`?${query}&archives=1`)).rows.map((r) => r.id)).toEqual(newestIds(inPeriod))
    expect(readdirSync(join(t.archiveDir, '.cache')).sort()).toEqual(['request_log-2026-08.db', 'request_log-2026-09.db'])
    expect(readdirSync(t.archiveDir).filter((n) => n.endsWith('.tmp'))).toEqual([])
    const ezraErrors = inPeriod.filter((r) => r.agent === 'ezra' && r.status === 'error')
    expect(ezraErrors.length).toBeGreaterThan(0)
    expect((await list(`?${query}&archives=1&agent=ezra&status=error`)).rows.map((r) => r.id)).toEqual(newestIds(ezraErrors))
    expect((await list(`?${query}&archives=1&provider=groq&model=kimi-k2.5`)).rows.map((r) => r.id)).toEqual(newestIds(inPeriod.filter((r) => r.provider === 'groq')))
  })

  test('pages with cursors crossing the live/archive boundary return every row exactly once, newest first', async () => {
    const everything = await allPages('?limit=3&archives=1')
    expect(everything.ids).toEqual(newestIds(t.seeded))
    expect(everything.pages).toBe(Math.ceil(t.seeded.length / 3))
    const ezra = await allPages('?limit=4&archives=1&agent=ezra&since=90d')
    expect(ezra.ids).toEqual(newestIds(t.seeded.filter((r) => r.agent === 'ezra' && Date.parse(r.timestamp) >= NOW - 90 * DAY)))
    // A cursor from a page without archives, used with them, goes on into the archives.
    const live = await list('?limit=1000')
    const last = live.rows.at(-1)!
    const key = Buffer.from(`${last.timestamp}/${last.id}`).toString('base64url')
    expect((await list(`?limit=1000&archives=1&cursor=${key}`)).rows.map((r) => r.id)).toEqual(newestIds(t.seeded.filter((r) => !isLive(r))))
  })

  test('format=ndjson and format=csv with archives=1 stream the same rows as the pages', async () => {
    const pages = (await list('?archives=1&limit=1000&since=80d')).rows
    expect(pages.some((r) => Date.parse(r.timestamp) < CUTOFF)).toBe(true)
    const ndjson = await (await get('/requests?archives=1&since=80d&format=ndjson')).text()
    expect(ndjson.trimEnd().split('\n').map((l) => JSON.parse(l))).toEqual(pages)
    const csv = (await (await get('/requests?archives=1&since=80d&format=csv')).text()).trimEnd().split('\r\n')
    expect(csv[0]).toBe(LOG_COLUMNS.join(','))
    expect(csv.slice(1).map((l) => Number(l.split(',')[0]))).toEqual(pages.map((r) => r.id))
    const limited = await (await get('/requests?archives=1&format=ndjson&limit=5&status=error')).text()
    expect(limited.trimEnd().split('\n').map((l) => JSON.parse(l).id)).toEqual(newestIds(t.seeded.filter((r) => r.status === 'error')).slice(0, 5))
  })

  test('an agent token sees only its own rows in the archives too: asking for another agent is 403, another agent\'s row by id is not there (404)', async () => {
    const mine = await allPages('?limit=7&archives=1', EZRA)
    expect(mine.ids).toEqual(newestIds(t.seeded.filter((r) => r.agent === 'ezra')))
    expect((await get('/requests?archives=1&agent=bezalel', EZRA)).status).toBe(403)
    const bezalelOld = t.seeded.find((r) => r.agent === 'bezalel' && !isLive(r))!
    expect((await get(`/requests/${bezalelOld.id}?archives=1`, EZRA)).status).toBe(404)
    expect((await get('/requests/did-call?agent=bezalel&provider=kimi&since=200d&archives=1', EZRA)).status).toBe(403)
    const stats = await (await get('/stats?since=200d&archives=1&by=agent', EZRA)).json()
    expect(stats.groups.map((g: { agent: string }) => g.agent)).toEqual(['ezra'])
  })

  test('archive files are closed after each request, a streamed export included', async () => {
    // Checked right after each answer (an unreferenced handle would only be closed by the garbage collector, later).
    await list('?archives=1&limit=2')
    expect(openFilesIn(t.archiveDir)).toEqual([])
    await (await get('/requests?archives=1&format=csv')).text()
    expect(openFilesIn(t.archiveDir)).toEqual([])
    await (await get('/stats?since=200d&archives=1')).json()
    expect(openFilesIn(t.archiveDir)).toEqual([])
    await (await get('/requests/did-call?agent=ezra&provider=kimi&since=200d&archives=1')).json()
    expect(openFilesIn(t.archiveDir)).toEqual([])
    await (await get(`/requests/${t.seeded[0]!.id}?archives=1`)).json()
    expect(openFilesIn(t.archiveDir)).toEqual([])
  })
})

describe('GET /requests/:id with archives=1', () => {
  test('finds an archived row and every row of its request, wherever each row is; without archives=1 it is a 404', async () => {
    const [first, second] = t.seeded.filter((r) => r.requestId === 'req-straddle')
    expect(isLive(first!)).toBe(false)
    expect(isLive(second!)).toBe(true)
    expect((await get(`/requests/${first!.id}`)).status).toBe(404)
    for (const id of [first!.id, second!.id]) {
      const res = await get(`/requests/${id}?archives=1`)
      expect(res.status).toBe(200)
      const body = await res.json()
      expect(body.row).toMatchObject({ id, agent_name: 'ezra' })
      expect(body.request.request_id).toBe('req-straddle')
      expect(body.request.rows.map((r: { id: number; status: string }) => [r.id, r.status])).toEqual([[first!.id, 'error'], [second!.id, 'success']])
      expect(body.request.rows[0]).toMatchObject({ http_status: 503, response_id: expect.any(String), cost_usd: 0.00125 })
    }
    // Live alone: the live row's request shows only its live row.
    expect((await (await get(`/requests/${second!.id}`)).json()).request.rows.map((r: { id: number }) => r.id)).toEqual([second!.id])
    expect((await get('/requests/999999?archives=1')).status).toBe(404)
  })
})

describe('did-call and stats with archives=1', () => {
  test('did-call counts archived calls once its window reaches archived days, asked for (archives=1) or not: it never says no for a call that was made', async () => {
    const calls = t.seeded.filter((r) => r.agent === 'allegro' && r.provider === 'mimo')
    expect(calls.every((r) => !isLive(r))).toBe(true)
    const newest = calls.map((r) => r.timestamp).sort().at(-1)
    for (const query of ['', '&archives=1']) {
      const answer = await (await get(`/requests/did-call?agent=allegro&provider=mimo&since=200d${query}`)).json()
      expect(answer).toMatchObject({ called: true, calls: calls.length, last_call_at: newest })
      expect(answer.by_status).toEqual(countBy(calls))
    }
  })

  test('stats count the archived attempts and requests too, once the window reaches archived days', async () => {
    const inWindow = t.seeded.filter((r) => Date.parse(r.timestamp) >= NOW - 200 * DAY)
    const unasked = await (await get('/stats?since=200d&by=provider')).json()
    const both = await (await get('/stats?since=200d&by=provider&archives=1')).json()
    const attempts = (body: { groups: { provider: string; attempts: number }[] }) => Object.fromEntries(body.groups.map((g) => [g.provider, g.attempts]))
    const count = (rows: Seeded[]) => countBy(rows, (r) => r.provider!)
    expect(attempts(unasked)).toEqual(count(inWindow))
    expect(attempts(both)).toEqual(count(inWindow))
    // The straddling request counts once, for groq (which served it), though its rows are in two files.
    const requests: Record<string, number> = Object.fromEntries(both.groups.map((g: { provider: string; requests: number }) => [g.provider, g.requests]))
    expect(Object.values(requests).reduce((a, b) => a + b)).toBe(inWindow.length - 1)
    expect(requests.groq).toBe(inWindow.filter((r) => r.provider === 'groq').length)
  })
})

describe('a request across the end of a month, both months archived', () => {
  test('its failed first try, on the last second of the month, is not counted a failed request: its retry is in the next month\'s file', async () => {
    const d = await archivedDir([
      { timestamp: '2026-09-30T23:59:59.000Z', agent: 'ezra', provider: 'kimi', status: 'error', requestId: 'req-midnight', seq: 1 },
      { timestamp: '2026-10-01T00:00:00.300Z', agent: 'ezra', provider: 'kimi', status: 'success', requestId: 'req-midnight', seq: 2 },
    ])
    expect(d.files()).toEqual(['request_log-2026-09.db.zst', 'request_log-2026-10.db.zst'])
    const w2 = await witnessOn(d.dir)
    try {
      const hour = await (await fetch(`${w2.url}/stats?since=2026-09-30T23:00:00.000Z&until=2026-10-01T00:00:00.000Z&archives=1`, { headers: bearer(OPERATOR) })).json()
      // One attempt, failed; no request ended in this hour (it ended, served, in the next).
      expect(hour.groups).toMatchObject([{ provider: 'kimi', attempts: 1, error: 1, requests: 0 }])
    } finally {
      await w2.stop(0)
    }
  })
})

describe('a row in both the live file and its archive (copied, not yet deleted)', () => {
  let d: Awaited<ReturnType<typeof archivedDir>>
  let w2: TestWitness
  beforeAll(async () => {
    // Six rows older than keep_days: the run dies after copying its second batch of four, before deleting it.
    const rows: SeedRow[] = Array.from({ length: 12 }, (_, i) => ({ timestamp: daysAgo(NOW, 60 - i * 5), agent: 'ezra', provider: 'kimi', status: i === 2 ? 'error' : 'success' }))
    // One of the second batch a move from groq to kimi, for the fallback counts.
    rows[5] = { ...rows[5]!, status: 'fallback', errorMessage: 'fallback from groq/m: HTTP 500', noMeta: true }
    let batches = 0
    d = await archivedDir(rows, {
      batchRows: 4,
      onBatch: (e) => {
        if (e.phase === 'copied' && ++batches === 2) throw new Error('killed')
      },
    })
    w2 = await witnessOn(d.dir)
  })
  afterAll(async () => {
    await w2.stop(0)
  })

  test('appears once in pages, exports, the row lookup, did-call and stats', async () => {
    const places = everyRow(d.livePath, d.archiveDir)
    const twice = d.seeded.filter((r) => places.filter((p) => p.row.id === r.id).length === 2)
    expect(twice.length).toBe(2)
    const fetchJson = async (path: string) => (await fetch(`${w2.url}${path}`, { headers: bearer(OPERATOR) })).json()
    const ids: number[] = []
    let cursor: string | null = null
    do {
      const page: { rows: LogRow[]; next_cursor: string | null } = await fetchJson(`/requests?archives=1&limit=2${cursor ? `&cursor=${cursor}` : ''}`)
      ids.push(...page.rows.map((r) => r.id))
      cursor = page.next_cursor
    } while (cursor)
    expect(ids).toEqual(newestIds(d.seeded))
    const ndjson = await (await fetch(`${w2.url}/requests?archives=1&format=ndjson`, { headers: bearer(OPERATOR) })).text()
    expect(ndjson.trimEnd().split('\n').map((l) => JSON.parse(l).id)).toEqual(newestIds(d.seeded))
    expect((await fetchJson(`/requests/${twice[0]!.id}?archives=1`)).request.rows).toHaveLength(1)
    const answer = await fetchJson('/requests/did-call?agent=ezra&provider=kimi&since=200d&archives=1')
    const attempts = d.seeded.filter((r) => r.status !== 'fallback')
    expect(answer.calls).toBe(attempts.length)
    expect(answer.by_status).toEqual(countBy(attempts))
    const stats = await fetchJson('/stats?since=200d&archives=1')
    expect(stats.groups).toMatchObject([{ provider: 'kimi', attempts: attempts.length, error: 1, requests: attempts.length }])
    // The series (small buckets are counted row by row) and the fallback counts, over the copied rows' days.
    const since = twice[0]!.timestamp.slice(0, 10)
    const until = new Date(Date.parse(twice[1]!.timestamp) + 86_400_000).toISOString().slice(0, 10)
    for (const bucket of ['5m', '1d']) {
      const series = await fetchJson(`/stats/series?since=${since}T00:00:00Z&until=${until}T00:00:00Z&bucket=${bucket}&archives=1`)
      const sum = (status: string) => (series.attempts[status] as number[]).reduce((a, b) => a + b, 0)
      expect([bucket, sum('success'), sum('error'), series.latency[0].successes.reduce((a: number, b: number) => a + b, 0)]).toEqual([bucket, 1, 0, 1])
    }
    const fallbacks = await fetchJson(`/stats/fallbacks?since=${since}T00:00:00Z&until=${until}T00:00:00Z&archives=1`)
    expect(fallbacks.fallbacks).toEqual([{ from: 'groq', to: 'kimi', count: 1 }])
  })
})

describe('bad archives values', () => {
  test('are a 400 naming the parameter, on every read endpoint', async () => {
    const paths = ['/requests?', `/requests/${t.seeded[0]!.id}?`, '/requests/did-call?agent=ezra&provider=kimi&', '/stats?']
    for (const path of paths) {
      for (const bad of ['archives=yes', 'archives=2', 'archives=', 'archives=true', 'archives=1&archives=1']) {
        const res = await get(`${path}${bad}`)
        expect(res.status, `${path}${bad}`).toBe(400)
        const { error } = await res.json()
        expect(error.type).toBe('invalid_request')
        expect(error.issues.map((i: { path: string }) => i.path)).toEqual(['archives'])
      }
    }
    const other = await (await get(`/requests/${t.seeded[0]!.id}?limit=3`)).json()
    expect(other.error.issues.map((i: { path: string }) => i.path)).toEqual(['limit'])
  })
})

describe('the read commands with --archives', () => {
  const since = '2026-01-01T00:00:00Z'
  const run = (args: string[], cwd = ROOT) => {
    const proc = Bun.spawnSync([BUN, join(ROOT, 'src/cli.ts'), ...args], { cwd, env: { PATH: process.env.PATH ?? '' } })
    return { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() }
  }

  test('query searches the configured archive directory (or --archive-dir) only when asked; did-call and stats also where their window reaches archived days', () => {
    const config = ['--config', w.configPath]
    const rowsOf = (stdout: string) => stdout.trimEnd().split('\n').filter(Boolean).map((l) => JSON.parse(l).id)
    expect(rowsOf(run(['query', ...config, '--json', '--limit', '1000', '--since', since]).stdout)).toEqual(newestIds(t.seeded.filter(isLive)))
    expect(rowsOf(run(['query', ...config, '--json', '--limit', '1000', '--since', since, '--archives']).stdout)).toEqual(newestIds(t.seeded))
    const db = ['--db', t.livePath, '--archives', '--archive-dir', t.archiveDir]
    expect(rowsOf(run(['query', ...db, '--json', '--agent', 'bezalel', '--limit', '1000'], t.dir).stdout)).toEqual(newestIds(t.seeded.filter((r) => r.agent === 'bezalel')))

    for (const asked of [[], ['--archives']]) {
      const yes = run(['did-call', ...config, '--agent', 'allegro', '--provider', 'mimo', '--since', since, ...asked])
      expect(yes.code).toBe(0)
      expect(yes.stdout).toStartWith('yes: agent allegro called provider mimo 2 times')
      const stats = JSON.parse(run(['stats', ...config, '--since', since, ...asked, '--json']).stdout)
      expect(stats.groups.reduce((n: number, g: { attempts: number }) => n + g.attempts, 0)).toBe(t.seeded.length)
    }
  })

  test('the archive job marks the newest row it moved: a window starting at or before it reaches the archives, even inside keep_days (archived early, at database_max_mb)', () => {
    const live = new Database(t.livePath, { readonly: true })
    try {
      const newestArchived = t.seeded.filter((r) => !isLive(r)).map((r) => Date.parse(r.timestamp)).sort((a, b) => a - b).at(-1)!
      const at = (ms: number) => new Date(ms).toISOString()
      expect(archivesReached(live, at(newestArchived))).toBe(true)
      expect(archivesReached(live, at(newestArchived + 1))).toBe(false)
      // The config's horizon (keep_days) counts too, for an archive run that left no mark.
      expect(archivesReached(live, at(newestArchived + 1), newestArchived + 2)).toBe(true)
      expect(archivesReached(live, undefined)).toBe(false) // a listing with no start reads them only when asked
    } finally {
      live.close()
    }
  })

  test('--archive-dir without --archives, a missing archive directory, or --archives with no config to name one exit 2', () => {
    const elsewhere = tempDir()
    writeFileSync(join(elsewhere, 'note.txt'), 'no witness.yaml here')
    const missing = run(['query', '--db', t.livePath, '--archives', '--archive-dir', join(elsewhere, 'none')], elsewhere)
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain('no archive directory at')
    expect(run(['query', '--db', t.livePath, '--archive-dir', t.archiveDir], elsewhere).stderr).toContain('--archive-dir is only used with --archives')
    const noConfig = run(['did-call', '--db', t.livePath, '--agent', 'ezra', '--provider', 'kimi', '--archives'], elsewhere)
    expect(noConfig.code).toBe(2)
    expect(noConfig.stderr).toContain('--archives needs the archive directory')
  })

  test('a window reaching archived rows with no archive directory to search (--db alone; a directory gone) fails, where it answered "no"', async () => {
    const elsewhere = tempDir()
    // allegro's calls to mimo are all archived: from the live file alone, the answer would be "no".
    const alone = run(['did-call', '--db', t.livePath, '--agent', 'allegro', '--provider', 'mimo', '--since', since], elsewhere)
    expect(alone.stdout).toBe('')
    expect(alone.stderr).toContain('were moved to the monthly archives, and no archive directory is known (give --archive-dir')
    expect(alone.code).toBe(2)
    expect(run(['stats', '--db', t.livePath, '--since', since], elsewhere).code).toBe(1)
    // A window inside the live file needs no archives, and is answered.
    expect(run(['did-call', '--db', t.livePath, '--agent', 'ezra', '--provider', 'kimi', '--since', daysAgo(NOW, 20)], elsewhere).code).toBe(0)

    // The server's archive directory gone (moved), or left empty (a mount point unmounted): 503 archives_unavailable, not "called: false".
    const moved = `${t.archiveDir}.moved`
    renameSync(t.archiveDir, moved)
    try {
      const res = await get(`/requests/did-call?agent=allegro&provider=mimo&since=${since}`)
      expect(res.status).toBe(503)
      expect(((await res.json()) as { error: { type: string; message: string } }).error).toMatchObject({ type: 'archives_unavailable', message: expect.stringContaining(`the archive directory ${t.archiveDir} does not exist`) })
      expect((await get(`/stats?since=${since}`)).status).toBe(503)
      expect((await get(`/stats?since=${daysAgo(NOW, 20)}`)).status).toBe(200)
      // A window reaching past keep_days (30 days back) that starts after the newest row moved needs none of them: answered.
      expect((await get(`/stats?since=${new Date(CUTOFF - 500).toISOString()}`)).status).toBe(200)
      expect((await get(`/stats?since=${new Date(CUTOFF - 1000).toISOString()}`)).status).toBe(503)
      mkdirSync(t.archiveDir)
      const empty = await get(`/requests/did-call?agent=allegro&provider=mimo&since=${since}`)
      expect(empty.status).toBe(503)
      expect(((await empty.json()) as { error: { message: string } }).error.message).toContain(`the archive directory ${t.archiveDir} holds no archive for 2026-07`)
    } finally {
      rmSync(t.archiveDir, { recursive: true, force: true })
      renameSync(moved, t.archiveDir)
    }
  })

  test('a month file the archive job wrote, gone (deleted by hand, left out of a restore), fails the reads whose window holds it, where they answered "no"', async () => {
    const live = new Database(t.livePath, { readonly: true })
    expect(recordedArchiveMonths(live)).toEqual(['2026-07', '2026-08', '2026-09', '2026-10'])
    live.close()
    const aside = tempDir()
    const file = readdirSync(t.archiveDir).find((n) => n.startsWith('request_log-2026-08'))!
    renameSync(join(t.archiveDir, file), join(aside, file))
    try {
      const res = await get(`/requests/did-call?agent=allegro&provider=mimo&since=${since}`)
      expect(res.status).toBe(503)
      expect(((await res.json()) as { error: { message: string } }).error.message).toContain(`the archive directory ${t.archiveDir} holds no archive for 2026-08`)
      const cli = run(['did-call', '--config', w.configPath, '--agent', 'allegro', '--provider', 'mimo', '--since', since])
      expect([cli.code, cli.stdout]).toEqual([2, ''])
      expect(cli.stderr).toContain('holds no archive for 2026-08')
      // Windows without that month need no file of it: answered.
      expect((await get(`/requests/did-call?agent=allegro&provider=mimo&since=2026-09-01T00:00:00Z`)).status).toBe(200)
      expect((await get(`/stats?since=2026-07-01T00:00:00Z&until=2026-07-15T00:00:00Z`)).status).toBe(200)
    } finally {
      renameSync(join(aside, file), join(t.archiveDir, file))
    }
  })

  test("another database given with --db (a fleet database, a copy) is not read with the config's archives", () => {
    // A copy of the live file, with the config beside it naming the real archives: they are not the copy's.
    const elsewhere = tempDir()
    const copy = join(elsewhere, 'copy.db')
    const live = new Database(t.livePath, { readonly: true })
    live.exec(`VACUUM INTO '${copy}'`)
    live.close()
    const withConfig = run(['did-call', '--db', copy, '--config', w.configPath, '--agent', 'allegro', '--provider', 'mimo', '--since', since])
    expect(withConfig.stderr).toContain('no archive directory is known')
    expect(withConfig.code).toBe(2)
    // Its own archives, named: answered.
    expect(run(['did-call', '--db', copy, '--config', w.configPath, '--archives', '--archive-dir', t.archiveDir, '--agent', 'allegro', '--provider', 'mimo', '--since', since]).code).toBe(0)
  })
})

describe('a damaged archive month', () => {
  const run = (args: string[], cwd = ROOT) => {
    const proc = Bun.spawnSync([BUN, join(ROOT, 'src/cli.ts'), ...args], { cwd, env: { PATH: process.env.PATH ?? '' } })
    return { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() }
  }
  /** The data set archived into a dir of its own, a server on it, and `damage` done to one month's file. */
  async function damaged(month: string, damage: (path: string) => void, rows = ROWS) {
    const own = await archivedDir(rows)
    const file = own.files().find((f) => f.startsWith(`request_log-${month}.`))!
    damage(join(own.archiveDir, file))
    return { own, file: join(own.archiveDir, file), server: await witnessOn(own.dir) }
  }
  const read = (server: TestWitness, path: string) => fetch(`${server.url}${path}`, { headers: bearer(OPERATOR) })

  test('a month file overwritten (not a database) answers 503 archives_unavailable naming it, on the server and the command line, not a bare 500', async () => {
    const { own, file, server } = await damaged('2026-10', (path) => writeFileSync(path, Buffer.alloc(8192, 0x5a)))
    try {
      for (const path of ['/requests?archives=1&limit=5', `/requests/did-call?agent=ezra&provider=kimi&since=2026-10-01T00:00:00Z`, '/stats?since=2026-10-01T00:00:00Z&until=2026-11-01T00:00:00Z']) {
        const res = await read(server, path)
        expect(res.status).toBe(503)
        const { error } = await res.json()
        expect(error.type).toBe('archives_unavailable')
        expect(error.message).toStartWith(`archive ${file} is not a whole database (file is not a database): the file is cut or damaged; restore it from a copy`)
      }
      const cli = run(['did-call', '--config', server.configPath, '--agent', 'ezra', '--provider', 'kimi', '--since', '2026-10-01T00:00:00Z', '--archives'], own.dir)
      expect(cli.stderr).toContain(`archive ${file} is not a whole database`)
      expect(cli.code).not.toBe(0)
    } finally {
      await server.stop(0)
    }
  })

  test('damage SQLite meets in the middle of a read (a compressed month whose pages were altered) answers 503 naming the files the read searched', async () => {
    const { own, file, server } = await damaged('2026-09', (path) => {
      const db = Buffer.from(Bun.zstdDecompressSync(readFileSync(path)))
      db.fill(0x5a, 4096 + 8, 4096 + 200) // garbage over the cells of the second page
      writeFileSync(path, Bun.zstdCompressSync(db))
    })
    try {
      const res = await read(server, '/requests?archives=1&since=2026-09-01T00:00:00Z&until=2026-10-01T00:00:00Z')
      expect(res.status).toBe(503)
      const { error } = await res.json()
      expect(error.type).toBe('archives_unavailable')
      expect(error.message).toStartWith('a file this read searched is damaged (database disk image is malformed)')
      expect(error.message).toContain(`the live database ${own.livePath} or one of the archives ${file}`)
      expect(error.files).toEqual([own.livePath, file])
      // The months it does not need are still answered.
      expect((await read(server, '/requests?archives=1&since=2026-10-01T00:00:00Z')).status).toBe(200)
    } finally {
      await server.stop(0)
    }
  })

  test('an export meeting the damage at once answers 503; one meeting it mid-stream keeps the rows it sent and ends with a line saying why, not a reset', async () => {
    // A first page (1000 rows) of recent rows in the live file, so the damaged month is read only for the second.
    const recent = Array.from({ length: 1000 }, (_, i): SeedRow => ({ timestamp: new Date(NOW - (i + 1) * 60_000).toISOString(), agent: 'ezra', provider: 'kimi', status: 'success' }))
    const { file, server } = await damaged('2026-09', (path) => {
      const db = Buffer.from(Bun.zstdDecompressSync(readFileSync(path)))
      db.fill(0x5a, 4096 + 8, 4096 + 200)
      writeFileSync(path, Bun.zstdCompressSync(db))
    }, [...ROWS, ...recent].sort((a, b) => a.timestamp.localeCompare(b.timestamp)))
    try {
      const atOnce = await read(server, '/requests?archives=1&format=ndjson&since=2026-08-01T00:00:00Z&until=2026-10-01T00:00:00Z')
      expect(atOnce.status).toBe(503)
      expect((await atOnce.json()).error.type).toBe('archives_unavailable')
      for (const format of ['ndjson', 'csv']) {
        const res = await read(server, `/requests?archives=1&format=${format}&since=2026-08-01T00:00:00Z`)
        expect(res.status).toBe(200)
        const lines = (await res.text()).trimEnd().split('\n')
        // Every row of the first page arrives (a reset connection lost some), then the line saying why it ends there.
        expect(lines.length).toBe(1000 + (format === 'csv' ? 2 : 1))
        if (format === 'ndjson') {
          expect(lines.slice(0, -1).every((line) => typeof JSON.parse(line).id === 'number')).toBe(true)
          const { error } = JSON.parse(lines.at(-1)!)
          expect(error.type).toBe('archives_unavailable')
          expect(error.files).toContain(file)
        } else {
          expect(lines.at(-1)).toStartWith('#error,archives_unavailable,"a file this read searched is damaged')
        }
      }
    } finally {
      await server.stop(0)
    }
  })
})

/** How many of `rows` per key (default: per status). */
function countBy(rows: Seeded[], key: (row: Seeded) => string = (r) => r.status ?? 'success'): Record<string, number> {
  const out: Record<string, number> = {}
  for (const row of rows) out[key(row)] = (out[key(row)] ?? 0) + 1
  return out
}
