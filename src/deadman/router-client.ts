/**
 * The watchdog's side of HTTP: the health check, waiting for a restarted
 * router, and the requests it makes (reload, record a rollback). Every
 * request has a time limit and carries `Authorization: Bearer <token>` when
 * a token is set.
 */
import { redact } from '../redaction.ts'

export interface RouterClient {
  /** Base URL, no trailing slash. */
  url: string
  token?: string
  /** Time limit of each request. */
  timeoutMs: number
}

export interface HeartbeatCheck {
  ok: boolean
  /** The router answered HTTP at all. */
  answered: boolean
  /** Why it failed (`connection refused`, the 503's reasons, ...). */
  reason: string
  /** The config hash the router reports running. */
  configHash: string | null
  /** False when the router says no reason it is unhealthy could be cured by a rollback (its database is); null when it does not say. */
  rollbackMayHelp: boolean | null
}

/** One health check: GET /heartbeat within the time limit. */
export async function checkHeartbeat(router: RouterClient): Promise<HeartbeatCheck> {
  let res: Response
  try {
    res = await fetch(`${router.url}/heartbeat`, { headers: authHeaders(router.token), signal: AbortSignal.timeout(router.timeoutMs) })
  } catch (error) {
    return { ok: false, answered: false, reason: networkReason(error, router.timeoutMs), configHash: null, rollbackMayHelp: null }
  }
  const body = (await res.json().catch(() => null)) as { status?: unknown; reasons?: unknown; config_hash?: unknown; rollback_may_help?: unknown } | null
  const configHash = typeof body?.config_hash === 'string' ? body.config_hash : null
  if (res.status === 200 && body?.status === 'ok') return { ok: true, answered: true, reason: 'ok', configHash, rollbackMayHelp: null }
  // No config hash: not a witness answering (another service on the port the router could not take).
  const notWitness = configHash === null ? `, not an answer of witness's (another service on ${new URL(router.url).host}?)` : ''
  const reasons = Array.isArray(body?.reasons) && body.reasons.length ? body.reasons.map(String).join('; ') : `HTTP ${res.status}${notWitness}`
  const rollbackMayHelp = typeof body?.rollback_may_help === 'boolean' ? body.rollback_may_help : null
  return { ok: false, answered: true, reason: redact(reasons), configHash, rollbackMayHelp }
}

/** Polls until the router answers HTTP at all, for at most `waitMs`. */
export async function waitForRouter(router: RouterClient, waitMs: number): Promise<boolean> {
  const deadline = performance.now() + waitMs
  while (true) {
    const left = deadline - performance.now()
    if (left <= 0) return false
    try {
      const res = await fetch(`${router.url}/heartbeat`, { headers: authHeaders(router.token), signal: AbortSignal.timeout(Math.min(left, router.timeoutMs)) })
      await res.body?.cancel()
      return true
    } catch {
      await Bun.sleep(Math.min(100, Math.max(0, deadline - performance.now())))
    }
  }
}

/**
 * Polls GET /heartbeat at each of `routers` (where the router listened, where a restarted one may
 * listen) until one reports running `configHash`, for at most `waitMs` and at least once: what a
 * rollback is checked with before it is recorded as done. Resolves with the router that said so,
 * else the last that answered (or the first, when none did) and what it said.
 */
export async function waitForConfig(routers: () => RouterClient[], configHash: string, waitMs: number): Promise<{ router: RouterClient; check: HeartbeatCheck }> {
  const deadline = performance.now() + waitMs
  let last: { router: RouterClient; check: HeartbeatCheck } | null = null
  while (true) {
    for (const router of routers()) {
      const check = await checkHeartbeat(router)
      if (check.configHash === configHash) return { router, check }
      if (check.answered || last === null) last = { router, check }
    }
    const left = deadline - performance.now()
    if (left <= 0) return last!
    await Bun.sleep(Math.min(100, left))
  }
}

/** A request to the router within the time limit; null when it does not answer. */
export async function request(router: RouterClient, path: string, init: RequestInit): Promise<Response | null> {
  try {
    return await fetch(`${router.url}${path}`, {
      ...init,
      headers: { ...authHeaders(router.token), ...(init.headers as Record<string, string> | undefined) },
      signal: AbortSignal.timeout(router.timeoutMs),
    })
  } catch {
    return null
  }
}

function authHeaders(token: string | undefined): Record<string, string> {
  return token ? { authorization: `Bearer ${token}` } : {}
}

function networkReason(error: unknown, timeoutMs: number): string {
  const e = error as { name?: string; code?: string; message?: string }
  if (e?.name === 'TimeoutError') return `no answer within ${timeoutMs / 1000} s`
  if (e?.code === 'ECONNREFUSED' || e?.code === 'ConnectionRefused') return 'connection refused'
  return redact(e?.message ?? String(error))
}
