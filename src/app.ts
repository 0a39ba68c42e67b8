/**
 * createApp(deps): the whole route table in one block, the body limit, and
 * the one place errors become HTTP responses. No I/O of its own: the store,
 * clock, config and environment come in as dependencies.
 */
import { type Context, Hono } from 'hono'
import { identify, requireAgent, requireAgentOrOperator, requireOperator } from './auth/middleware.ts'
import { guardBrowsers } from './auth/browser-guard.ts'
import type { Clock } from './clock.ts'
import type { Config } from './config.ts'
import { scriptRoute, styleRoute } from './dashboard/assets.ts'
import {
  type DashboardDeps,
  comparisonFragment,
  deadmanFragment,
  didCallFragment,
  logFragment,
  namesFragment,
  pageRoute,
  seriesFragment,
  storyFragment,
} from './dashboard/routes.tsx'
import type { RuntimeState } from './deadman/runtime.ts'
import type { DeadmanSwitch } from './deadman/switch.ts'
import { NotFoundError, WitnessError, internalError } from './errors.ts'
import type { Cooldowns } from './router/cooldown.ts'
import type { LiveCalls } from './router/live-calls.ts'
import type { DispatchDeps } from './router/dispatch.ts'
import { RouterMetrics } from './router/metrics.ts'
import { reloadRoute } from './routes/admin.ts'
import { guardBody } from './routes/body-guard.ts'
import { chatCompletionsRoute } from './routes/chat-completions.ts'
import { countTokensRoute } from './routes/count-tokens.ts'
import { agentBeatRoute, deadmanStatusRoute, rollbackReportRoute } from './routes/deadman.ts'
import { didCallRoute } from './routes/did-call.ts'
import { errorShapeFor, shapeError } from './routes/error-shapes.ts'
import { fallbacksRoute } from './routes/fallbacks.ts'
import { heartbeatRoute } from './routes/heartbeat.ts'
import { inferRoute } from './routes/infer.ts'
import { messagesRoute } from './routes/messages.ts'
import { metricsRoute } from './routes/metrics.ts'
import { modelRoute, modelsRoute } from './routes/models.ts'
import type { ReadDeps } from './read-deps.ts'
import { listRequestsRoute, requestStoryRoute } from './routes/requests.ts'
import { seriesRoute } from './routes/series.ts'
import { statsRoute } from './routes/stats.ts'
import { SliceRollups } from './telemetry/slice-rollups.ts'
import { StatsCache } from './telemetry/stats-window.ts'
import type { Store } from './telemetry/store.ts'

export interface AppDeps {
  store: Store
  clock: Clock
  cooldowns: Cooldowns
  /** The live config; a reload swaps what this returns. */
  config: () => Config
  env: Record<string, string | undefined>
  inFlight: { count: number }
  warn: (message: string) => void
  /** Calls in flight with deadlines, last success, failing chains. */
  runtime: RuntimeState
  /** Health, reload, promotion, agents' heartbeats. */
  deadman: DeadmanSwitch
  /** The router's counters for GET /metrics (a fresh set if not given). */
  metrics?: RouterMetrics
  /** The live file's stored slices for the stats (default: read and written through `store`). */
  rollups?: SliceRollups
  /** True once the router's stop cuts the connections still open (see ChainDeps). */
  stopping?: () => boolean
  /** Calls under way, which the router's stop ends itself before it cuts the connections (see ChainDeps). */
  liveCalls?: LiveCalls
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono()
  const metrics = deps.metrics ?? new RouterMetrics()
  const core: DispatchDeps = { ...deps, metrics }
  const read: ReadDeps = {
    store: deps.store,
    clock: deps.clock,
    config: deps.config,
    statsCache: new StatsCache(),
    rollups: deps.rollups ?? new SliceRollups(deps.store.reader, (side) => deps.store.write(side), () => deps.clock.now()),
    warn: deps.warn,
  }
  const board: DashboardDeps = { ...read, deadman: deps.deadman }
  const startedAtS = Math.floor(deps.clock.now() / 1000)

