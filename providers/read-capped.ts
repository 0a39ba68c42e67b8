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

/** Reads at most `maxBytes` of `response`'s body. */
export async function readCapped(response: Response, maxBytes: number): Promise<CappedBody> {
  const declared = Number(response.headers.get('content-length') ?? Number.NaN)
  // The common case, a declared length within the ceiling, takes the native path.
  if (Number.isFinite(declared) && declared <= maxBytes) return { bytes: await response.bytes(), truncated: false }
  if (!response.body) return { bytes: new Uint8Array(0), truncated: false }
  const reader = response.body.getReader()
  const parts: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return { bytes: join(parts, size), truncated: false }
    const room = maxBytes - size
    if (value.length > room) {
      parts.push(value.subarray(0, room))
      await reader.cancel().catch(() => {})
      return { bytes: join(parts, maxBytes), truncated: true }
    }
    parts.push(value)
    size += value.length
  }
}

function join(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!
  const out = new Uint8Array(size)
  let offset = 0
  for (const part of parts) {
    out.set(part, offset)
    offset += part.length
  }
  return out
}
