/**
 * A server-sent events reader (the WHATWG event-stream format): turns a
 * byte stream into events one at a time, so the caller can time each read
 * (idle timeouts) and stop whenever it likes. Comments, `id:` and `retry:`
 * lines are skipped; `data:` lines are joined with newlines. An event whose
 * data is blank (a bare `data:` line, which some upstreams send to keep a
 * connection open) carries nothing in the JSON streams witness reads, and is
 * skipped too: parsed, it failed a healthy stream as malformed.
 */
import { MalformedResponse, type SseEvent } from './types.ts'

/**
 * One event larger than this is refused (MalformedResponse): an upstream
 * that never sends a blank line must not grow the buffer without bound.
 * Real events are a few kilobytes; a whole image in one event fits.
 */
export const MAX_EVENT_CHARS = 16 * 1024 * 1024

/**
 * A blank line, the end of an event: two line ends in a row, each CRLF, LF or CR, mixed as they
 * come (`\n\r\n` too). A CR followed by LF is one line end, never two.
 */
const BLANK_LINE = /(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r(?!\n))/g

export class SseReader {
  private readonly reader: ReadableStreamDefaultReader<Uint8Array>
  private readonly decoder = new TextDecoder()
  private buffer = ''
  /** Where to resume looking for a blank line: the buffer before it has none. */
  private scanned = 0
  private ended = false
  /**
   * When bytes last came in (`performance.now()`), whatever they were: an event, part of one, or a
   * comment. Providers send comments to keep a quiet stream alive (OpenRouter's
   * `: OPENROUTER PROCESSING`); the idle limit counts them as signs of life.
   */
  lastBytesAt = 0

  /** `hasher`, when given, sees every byte read (for the sha256 of what was received). */
  constructor(
    body: ReadableStream<Uint8Array>,
    private readonly hasher?: Bun.CryptoHasher,
  ) {
    this.reader = body.getReader()
  }

  /** The sha256 (hex) of the bytes read so far, if a hasher was given. */
  digest(): string | null {
    return this.hasher ? this.hasher.copy().digest('hex') : null
  }

  /** The next event, or null when the stream ended cleanly. Rejects when the stream breaks. */
  async next(): Promise<SseEvent | null> {
    for (;;) {
      const event = this.takeEvent()
      if (event) return event
      if (this.ended) return this.takeRest()
      const { value, done } = await this.reader.read()
      if (done) {
        this.buffer += this.decoder.decode()
        this.ended = true
      } else {
        this.lastBytesAt = performance.now()
        this.hasher?.update(value)
        this.buffer += this.decoder.decode(value, { stream: true })
      }
    }
  }

  /** Stops reading and releases the connection. */
  async cancel(reason?: unknown): Promise<void> {
    try {
      await this.reader.cancel(reason)
    } catch {
      // already broken or closed
    }
  }

  /** Parses one complete event (terminated by a blank line) off the buffer. */
  private takeEvent(): SseEvent | null {
    for (;;) {
      BLANK_LINE.lastIndex = this.scanned
      const match = BLANK_LINE.exec(this.buffer)
      if (!match) {
        if (this.buffer.length > MAX_EVENT_CHARS) throw new MalformedResponse(`an event longer than ${MAX_EVENT_CHARS / 1024 / 1024} MB`)
        // A line end split across reads (`\r\n\r` + `\n`) is found on the next look.
        this.scanned = Math.max(0, this.buffer.length - 3)
        return null
      }
      const block = this.buffer.slice(0, match.index)
      this.buffer = this.buffer.slice(match.index + match[0].length)
      this.scanned = 0
      const event = parseBlock(block)
      if (event) return event
    }
  }

  /** At the end of the stream, a last event without its blank line is still delivered. */
  private takeRest(): SseEvent | null {
    const rest = this.buffer
    this.buffer = ''
    this.scanned = 0
    return rest.trim() ? parseBlock(rest) : null
  }
}

function parseBlock(block: string): SseEvent | null {
  let event: string | null = null
  const data: string[] = []
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (line === '' || line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') event = value
    else if (field === 'data') data.push(value)
  }
  const joined = data.join('\n')
  if (joined.trim() === '') return null
  return { event, data: joined }
}

/** One event as SSE text: a `data:` line per line of its data (an event may span several). */
export function frame(event: SseEvent): string {
  const data = event.data
    .split('\n')
    .map((line) => `data: ${line}\n`)
    .join('')
  return event.event ? `event: ${event.event}\n${data}\n` : `${data}\n`
}