  // Read per request from the live config, so a reload's max_body_mb and body_timeout_ms apply at once.
  const limitBody = guardBody(() => ({ maxBytes: deps.config().maxBodyBytes, timeoutMs: deps.config().bodyTimeoutMs }))

  // Who is calling (from the token, when `auth` is configured); the require* guards below check it.
  const lockouts = deps.deadman.lockouts
  app.use('*', identify(deps.config, { refused: (token) => lockouts.refusedToken(token), accepted: (kind, name) => lockouts.accepted(kind, name) }))
  // Without auth: loopback Host names only, and JSON bodies only (no cross-site requests from a browser).
  app.use('*', guardBrowsers(deps.config))

  app.get('/heartbeat', heartbeatRoute(deps))
  app.post('/heartbeat', requireAgent(), limitBody, agentBeatRoute(deps))
  app.post('/v1/infer', requireAgent(), limitBody, inferRoute(core))
  app.post('/v1/chat/completions', requireAgent(), limitBody, chatCompletionsRoute(core))
  app.post('/v1/messages', requireAgent(), limitBody, messagesRoute(core))
  app.post('/v1/messages/count_tokens', requireAgent(), limitBody, countTokensRoute({ config: deps.config }))
  app.get('/v1/models', requireAgentOrOperator(), modelsRoute({ config: deps.config, startedAtS }))
  app.get('/v1/models/:id', requireAgentOrOperator(), modelRoute({ config: deps.config, startedAtS }))
  app.get('/requests', requireAgentOrOperator(), listRequestsRoute(read))
  app.get('/requests/did-call', requireAgentOrOperator(), didCallRoute(read))
  app.get('/requests/:id', requireAgentOrOperator(), requestStoryRoute(read))
  app.get('/stats', requireAgentOrOperator(), statsRoute(read))
  app.get('/stats/series', requireOperator(), seriesRoute(read))
  app.get('/stats/fallbacks', requireOperator(), fallbacksRoute(read))
  app.get('/metrics', requireOperator(), metricsRoute({ store: deps.store, metrics }))
  app.get('/deadman', requireOperator(), deadmanStatusRoute(deps))
  app.post('/deadman/rollback', requireOperator(), limitBody, rollbackReportRoute(deps))
  app.post('/admin/reload', requireOperator(), reloadRoute(deps))
  // The dashboard: the page (no data, open) and the fragments its script loads (operator token).
  app.get('/', pageRoute(deps))
  app.get('/dashboard/app.js', scriptRoute())
  app.get('/dashboard/style.css', styleRoute())
  app.get('/dashboard/comparison', requireOperator(), comparisonFragment(board))
  app.get('/dashboard/series', requireOperator(), seriesFragment(board))
  app.get('/dashboard/log', requireOperator(), logFragment(board))
  app.get('/dashboard/story/:id', requireOperator(), storyFragment(board))
  app.get('/dashboard/did-call', requireOperator(), didCallFragment(board))
  app.get('/dashboard/deadman', requireOperator(), deadmanFragment(board))
  app.get('/dashboard/names', requireOperator(), namesFragment(board))

  // Errors answer in the shape of the API the path belongs to (src/routes/error-shapes.ts),
  // whichever middleware raised them: an SDK gets its own error class with the message.
  const answerError = (c: Context, error: WitnessError) => {
    if (error.retry === false) c.header('x-should-retry', 'false')
    if (error.retryAfterS !== undefined) c.header('retry-after', String(error.retryAfterS))
    return c.json(shapeError(errorShapeFor(c.req.path, c.req.header('anthropic-version')), error), error.status as 400)
  }

  app.notFound((c) => answerError(c, new NotFoundError(`no route for ${c.req.method} ${c.req.path}`)))

  app.onError((error, c) => {
    if (error instanceof WitnessError) return answerError(c, error)
    deps.warn(`unhandled error on ${c.req.method} ${c.req.path}: ${error.stack ?? error.message}`)
    return answerError(c, internalError())
  })

  return app
}
