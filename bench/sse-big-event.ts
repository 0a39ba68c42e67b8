/**
 * The SSE reader on one large event: the time to read an event of N MB
 * arriving in reads of K bytes (a generated image as one base64 delta, over
 * TLS), and the longest the event loop went without a turn meanwhile.
 * `bun bench/sse-big-event.ts` prints one JSON line per size.
 */
import { SseReader } from '../providers/sse.ts'

const encoder = new TextEncoder()

async function readOne(megabytes: number, readBytes: number) {
  const bytes = encoder.encode(`data: "${'x'.repeat(megabytes * 1024 * 1024)}"\n\n`)
  let at = 0
  const body = new ReadableStream<Uint8Array>({
    pull(stream) {
      if (at >= bytes.length) return stream.close()
      stream.enqueue(bytes.subarray(at, at + readBytes))
      at += readBytes
    },
  })
  const reader = new SseReader(body)
  let last = performance.now()
  let longestGapMs = 0
  const ticker = setInterval(() => {
    const now = performance.now()
    longestGapMs = Math.max(longestGapMs, now - last)
    last = now
  }, 5)
  const startedAt = performance.now()
  const event = await reader.next()
  const ms = Math.round(performance.now() - startedAt)
  await Bun.sleep(10)
  clearInterval(ticker)
  return { megabytes, readBytes, ms, longestGapMs: Math.round(longestGapMs), chars: event?.data.length, searchedChars: reader.searchedChars, joinedChars: reader.joinedChars }
}

for (const [megabytes, readBytes] of [[1, 16384], [4, 16384], [8, 16384], [15, 16384], [4, 65536], [15, 65536]] as const) {
  console.log(JSON.stringify(await readOne(megabytes, readBytes)))
}
