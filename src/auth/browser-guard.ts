/**
 * What a web page in a browser must not do with witness. Agents, SDKs and
 * curl send no `Origin` and no `Sec-Fetch-Site`, and witness's own page (the
 * dashboard) only reads, so a write (any method but GET, HEAD, OPTIONS) that
 * a browser marks as coming from a page of another site is never one of
 * theirs, and is refused (403), with or without `auth`:
 *
 * - without `auth`, witness answers only on loopback and trusts the agent
 *   name a request gives: a page of another site is one not served from a
 *   loopback host (`Origin`, or `Sec-Fetch-Site: cross-site`), and a page
 *   served from loopback is another site too unless its origin is witness's
 *   own host and port (a local dev server's page on another port: `Origin`,
 *   or `Sec-Fetch-Site: same-site`). And a request
 *   whose Host is not a loopback name is refused (403): a page using DNS
 *   rebinding talks to witness under its own host name; a body not declared
 *   as JSON is refused (415): a page can send a "simple" cross-site POST
 *   (text/plain, a form) without a CORS preflight, but not application/json,
 *   which the SDKs always send.
 * - with `auth`, a browser attaches no token by itself, but a proxy in front
 *   of witness may (the README's dashboard behind a proxy that adds the
 *   operator's `Authorization`): a write whose `Origin` is not the request's
 *   own host, or that the browser marks `cross-site` or `same-site`, is
 *   refused. Bodies are not held to JSON there: an agent's plain HTTP client
 *   may send one with no content type, and browsers send `Origin` with every
 *   cross-site POST, form or not.
 */
import type { Context, MiddlewareHandler } from 'hono'
import type { Config } from '../config.ts'
import { ForbiddenError, UnsupportedMediaTypeError } from '../errors.ts'

const LOOPBACK_HOST = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\]|\[::ffff:127(?:\.\d{1,3}){3}\])(?::\d+)?$/i

export function guardBrowsers(config: () => Config): MiddlewareHandler {
  return async (c, next) => {
    const open = config().auth === null
    const host = c.req.header('host')
    if (open && host !== undefined && !LOOPBACK_HOST.test(host)) {
      throw new ForbiddenError(`witness runs open (no auth) and answers only loopback host names, not ${JSON.stringify(host.slice(0, 80))}`)
    }
    const method = c.req.method
    if (method !== 'GET' && method !== 'HEAD' && method !== 'OPTIONS') {
      // Open, a page on loopback is foreign too unless it is witness's own (another port: a local dev server's page).
      const foreign = open ? (foreignToLoopback(c) ?? foreignToHost(c, host)) : foreignToHost(c, host)
      if (foreign !== null) {
        const mode = open ? 'witness runs open (no auth) and refuses' : 'witness refuses'
        throw new ForbiddenError(`${mode} writes a web page of another site sends (origin ${JSON.stringify(foreign.slice(0, 80))})`)
      }
      if (open) {
        const type = c.req.header('content-type') ?? null
        const length = c.req.header('content-length')
        const hasBody = (length !== undefined && length !== '0') || c.req.header('transfer-encoding') !== undefined
        if (hasBody && !(type && /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(type))) throw new UnsupportedMediaTypeError(type)
      }
    }
    await next()
  }
}

/** Open mode: the page's origin when a browser says the write comes from a page not served from loopback; else null. */
function foreignToLoopback(c: Context): string | null {
  const origin = c.req.header('origin')
  if (origin !== undefined && !loopbackOrigin(origin)) return origin
  return c.req.header('sec-fetch-site') === 'cross-site' ? 'cross-site' : null
}

/** With auth: the page's origin when a browser says the write comes from a page of another origin than witness's own; else null. */
function foreignToHost(c: Context, host: string | undefined): string | null {
  const origin = c.req.header('origin')
  if (origin !== undefined && !sameHost(origin, host)) return origin
  const site = c.req.header('sec-fetch-site')
  return site === 'cross-site' || site === 'same-site' ? site : null
}

/** Whether an Origin header names a page served from a loopback host (`null`, a sandboxed or file page, does not). */
function loopbackOrigin(origin: string): boolean {
  const url = originUrl(origin)
  return url !== null && LOOPBACK_HOST.test(url.host)
}

/** Whether an Origin header names a page served from `host` (the request's Host header). */
function sameHost(origin: string, host: string | undefined): boolean {
  const url = originUrl(origin)
  return url !== null && host !== undefined && url.host.toLowerCase() === host.toLowerCase()
}

function originUrl(origin: string): URL | null {
  try {
    const url = new URL(origin)
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : null
  } catch {
    return null
  }
}
