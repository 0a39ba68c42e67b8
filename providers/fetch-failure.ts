/**
 * A failed fetch in plain words. Bun's fetch errors quote the URL called
 * (`ZlibError fetching "https://host/v1/chat/completions?sig=…"`), and a
 * base_url may carry a credential in its query string or its userinfo: no
 * URL from such a message reaches a row or a client. Failures Bun names by a
 * code are said plainly ("corrupt compressed body"); any other message keeps
 * its words, with each URL in it cut to its public form (no query, no
 * userinfo) and Bun's advice to pass `verbose: true` left out.
 */
import { publicEndpoint } from './types.ts'

/** Bun's codes for a body it could not decompress (gzip, deflate, brotli, zstd). */
const DECOMPRESSION = /zlib|brotli|zstd|decompress/i
/** Bun's codes for bytes that are no HTTP response (a wrong port: SSH, a database, TLS spoken to plain HTTP). */
const NOT_HTTP = /^(Malformed_HTTP_Response|InvalidHTTPResponse|HTTPResponse.*Invalid)/i
/** A URL as it appears in a message: up to a quote, a space or the end. */
const URL_IN_TEXT = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]+/gi
/** Bun's advice after a fetch error: no use to whoever reads a row. */
const VERBOSE_ADVICE = /\.?\s*For more information, pass `verbose: true`[^.]*(\.|$)/i

/**
 * What went wrong, for `network error: …`: a plain reason for the failures Bun names by a code,
 * else the message with its URLs made public. `code` is the error's own (`ZlibError`).
 */
export function describeFetchFailure(code: string, message: string): string {
  if (DECOMPRESSION.test(code)) return `corrupt compressed body (${code})`
  if (NOT_HTTP.test(code)) return `not an HTTP response (${code})`
  return withoutUrls(message)
}

/** `text` with each URL in it cut to its public form and Bun's `verbose: true` advice dropped. */
export function withoutUrls(text: string): string {
  return text
    .replace(VERBOSE_ADVICE, '')
    .replace(URL_IN_TEXT, (url) => {
      // A URL quoted at the end of a sentence keeps its full stop outside.
      const trail = /[.,;:)\]]+$/.exec(url)?.[0] ?? ''
      const bare = url.slice(0, url.length - trail.length)
      return `${publicEndpoint(bare)}${trail}`
    })
    .trim()
}
