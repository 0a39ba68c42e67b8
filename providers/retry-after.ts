/**
 * Reads how long a provider asks us to wait: `retry-after-ms` (OpenAI),
 * `retry-after` in seconds or as an HTTP date (RFC 9110), or, in the body of
 * a Google API's error (Gemini's 429), a `google.rpc.RetryInfo` detail's
 * `retryDelay` ("37s").
 */
export function parseRetryAfter(headers: Headers, nowMs: number): number | undefined {
  const ms = headers.get('retry-after-ms')
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms))
  const value = headers.get('retry-after')?.trim()
  if (!value) return undefined
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000)
  const date = Date.parse(value)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, date - nowMs)
}

/** The `retryDelay` of a Google API error body (`{"error":{"details":[{"@type":"…RetryInfo","retryDelay":"37s"}]}}`, or a list of one). */
export function retryDelayIn(text: string): number | undefined {
  if (!text.includes('RetryInfo')) return undefined
  try {
    let json: unknown = JSON.parse(text)
    if (Array.isArray(json) && json.length === 1) json = json[0]
    const details = (json as { error?: { details?: unknown } })?.error?.details
    if (!Array.isArray(details)) return undefined
    for (const detail of details) {
      const delay = (detail as { retryDelay?: unknown })?.retryDelay
      if (typeof delay === 'string' && /^\d+(\.\d+)?s$/.test(delay)) return Math.ceil(Number(delay.slice(0, -1)) * 1000)
    }
  } catch {
    // not JSON
  }
  return undefined
}

/** `2 s`, `1.5 s`, `250 ms`: for messages. */
export function formatWait(ms: number): string {
  return ms >= 1000 ? `${Number((ms / 1000).toFixed(1))} s` : `${ms} ms`
}
