/**
 * The lines of a file, read a chunk at a time: a day of an export's rows
 * may be hundreds of MB, and verify holds one line of it at a time, not the
 * file. Lines are split on `\n` only and numbered from 1, blank ones
 * included (as `split('\n')` numbers them); the text is without its `\n`.
 */
import { closeSync, openSync, readSync } from 'node:fs'

const CHUNK_BYTES = 1 << 20

export function* fileLines(path: string): Generator<{ text: string; number: number }> {
  const fd = openSync(path, 'r')
  try {
    const chunk = Buffer.allocUnsafe(CHUNK_BYTES)
    // The start of a line that runs past the chunk it began in (copies: the chunk is reused).
    let head: Buffer[] = []
    let number = 0
    for (;;) {
      const got = readSync(fd, chunk, 0, CHUNK_BYTES, null)
      if (got === 0) break
      const bytes = chunk.subarray(0, got)
      let start = 0
      for (let eol = bytes.indexOf(10); eol >= 0; eol = bytes.indexOf(10, start)) {
        const piece = bytes.subarray(start, eol)
        const text = head.length ? Buffer.concat([...head, piece]).toString('utf8') : piece.toString('utf8')
        head = []
        yield { text, number: ++number }
        start = eol + 1
      }
      if (start < got) head.push(Buffer.from(bytes.subarray(start)))
    }
    if (head.length) yield { text: Buffer.concat(head).toString('utf8'), number: ++number }
  } finally {
    closeSync(fd)
  }
}
