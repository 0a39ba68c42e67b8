/**
 * HTTP/1.1 over a raw loopback socket, for requests fetch() refuses to
 * send: bare CR or LF in headers, invalid UTF-8 in the request line,
 * bodies shorter than their Content-Length, bodies trickled byte by byte.
 * Each request has its own connection (`Connection: close`).
 */

export interface RawRequest {
  /** Everything before the body: request line and headers, ending with the blank line. */
  head: Uint8Array
  /** The body, sent as these pieces. */
  pieces: Uint8Array[]
  /** Wait this long between pieces (a slow body). */
  pieceDelayMs: number
}

export interface RawResponse {
  /** The status, or null when no response came before the connection closed or the deadline. */
  status: number | null
  /** Size of what came back (head and body). */
  bytes: number
  body: string
  timedOut: boolean
}

const encoder = new TextEncoder()

export function bytesOf(...parts: (string | Uint8Array | number[])[]): Uint8Array<ArrayBuffer> {
  const chunks = parts.map((p) => (typeof p === 'string' ? encoder.encode(p) : p instanceof Uint8Array ? p : new Uint8Array(p)))
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}

/**
 * Builds a request. Headers are written as given (names and values may hold
 * anything); Host and Connection: close come first, and Content-Length is
 * added for a body unless a header already frames it.
 */
export function rawRequest(
  method: string,
  target: string | Uint8Array,
  headers: [string | Uint8Array, string | Uint8Array][],
  body: Uint8Array | null,
  options: { pieceBytes?: number; pieceDelayMs?: number } = {},
): RawRequest {
  const framed = headers.some(([name]) => typeof name === 'string' && /^(content-length|transfer-encoding)$/i.test(name))
  const lines: (string | Uint8Array)[] = [`${method} `, target, ' HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n']
  for (const [name, value] of headers) lines.push(name, ': ', value, '\r\n')
  if (body && !framed) lines.push(`Content-Length: ${body.length}\r\n`)
  lines.push('\r\n')
  const size = options.pieceBytes ?? Number.POSITIVE_INFINITY
  const pieces: Uint8Array[] = []
  if (body) for (let at = 0; at < body.length; at += size) pieces.push(body.subarray(at, Math.min(body.length, at + size)))
  return { head: bytesOf(...lines), pieces, pieceDelayMs: options.pieceDelayMs ?? 0 }
}

/** Sends the request on a new connection; resolves with the response once it is complete, the connection closes, or the deadline passes. */
export async function sendRaw(port: number, request: RawRequest, deadlineMs: number): Promise<RawResponse> {
  let received: Uint8Array = new Uint8Array(0)
  let finish!: (timedOut: boolean) => void
  const finished = new Promise<boolean>((resolve) => (finish = resolve))
  const socket = await Bun.connect({
    hostname: '127.0.0.1',
    port,
    socket: {
      data(_socket, chunk) {
        received = bytesOf(received, chunk)
        if (isComplete(received)) finish(false)
      },
      close() {
        finish(false)
      },
      error() {
        finish(false)
      },
    },
  })
  const timer = setTimeout(() => finish(true), deadlineMs)
  let closed = false
  void finished.then(() => (closed = true))
  const write = async (bytes: Uint8Array) => {
    let at = 0
    while (at < bytes.length && !closed) {
      const n = socket.write(bytes.subarray(at))
      at += Math.max(0, n)
      if (at < bytes.length) await Bun.sleep(1)
    }
  }
  await write(request.head)
  for (const piece of request.pieces) {
    if (closed) break
    if (request.pieceDelayMs > 0) await Bun.sleep(request.pieceDelayMs)
    await write(piece)
  }
  const timedOut = await finished
  clearTimeout(timer)
  socket.end()
  const text = new TextDecoder().decode(received)
  const status = /^HTTP\/1\.[01] (\d{3})/.exec(text)
  const split = text.indexOf('\r\n\r\n')
  return { status: status ? Number(status[1]) : null, bytes: received.length, body: split >= 0 ? text.slice(split + 4) : '', timedOut: timedOut && !status }
}

/** Whether a response is all there: its head, and a body framed by Content-Length or chunked encoding. */
function isComplete(bytes: Uint8Array): boolean {
  const text = new TextDecoder().decode(bytes)
  const split = text.indexOf('\r\n\r\n')
  if (split < 0) return false
  const head = text.slice(0, split)
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
  if (length) return bytes.length - (split + 4) >= Number(length[1])
  if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) return text.endsWith('0\r\n\r\n')
  return false
}
