/** @jsxImportSource hono/jsx */
/**
 * The dashboard's routes: GET / (the shell, no data) and the HTML fragments
 * its script loads into the panels (GET /dashboard/*, operator token). Each
 * handler parses its parameters, asks the telemetry modules, and renders.
 */
import type { Context } from 'hono'
import type { JSX } from 'hono/jsx/jsx-runtime'
import { principalOf } from '../auth/middleware.ts'
import type { Clock } from '../clock.ts'
import type { Config } from '../config.ts'
import type { DeadmanSwitch } from '../deadman/switch.ts'
import { NotFoundError } from '../errors.ts'
import { parseDidCallInput, parseNoInput } from '../query-input.ts'
import { deletedMonthsIn, withSources } from '../retention/read-sources.ts'
import { readSources } from '../read-deps.ts'
import { readQuery } from '../routes/query-params.ts'
import { didCall } from '../telemetry/did-call.ts'
import { fallbackCounts, fallbacksOut } from '../telemetry/fallbacks.ts'
import { listRequests, requestRow, requestStory } from '../telemetry/queries.ts'
import { timeSeries } from '../telemetry/series.ts'
import type { SliceRollups } from '../telemetry/slice-rollups.ts'
import { type StatsCache, computeStats, statsReadPeriod } from '../telemetry/stats-window.ts'
import type { Store } from '../telemetry/store.ts'
import { Comparison } from './comparison.tsx'
import { DeadmanPanel } from './deadman.tsx'
import { DidCallAnswerView } from './did-call.tsx'
import { LOG_ROWS, parseLogInput, parseRowId, parseWindow } from './input.ts'
import { LogTable } from './log.tsx'
import { Names } from './names.tsx'
import { Page } from './page.tsx'
import { SeriesView } from './series-view.tsx'
import { Story } from './story.tsx'

export interface DashboardDeps {
  store: Store
  clock: Clock
  config: () => Config
  statsCache: StatsCache
  rollups: SliceRollups
  deadman: DeadmanSwitch
}

/** Scripts and styles only from witness itself; no inline script or style, no framing. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

function render(c: Context, body: JSX.Element, doctype = false) {
  c.header('content-security-policy', CSP)
  c.header('cache-control', 'no-store')
  c.header('x-content-type-options', 'nosniff')
  c.header('referrer-policy', 'no-referrer')
  // frame-ancestors for browsers that predate it.
  c.header('x-frame-options', 'DENY')
  return c.html(doctype ? `<!doctype html>${body}` : body)
}

const providersOf = (config: Config) => [...config.providers.keys()]

/** GET /: the shell. Locked (login first) when `auth` is set and this request carries no operator token. */
export function pageRoute(deps: Pick<DashboardDeps, 'config'>) {
  return (c: Context) => {
    const auth = deps.config().auth !== null
    const principal = principalOf(c)
    return render(c, <Page auth={auth} locked={auth && principal.kind !== 'operator'} />, true)
  }
}

export function comparisonFragment(deps: DashboardDeps) {
  return async (c: Context) => {
    const nowMs = deps.clock.now()
    const window = parseWindow(readQuery(c), nowMs)
    const config = deps.config()
    const { stats, out } = await withSources(() => readSources(deps, false, { since: window.since, until: statsReadPeriod(window).until }, true), async ({ dbs }) => ({
      stats: await computeStats(dbs, { since: window.since, until: window.until, by: 'provider' }, { pricing: config.pricing, nowMs, cache: deps.statsCache, rollups: deps.rollups }),
      out: fallbacksOut(await fallbackCounts(dbs, window.since, window.until)),
    }))
    return render(c, <Comparison stats={stats} fallbacksOut={out} providers={providersOf(config)} windowName={window.name} />)
  }
}

export function seriesFragment(deps: DashboardDeps) {
  return async (c: Context) => {
    const nowMs = deps.clock.now()
    const window = parseWindow(readQuery(c), nowMs)
    const series = await withSources(() => readSources(deps, false, { since: window.since, until: window.until }, true), ({ dbs }) => timeSeries(dbs, window, { nowMs, cache: deps.statsCache, rollups: deps.rollups }))
    return render(c, <SeriesView series={series} providers={providersOf(deps.config())} nowMs={nowMs} />)
  }
}

export function logFragment(deps: DashboardDeps) {
  return (c: Context) => {
    const input = parseLogInput(readQuery(c), deps.clock.now())
    return render(c, <LogTable rows={listRequests(deps.store.reader, input.filter, LOG_ROWS)} limit={LOG_ROWS} />)
  }
}

export function storyFragment(deps: DashboardDeps) {
  return (c: Context) => {
    parseNoInput(readQuery(c), 'invalid /dashboard/story parameters')
    const id = parseRowId(c.req.param('id') ?? '')
    const row = requestRow(deps.store.reader, id)
    if (!row) throw new NotFoundError(`no row with id ${id}`)
    return render(c, <Story row={row} story={requestStory(deps.store.reader, id)} />)
  }
}

export function didCallFragment(deps: DashboardDeps) {
  return async (c: Context) => {
    const query = parseDidCallInput(readQuery(c), deps.clock.now())
    const period = { since: query.since, until: query.until }
    const answer = await withSources(() => readSources(deps, query.archives, period, true), (sources) => didCall(sources.live, query, sources.archives, false, deletedMonthsIn(sources.live, period)))
    return render(c, <DidCallAnswerView answer={answer} />)
  }
}

/** Agents not listed in deadman.agents that the panel shows: those heard from last. */
const PANEL_OTHER_AGENTS = 100

export function deadmanFragment(deps: DashboardDeps) {
  return (c: Context) => {
    parseNoInput(readQuery(c), 'invalid /dashboard/deadman parameters')
    const config = deps.config()
    const name = config.deadman.name
    const [lastRollback] = listRequests(deps.store.reader, { agent: name, status: 'rollback' }, 1)
    const router = { name, configHash: config.hash, lastKnownGood: deps.deadman.promoter.lastKnownGood(), lastRollback: lastRollback ?? null }
    const { agents, hidden } = deps.deadman.agents.listSome(PANEL_OTHER_AGENTS)
    return render(c, <DeadmanPanel router={router} agents={agents} hidden={hidden} />)
  }
}

/** Agents and providers to suggest: the configured ones, and those in the newest rows. */
export function namesFragment(deps: DashboardDeps) {
  return (c: Context) => {
    parseNoInput(readQuery(c), 'invalid /dashboard/names parameters')
    const config = deps.config()
    const recent = listRequests(deps.store.reader, {}, 500)
    const agents = new Set([...Object.keys(config.auth?.agents ?? {}), ...deps.deadman.agents.names(), ...recent.map((r) => r.agent_name)])
    const providers = new Set([...providersOf(config), ...recent.map((r) => r.provider)])
    return render(c, <Names agents={[...agents].sort()} providers={[...providers].sort()} />)
  }
}
