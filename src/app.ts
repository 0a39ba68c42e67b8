/**
 * createApp(deps): the whole route table in one block, the body limit, and
 * the one place errors become HTTP responses. No I/O of its own: the store,
 * clock, config and environment come in as dependencies.
 */
import { Hono } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import { identify, requireAgent, requireAgentOrOperator, requireOperator } from './auth/middleware.ts'
import type { Clock } from './clock.ts'
import type { Config } from './config.ts'
import { NotFoundError, PayloadTooLargeError, WitnessError, errorBody } from './errors.ts'
import type { Cooldowns } from './router/cooldown.ts'
import type { DispatchDeps } from './router/dispatch.ts'
import { RouterMetrics } from './router/metrics.ts'
import { didCallRoute } from './routes/did-call.ts'
import { heartbeatRoute } from './routes/heartbeat.ts'
import { inferRoute } from './routes/infer.ts'
import { metricsRoute } from './routes/metrics.ts'
import { type ReadDeps, listRequestsRoute, requestStoryRoute } from './routes/requests.ts'
import { statsRoute } from './routes/stats.ts'
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
  /** The router's counters for GET /metrics (a fresh set if not given). */
  metrics?: RouterMetrics
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono()
  const metrics = deps.metrics ?? new RouterMetrics()
  const core: DispatchDeps = { ...deps, metrics }
  const read: ReadDeps = { store: deps.store, clock: deps.clock, config: deps.config, statsCache: new StatsCache() }

  const limitBody = bodyLimit({
    maxSize: deps.config().maxBodyBytes,
    onError: () => {
      throw new PayloadTooLargeError(deps.config().maxBodyBytes)
    },
  })

  // Who is calling (from the token, when `auth` is configured); the require* guards below check it.
  app.use('*', identify(deps.config))

  app.get('/heartbeat', heartbeatRoute(deps))
  app.post('/v1/infer', requireAgent(), limitBody, inferRoute(core))
  app.get('/requests', requireAgentOrOperator(), listRequestsRoute(read))
  app.get('/requests/did-call', requireAgentOrOperator(), didCallRoute(read))
  app.get('/requests/:id', requireAgentOrOperator(), requestStoryRoute(read))
  app.get('/stats', requireAgentOrOperator(), statsRoute(read))
  app.get('/metrics', requireOperator(), metricsRoute({ store: deps.store, metrics }))

  app.notFound((c) => {
    const error = new NotFoundError(`no route for ${c.req.method} ${new URL(c.req.url).pathname}`)
    return c.json(errorBody(error), 404)
  })

  app.onError((error, c) => {
    if (error instanceof WitnessError) {
      return c.json(errorBody(error), error.status as 400)
    }
    deps.warn(`unhandled error on ${c.req.method} ${new URL(c.req.url).pathname}: ${error.stack ?? error.message}`)
    return c.json({ error: { type: 'internal_error', message: 'internal error; see the witness log' } }, 500)
  })

  return app
}
