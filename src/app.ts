/**
 * createApp(deps): the whole route table in one block, the body limit, and
 * the one place errors become HTTP responses. No I/O of its own: the store,
 * clock, config and environment come in as dependencies.
 */
import { type Context, Hono, type MiddlewareHandler } from 'hono'
import { bodyLimit } from 'hono/body-limit'
import type { Clock } from './clock.ts'
import type { Config } from './config.ts'
import { NotFoundError, PayloadTooLargeError, WitnessError, errorBody } from './errors.ts'
import type { Cooldowns } from './router/cooldown.ts'
import type { DispatchDeps } from './router/dispatch.ts'
import { chatCompletionsRoute } from './routes/chat-completions.ts'
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

  // Read per request, so a reloaded config's limit applies at once.
  const limitBody: MiddlewareHandler<Env> = (c, next) =>
    bodyLimit({
      maxSize: deps.config().maxBodyBytes,
      onError: () => {
        throw new PayloadTooLargeError(deps.config().maxBodyBytes)
      },
    })(c, next)

  app.get('/heartbeat', heartbeatRoute(deps))
  app.post('/v1/infer', limitBody, inferRoute(core))
  app.post('/v1/chat/completions', shape('openai'), limitBody, chatCompletionsRoute(core))
  app.post('/v1/messages', shape('anthropic'), limitBody, messagesRoute(core))
  app.get('/v1/models', modelsRoute({ config: deps.config, startedAtS }))

  app.notFound((c) => {
    const error = new NotFoundError(`no route for ${c.req.method} ${new URL(c.req.url).pathname}`)
    return c.json(errorBody(error), 404)
  })

  app.onError((error, c: Context<Env>) => {
    if (error instanceof WitnessError) {
      return c.json(shapeError(c.get('errorShape') ?? 'witness', error), error.status as 400)
    }
    deps.warn(`unhandled error on ${c.req.method} ${new URL(c.req.url).pathname}: ${error.stack ?? error.message}`)
    return c.json({ error: { type: 'internal_error', message: 'internal error; see the witness log' } }, 500)
  })

  return app
}
