import { isRecord } from './types.ts'

/**
 * Reads how long a provider asks us to wait: `retry-after-ms` (OpenAI),
 * `retry-after` in seconds or as an HTTP date (RFC 9110), else
 * `x-ratelimit-reset` when it is an instant (OpenRouter's rate limits: epoch
 * milliseconds, or seconds elsewhere). In the body (retryDelayIn): a Google
 * API error's `google.rpc.RetryInfo` `retryDelay` ("37s", Gemini's 429), or
 * OpenRouter's `error.metadata.headers` `X-RateLimit-Reset` (the limit of
 * the provider behind it, or a free model's daily cap: hours away, so the
 * chain moves on instead of retrying into it).
 */
export function parseRetryAfter(headers: Headers, nowMs: number): number | undefined {
  const ms = headers.get('retry-after-ms')
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms))
  const value = headers.get('retry-after')?.trim()
  if (!value) return waitUntil(headers.get('x-ratelimit-reset'), nowMs)
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000)
  // An HTTP date starts with its day's name (`Sun, 06 Nov 1994 …`, or the obsolete forms): Date.parse
  // reads far more (`-5`, `1, 2`) as some date long past, which would be "retry at once".
  if (!/^[A-Za-z]{3,9},? /.test(value)) return undefined
  const date = Date.parse(value)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, date - nowMs)
}

/** The wait until an epoch instant given in milliseconds or seconds (told apart at 10^11); undefined for anything else (a duration). */
function waitUntil(value: unknown, nowMs: number): number | undefined {
  const text = typeof value === 'number' ? String(value) : typeof value === 'string' ? value.trim() : ''
  if (!/^\d{10,13}$/.test(text)) return undefined
  const n = Number(text)
  return Math.max(0, (n >= 1e11 ? n : n * 1000) - nowMs)
}

/**
 * How long an error body (its JSON, parsed by errorBody) asks us to wait (see parseRetryAfter): a
 * `RetryInfo` detail's `retryDelay`, or `metadata.headers` `X-RateLimit-Reset`. The body may be one
 * error or a list of one.
 */
export function retryDelayIn(body: unknown, nowMs: number): number | undefined {
  const one = Array.isArray(body) && body.length === 1 ? body[0] : body
  const error = isRecord(one) && isRecord(one.error) ? one.error : null
  if (!error) return undefined
  if (Array.isArray(error.details)) {
    for (const detail of error.details) {
      const delay = isRecord(detail) && String(detail['@type']).includes('RetryInfo') ? detail.retryDelay : undefined
      if (typeof delay === 'string' && /^\d+(\.\d+)?s$/.test(delay)) return Math.ceil(Number(delay.slice(0, -1)) * 1000)
    }
  }
  const headers = isRecord(error.metadata) ? error.metadata.headers : undefined
  if (isRecord(headers)) {
    for (const [name, value] of Object.entries(headers)) if (name.toLowerCase() === 'x-ratelimit-reset') return waitUntil(value, nowMs)
  }
  return undefined
}

/** `2 s`, `1.5 s`, `250 ms`: for messages. */
export function formatWait(ms: number): string {
  return ms >= 1000 ? `${Number((ms / 1000).toFixed(1))} s` : `${ms} ms`
}
