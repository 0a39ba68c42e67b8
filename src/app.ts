/**
 * createApp(deps): the whole route table in one block, the body limit, and
 * the one place errors become HTTP responses. No I/O of its own: the store,
 * clock, config and environment come in as dependencies.
 */
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import type { Clock } from './clock.ts'
import type { Config } from './config.ts'
import type { RuntimeState } from './deadman/runtime.ts'
import type { DeadmanSwitch } from './deadman/switch.ts'
import { NotFoundError, WitnessError, errorBody } from './errors.ts'
import type { Cooldowns } from './router/cooldown.ts'
import type { DispatchDeps } from './router/dispatch.ts'
import { reloadRoute } from './routes/admin.ts'
import { guardBody } from './routes/body-guard.ts'
import { chatCompletionsRoute } from './routes/chat-completions.ts'
import { agentBeatRoute, deadmanStatusRoute, rollbackReportRoute } from './routes/deadman.ts'
import { type ErrorShape, shapeError } from './routes/error-shapes.ts'
import { heartbeatRoute } from './routes/heartbeat.ts'
import { inferRoute } from './routes/infer.ts'
import { messagesRoute } from './routes/messages.ts'
import { modelsRoute } from './routes/models.ts'
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
}

type Env = { Variables: { errorShape: ErrorShape } }

/** Answers this route's errors in the given API's shape. */
const shape = (errorShape: ErrorShape): MiddlewareHandler<Env> => async (c, next) => {
  c.set('errorShape', errorShape)
  await next()
}

export function createApp(deps: AppDeps): Hono<Env> {
  const app = new Hono<Env>()
  const core: DispatchDeps = deps
  const startedAtS = Math.floor(deps.clock.now() / 1000)

  // Read per request from the live config, so a reload's max_body_mb and body_timeout_ms apply at once.
  const limitBody = guardBody(() => ({ maxBytes: deps.config().maxBodyBytes, timeoutMs: deps.config().bodyTimeoutMs }))

  app.get('/heartbeat', heartbeatRoute(deps))
  app.post('/v1/infer', limitBody, inferRoute(core))
  app.post('/v1/chat/completions', shape('openai'), limitBody, chatCompletionsRoute(core))
  app.post('/v1/messages', shape('anthropic'), limitBody, messagesRoute(core))
  app.get('/v1/models', modelsRoute({ config: deps.config, startedAtS }))
  app.post('/heartbeat', limitBody, agentBeatRoute(deps))
  app.get('/deadman', deadmanStatusRoute(deps))
  app.post('/deadman/rollback', limitBody, rollbackReportRoute(deps))
  app.post('/admin/reload', reloadRoute(deps))

  app.notFound((c) => {
    const error = new NotFoundError(`no route for ${c.req.method} ${c.req.path}`)
    return c.json(errorBody(error), 404)
  })

  app.onError((error, c: Context<Env>) => {
    if (error instanceof WitnessError) {
      return c.json(shapeError(c.get('errorShape') ?? 'witness', error), error.status as 400)
    }
    deps.warn(`unhandled error on ${c.req.method} ${c.req.path}: ${error.stack ?? error.message}`)
    return c.json({ error: { type: 'internal_error', message: 'internal error; see the witness log' } }, 500)
  })

  return app
}
