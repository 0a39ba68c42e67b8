/**
 * A streaming load generator, run in its own process: keeps N streaming
 * requests open for S seconds and reports time to first byte and chunk
 * throughput as JSON on stdout.
 * `bun bench/stream-load.ts URL BODY_JSON CONCURRENCY SECONDS [HEADER:VALUE ...]`
 */
const [url, body, concurrencyArg, secondsArg, ...headerArgs] = process.argv.slice(2)
if (!url || !body || !concurrencyArg || !secondsArg) throw new Error('usage: stream-load.ts URL BODY CONCURRENCY SECONDS [H:V ...]')
const headers: Record<string, string> = { 'content-type': 'application/json' }
for (const h of headerArgs) {
  const i = h.indexOf(':')
  headers[h.slice(0, i)] = h.slice(i + 1)
}
const deadline = performance.now() + Number(secondsArg) * 1000
const ttfb: number[] = []
let chunks = 0
let streams = 0
let errors = 0

async function one(): Promise<void> {
  const started = performance.now()
  const res = await fetch(url!, { method: 'POST', headers, body })
  if (!res.ok || !res.body) {
    errors++
    await res.body?.cancel()
    return
  }
  const reader = res.body.getReader()
  let first = true
  let text = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) break
    if (first) {
      ttfb.push(performance.now() - started)
      first = false
    }
    text += new TextDecoder().decode(value)
    const frames = text.split('\n\n')
    text = frames.pop() ?? ''
    chunks += frames.length
  }
  streams++
}

async function client(): Promise<void> {
  while (performance.now() < deadline) {
    try {
      await one()
    } catch {
      errors++
    }
  }
}

const started = performance.now()
await Promise.all(Array.from({ length: Number(concurrencyArg) }, client))
const seconds = (performance.now() - started) / 1000
ttfb.sort((a, b) => a - b)
const pct = (p: number) => (ttfb.length ? ttfb[Math.min(ttfb.length - 1, Math.floor((p / 100) * ttfb.length))]! : Number.NaN)
console.log(JSON.stringify({ streams, errors, ttfb_p50_ms: pct(50), ttfb_p99_ms: pct(99), chunks, chunks_per_s: chunks / seconds }))
export {}
