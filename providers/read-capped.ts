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
}

/**
 * Reads at most `maxBytes` of `response`'s body (as decoded: Bun undoes a
 * Content-Encoding itself, and a few compressed kilobytes can expand to
 * gigabytes, so the ceiling holds for what comes out, not what was sent).
 */
export async function readCapped(response: Response, maxBytes: number): Promise<CappedBody> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  const encoded = (response.headers.get('content-encoding') ?? 'identity').trim().toLowerCase() !== 'identity'
  // The common case, a declared length within the ceiling, takes the native path; a compressed body's declared length says nothing of its size.
  if (!encoded && Number.isFinite(declared) && declared <= maxBytes) return { bytes: await response.bytes(), truncated: false }
  if (!response.body) return { bytes: new Uint8Array(0), truncated: false }
  const reader = response.body.getReader()
  const parts: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return { bytes: join(parts), truncated: false }
    const room = maxBytes - size
    if (value.length > room) {
      parts.push(value.subarray(0, room))
      await reader.cancel().catch(() => {})
      return { bytes: join(parts), truncated: true }
    }
    parts.push(value)
    size += value.length
  }
}

function join(parts: Uint8Array[]): Uint8Array {
  return parts.length === 1 ? parts[0]! : new Uint8Array(Bun.concatArrayBuffers(parts))
}
