/**
 * Reading an upstream body with a ceiling. An upstream is not trusted to be
 * small: a broken proxy can answer an error with a gigabyte of HTML, or a
 * stream with no line ends. Past the ceiling witness stops reading and
 * closes the connection instead of holding it all in memory.
 */

export interface CappedBody {
  bytes: Uint8Array
  /** The body went on past `maxBytes`; the rest was not read. */
  truncated: boolean
  /** The body stopped coming for longer than the wait allowed; the rest was not read. */
  stalled: boolean
}

/**
 * Reads at most `maxBytes` of `response`'s body (as decoded: Bun undoes a
 * Content-Encoding itself, and a few compressed kilobytes can expand to
 * gigabytes, so the ceiling holds for what comes out, not what was sent).
 * With `waitMs`, reading stops after that long, with what came by then
 * (`stalled`): an error body that stalls must not hold up its status.
 */
export async function readCapped(response: Response, maxBytes: number, waitMs?: number): Promise<CappedBody> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  const encoded = (response.headers.get('content-encoding') ?? 'identity').trim().toLowerCase() !== 'identity'
  // The common case, a declared length within the ceiling, takes the native path (unless the read is
  // timed: a body may declare a length and stall); a compressed body's declared length says nothing of its size.
  if (waitMs === undefined && !encoded && Number.isFinite(declared) && declared <= maxBytes) return { bytes: await response.bytes(), truncated: false, stalled: false }
  if (!response.body) return { bytes: new Uint8Array(0), truncated: false, stalled: false }
  const reader = response.body.getReader()
  const parts: Uint8Array[] = []
  let size = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  const stalled = waitMs === undefined ? null : new Promise<'stalled'>((resolve) => (timer = setTimeout(() => resolve('stalled'), Math.max(0, waitMs))))
  try {
    for (;;) {
      const read = reader.read()
      const next = stalled ? await Promise.race([read, stalled]) : await read
      if (next === 'stalled') {
        // Not waited for: the caller's deadline is near, and what came is its answer.
        read.catch(() => {})
        reader.cancel().catch(() => {})
        return { bytes: join(parts), truncated: false, stalled: true }
      }
      const { value, done } = next
      if (done) return { bytes: join(parts), truncated: false, stalled: false }
      const room = maxBytes - size
      if (value.length > room) {
        parts.push(value.subarray(0, room))
        await reader.cancel().catch(() => {})
        return { bytes: join(parts), truncated: true, stalled: false }
      }
      parts.push(value)
      size += value.length
    }
  } finally {
    clearTimeout(timer)
  }
}

function join(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 0) return new Uint8Array(0)
  return parts.length === 1 ? parts[0]! : new Uint8Array(Bun.concatArrayBuffers(parts))
}
