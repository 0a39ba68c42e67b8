/**
 * Requests whose URL cannot be parsed: an HTTP/1.0 request without a Host
 * header (legal, and what some load balancers' health checks send) arrives
 * with only its path, and a Host the server could not use (a port past
 * 65535) gives a URL no parser accepts. The router would misread the
 * first and throw on the second; both keep their path and get witness's
 * own address as their origin instead. (witness never uses the Host.)
 */

/** The request as is, or a copy with `base` as its origin (same method, path, headers, body and abort signal). */
export function withAbsoluteUrl(req: Request, base: string): Request {
  if (URL.canParse(req.url)) return req
  const path = req.url.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/?#]*/i, '')
  return new Request(new URL(path.startsWith('/') ? path : `/${path}`, base), req)
}
