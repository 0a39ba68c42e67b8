/**
 * Who is calling: `identify` (installed once for every route in createApp)
 * reads the token from `Authorization: Bearer <token>` or `x-api-key` and
 * records the principal on the context; the `require*` factories guard a
 * route with it. Without `auth` in the config everyone is `open` and every
 * guard lets the call through (witness then listens on loopback only).
 *
 *   app.post('/heartbeat', requireAgent(), heartbeatPostRoute(deps))
 *   app.post('/deadman/rollback', requireOperator(), rollbackRoute(deps))
 */
import type { Context, MiddlewareHandler } from 'hono'
import type { Config } from '../config.ts'
import { ForbiddenError, UnauthorizedError } from '../errors.ts'
import { ownerOf } from './tokens.ts'

export type Principal =
  /** No `auth` configured: callers name themselves. */
  | { kind: 'open' }
  | { kind: 'agent'; name: string }
  | { kind: 'operator'; name: string }
  /** `auth` is configured and no valid token came with the request; `reason` says what was wrong. */
  | { kind: 'anonymous'; reason: string }

declare module 'hono' {
  interface ContextVariableMap {
    principal: Principal
  }
}

const HOW = 'send `Authorization: Bearer <token>` or `x-api-key: <token>`'

/** Hears of tokens: each one the config does not recognise, and each owner a token let in (the deadman switch's lockouts). */
export interface TokenObserver {
  refused(token: string): void
  accepted(kind: 'agent' | 'operator', name: string): void
}

/** Records the caller's principal on the context. Never rejects by itself. */
export function identify(config: () => Config, observer?: TokenObserver): MiddlewareHandler {
  return async (c, next) => {
    c.set('principal', principalFor(config(), c.req.header('authorization'), c.req.header('x-api-key'), observer))
    await next()
  }
}

function principalFor(config: Config, authorization: string | undefined, apiKey: string | undefined, observer?: TokenObserver): Principal {
  const auth = config.auth
  if (!auth) return { kind: 'open' }
  let bearer: string | undefined
  if (authorization !== undefined) {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization)
    if (!match) return { kind: 'anonymous', reason: `the Authorization header is not "Bearer <token>"; ${HOW}` }
    bearer = match[1]
  }
  const key = apiKey?.trim() || undefined
  if (bearer && key && bearer !== key) return { kind: 'anonymous', reason: 'Authorization and x-api-key carry different tokens; send one' }
  const token = bearer ?? key
  if (!token) return { kind: 'anonymous', reason: `missing token: ${HOW}` }
  const owner = ownerOf(token, auth)
  if (!owner) {
    observer?.refused(token)
    return { kind: 'anonymous', reason: 'the token is not recognised' }
  }
  observer?.accepted(owner.kind, owner.name)
  return owner
}

/** The principal `identify` recorded. Throws (a 500) if it was not installed: fail closed. */
export function principalOf(c: Context): Principal {
  const principal = c.get('principal')
  if (!principal) throw new Error('no principal on the request: the identify middleware is not installed')
  return principal
}

type Allowed = 'agent' | 'operator'

function guard(allowed: Allowed[], what: string): MiddlewareHandler {
  return async (c, next) => {
    const principal = principalOf(c)
    if (principal.kind === 'anonymous') throw new UnauthorizedError(principal.reason)
    if (principal.kind !== 'open' && !allowed.includes(principal.kind)) {
      throw new ForbiddenError(`${what}; this is ${principal.kind} "${principal.name}"'s token`)
    }
    await next()
  }
}

/** Inference endpoints and an agent's own heartbeat: an agent token. */
export function requireAgent(): MiddlewareHandler {
  return guard(['agent'], 'this endpoint needs an agent token')
}

/** Operator endpoints (deadman, reload, metrics, stats): an operator token. */
export function requireOperator(): MiddlewareHandler {
  return guard(['operator'], 'this endpoint needs an operator token')
}

/** Read endpoints where an agent may see its own rows and an operator everyone's. */
export function requireAgentOrOperator(): MiddlewareHandler {
  return guard(['agent', 'operator'], 'this endpoint needs an agent or operator token')
}

/**
 * Whose rows the caller may read, given the agent it asked for: an agent
 * token reads only its own rows (asking for another agent's is 403), an
 * operator (or an open witness) reads what it asked for (undefined = all).
 */
export function readableAgent(c: Context, requested: string | undefined): string | undefined {
  const principal = principalOf(c)
  if (principal.kind === 'anonymous') throw new UnauthorizedError(principal.reason)
  if (principal.kind !== 'agent') return requested
  if (requested !== undefined && requested !== principal.name) {
    throw new ForbiddenError(`agent "${principal.name}" may read only its own rows, not agent "${requested}"'s`)
  }
  return principal.name
}
