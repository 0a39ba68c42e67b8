/**
 * Open mode (no `auth`): witness answers only on loopback, and trusts the
 * agent name a request gives. A web page in a browser on the same machine
 * could still reach it, so in open mode:
 *
 * - a request whose Host is not a loopback name is refused (403): a page
 *   using DNS rebinding talks to witness under its own host name;
 * - a body not declared as JSON is refused (415): a page can send a
 *   "simple" cross-site POST (text/plain) without a CORS preflight, but not
 *   application/json, which the SDKs and agents always send;
 * - a write (any method but GET, HEAD, OPTIONS) that a browser marks as
 *   coming from a page of another site (`Origin` not loopback, or
 *   `Sec-Fetch-Site: cross-site`) is refused (403): an empty form POST needs
 *   no body, so the JSON check alone does not stop it. Agents, SDKs and curl
 *   send neither header.
 *
 * With `auth`, tokens decide and neither check applies.
 */
import type { MiddlewareHandler } from 'hono'
import type { Config } from '../config.ts'
import { ForbiddenError, UnsupportedMediaTypeError } from '../errors.ts'

const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|\[::ffff:127(?:\.\d{1,3}){3}\])(?::\d+)?$/i

export function guardOpenMode(config: () => Config): MiddlewareHandler {
  return async (c, next) => {
    if (config().auth === null) {
      const host = c.req.header('host')
      if (host !== undefined && !LOOPBACK_HOST.test(host)) {
        throw new ForbiddenError(`witness runs open (no auth) and answers only loopback host names, not ${JSON.stringify(host.slice(0, 80))}`)
      }
      const method = c.req.method
      if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') {
        const origin = c.req.header('origin')
        if ((origin !== undefined && !loopbackOrigin(origin)) || c.req.header('sec-fetch-site') === 'cross-site') {
          throw new ForbiddenError(`witness runs open (no auth) and refuses writes a web page of another site sends (origin ${JSON.stringify((origin ?? 'cross-site').slice(0, 80))})`)
        }
        const type = c.req.header('content-type') ?? null
        const length = c.req.header('content-length')
        const hasBody = (length !== undefined && length !== '0') || c.req.header('transfer-encoding') !== undefined
        if (hasBody && !(type && /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type))) throw new UnsupportedMediaTypeError(type)
      }
    }
    await next()
  }
}

/** Whether an Origin header names a page served from a loopback host (`null`, a sandboxed or file page, does not). */
function loopbackOrigin(origin: string): boolean {
  try {
    const url = new URL(origin)
    return (url.protocol === 'http:' || url.protocol === 'https:') && LOOPBACK_HOST.test(url.host)
  } catch {
    return false
  }
}
