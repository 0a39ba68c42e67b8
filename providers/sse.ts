/**
 * A server-sent events reader (the WHATWG event-stream format): turns a
 * byte stream into events one at a time, so the caller can time each read
 * (idle timeouts) and stop whenever it likes. Comments, `id:` and `retry:`
 * lines are skipped; `data:` lines are joined with newlines. An event whose
 * data is blank (a bare `data:` line, which some upstreams send to keep a
 * connection open) carries nothing in the JSON streams witness reads, and is
 * skipped too: parsed, it failed a healthy stream as malformed.
 */
import { MalformedResponseError, type SseEvent, isRecord } from './types.ts'

/**
 * One event larger than this is refused (MalformedResponseError): an upstream
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
  /**
   * Text read that holds no blank line yet, in the pieces it came in: an event arriving in many
   * reads is joined once, when its blank line comes, not copied again at every read.
   */
  private pending: string[] = []
  private pendingChars = 0
  /** Text holding one or more whole events, and where in it the next one starts. */
  private ready = ''
  private readyAt = 0
  private ended = false
  /** For a reader over events witness wrote (`over`): the digest of what was received instead. */
  private received: string | null | undefined
  /** For a reader over events witness wrote (`over`): those still to hand out. */
  private given: SseEvent[] | null = null
  /**
   * Characters searched for a blank line so far: each read's text once, plus the few characters
   * before it (a line end split across reads). Linear in what was read, however large an event is.
   */
  searchedChars = 0
  /**
   * Characters copied to make the pending pieces one string: each event once, when its blank line
   * has come (appending to one string instead would copy all of it again at every search).
   */
  joinedChars = 0
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

  /**
   * A reader over events witness wrote itself (a whole answer an upstream sent in place of its
   * stream): `receivedSha256` is the digest of what was received, which these events are not.
   */
  static over(events: readonly SseEvent[], receivedSha256: string | null): SseReader {
    const reader = new SseReader(new Response('').body!)
    reader.received = receivedSha256
    // Handed out as they are: not written as text and read again, where one event holding a whole
    // answer of more than MAX_EVENT_CHARS (an upstream's limit, not witness's) would be refused.
    reader.given = [...events]
    return reader
  }

  /** The sha256 (hex) of the bytes read so far, if a hasher was given. */
  digest(): string | null {
    if (this.received !== undefined) return this.received
    return this.hasher ? this.hasher.copy().digest('hex') : null
  }

  /** The next event, or null when the stream ended cleanly. Rejects when the stream breaks. */
  async next(): Promise<SseEvent | null> {
    if (this.given) return this.given.shift() ?? null
    for (;;) {
      const event = this.takeEvent()
      if (event) return event
      if (this.ended) return this.takeRest()
      const { value, done } = await this.reader.read()
      if (done) {
        this.add(this.decoder.decode())
        this.ended = true
      } else {
        this.lastBytesAt = performance.now()
        this.hasher?.update(value)
        this.add(this.decoder.decode(value, { stream: true }))
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

  /**
   * Takes in one read's text. Only it, with the last characters before it (a line end split across
   * reads, `\r\n\r` + `\n`), can hold the blank line that ends the pending event: what came before
   * was searched already. When it does, the pending pieces are joined, once, for takeEvent.
   */
  private add(text: string): void {
    if (!text) return
    const searched = this.pendingEnd() + text
    this.searchedChars += searched.length
    BLANK_LINE.lastIndex = 0
    const ends = BLANK_LINE.test(searched)
    this.pending.push(text)
    this.pendingChars += text.length
    if (!ends) return
    if (this.pending.length === 1) this.ready = text
    else {
      this.ready = this.pending.join('')
      this.joinedChars += this.ready.length
    }
    this.readyAt = 0
    this.pending = []
    this.pendingChars = 0
  }

  /** The last (up to) three characters of the pending text: a blank line is at most four. */
  private pendingEnd(): string {
    let end = ''
    for (let i = this.pending.length - 1; i >= 0 && end.length < 3; i--) end = this.pending[i]!.slice(-(3 - end.length)) + end
    return end
  }

  /** Parses one complete event (terminated by a blank line) off the ready text. */
  private takeEvent(): SseEvent | null {
    while (this.ready) {
      BLANK_LINE.lastIndex = this.readyAt
      const match = BLANK_LINE.exec(this.ready)
      if (!match) {
        // The rest begins the next event: pending, with no blank line in it.
        const rest = this.ready.slice(this.readyAt)
        this.ready = ''
        this.readyAt = 0
        if (rest) {
          this.pending = [rest]
          this.pendingChars = rest.length
        }
        break
      }
      const block = this.ready.slice(this.readyAt, match.index)
      this.readyAt = match.index + match[0].length
      const event = parseBlock(block)
      if (event) return event
    }
    if (this.pendingChars > MAX_EVENT_CHARS) throw new MalformedResponseError(`an event longer than ${MAX_EVENT_CHARS / 1024 / 1024} MB`)
    return null
  }

  /** At the end of the stream, a last event without its blank line is still delivered. */
  private takeRest(): SseEvent | null {
    const rest = this.pending.join('')
    this.pending = []
    this.pendingChars = 0
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

/** An event's data as the JSON object the streams witness reads carry; MalformedResponseError when it is not one. */
export function eventJson(event: SseEvent): Record<string, unknown> {
  let json: unknown
  try {
    json = JSON.parse(event.data)
  } catch {
    throw new MalformedResponseError('stream event is not JSON')
  }
  if (!isRecord(json)) throw new MalformedResponseError('stream event is not a JSON object')
  return json
}
