/**
 * The stored form of a slice's partial (stats_slice.combos): every
 * ComboPartial of the slice in one compact, exact byte string.
 *
 *   format      1 byte (1)
 *   strings     count, then each: byte length, UTF-8 (agents, chains, providers, models, once each)
 *   combos      count, then each:
 *     agent, chain + 1 (0: no chain), provider, model    indexes into the strings
 *     success, error, timeout, tokensIn, tokensOut, reportedCount, reportedUsd,
 *     unreportedCount, unreportedTokensIn, unreportedTokensOut, halfUsage,
 *     requests, requestSuccesses                          numbers (below)
 *     latency histogram (latency -> count, ascending): kind, latencies,
 *       distinct latencies, then per distinct latency
 *       kinds 0 (whole ms up to 2^31 - 1) and 2 (whole ms, larger):
 *         2 * (step from the previous latency) + (1 if it occurs more than
 *         once), then, if so, its count - 2;
 *       kind 1 (anything else): the latency as a number, and its count
 *
 * Counts, indexes and steps are unsigned LEB128 varints (7 bits a byte). A
 * number is a varint of 2 * zigzag(n) when n is a whole number below 2^50
 * in size, else the varint 1 and the double (8 bytes, little endian).
 *
 * In 10 minutes of one combo most latencies occur once (776k distinct
 * among 880k in a benchmark day), so a latency costs one or two bytes
 * (1.2 MB for a day of a million rows). Read back, the histogram becomes
 * the sorted latencies SliceFolder keeps (Int32Array, or Float64Array where
 * it would have used one), so stored and folded partials are identical.
 * (Fixed 16-bit latencies were tried: 2.0 MB a day, and no faster to read
 * cold; the time goes to the per-combo work, not the latencies.)
 */
import { type ComboPartial, comboKey } from './stats.ts'

const FORMAT = 1
const WHOLE = 0
const ANY = 1
const WHOLE_WIDE = 2
const SMALL = 2 ** 50
const INT32_MAX = 2_147_483_647

class Writer {
  private buf = new Uint8Array(256)
  private view = new DataView(this.buf.buffer)
  length = 0

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return
    const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n))
    next.set(this.buf.subarray(0, this.length))
    this.buf = next
    this.view = new DataView(next.buffer)
  }

  byte(b: number): void {
    this.room(1)
    this.buf[this.length++] = b
  }

  /** A whole number from 0 to 2^53. */
  varint(n: number): void {
    this.room(8)
    while (n >= 128) {
      this.buf[this.length++] = (n % 128) | 128
      n = Math.floor(n / 128)
    }
    this.buf[this.length++] = n
  }

  number(n: number): void {
    if (Number.isInteger(n) && Math.abs(n) < SMALL) {
      this.varint(2 * (n >= 0 ? 2 * n : -2 * n - 1))
      return
    }
    this.varint(1)
    this.room(8)
    this.view.setFloat64(this.length, n, true)
    this.length += 8
  }

  bytes(b: Uint8Array): void {
    this.varint(b.length)
    this.room(b.length)
    this.buf.set(b, this.length)
    this.length += b.length
  }

  done(): Uint8Array {
    return this.buf.slice(0, this.length)
  }
}

class Reader {
  private at = 0
  private readonly view: DataView

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  }

  byte(): number {
    if (this.at >= this.buf.length) throw new RangeError('stored slice: truncated')
    return this.buf[this.at++]!
  }

  varint(): number {
    // Read inline (no call a byte): a day of stored slices holds about 130,000 of them.
    const buf = this.buf
    let at = this.at
    let b = buf[at++]
    if (b === undefined) throw new RangeError('stored slice: truncated')
    let n = b & 127
    for (let scale = 128; b >= 128; scale *= 128) {
      b = buf[at++]
      if (b === undefined) throw new RangeError('stored slice: truncated')
      n += (b & 127) * scale
    }
    this.at = at
    return n
  }

  number(): number {
    const v = this.varint()
    if (v === 1) {
      if (this.at + 8 > this.buf.length) throw new RangeError('stored slice: truncated')
      const n = this.view.getFloat64(this.at, true)
      this.at += 8
      return n
    }
    const z = v / 2
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2
  }

  bytes(): Uint8Array {
    const n = this.varint()
    if (this.at + n > this.buf.length) throw new RangeError('stored slice: truncated')
    const out = this.buf.subarray(this.at, this.at + n)
    this.at += n
    return out
  }

  get ended(): boolean {
    return this.at === this.buf.length
  }

  /**
   * A kind 0 or 2 histogram, written straight into `out` as sorted
   * latencies: the hot loop of a cold /stats (about a million latencies a
   * day), so the varints are read inline.
   */
  wholeInto(out: Int32Array | Float64Array, distinct: number): void {
    const buf = this.buf
    let at = this.at
    let value = 0
    let filled = 0
    for (let i = 0; i < distinct; i++) {
      let b = buf[at++]!
      let v = b & 127
      for (let scale = 128; b >= 128; scale *= 128) {
        b = buf[at++]!
        v += (b & 127) * scale
      }
      value += Math.floor(v / 2)
      if (v % 2 === 0) {
        out[filled++] = value
        continue
      }
      b = buf[at++]!
      let count = b & 127
      for (let scale = 128; b >= 128; scale *= 128) {
        b = buf[at++]!
        count += (b & 127) * scale
      }
      count += 2
      if (filled + count > out.length) throw new RangeError('stored slice: histogram larger than its count')
      out.fill(value, filled, filled + count)
      filled += count
    }
    // Reading past the end gives undefined (0 above): caught here, as is a count that does not add up.
    if (at > buf.length) throw new RangeError('stored slice: truncated')
    if (filled !== out.length) throw new RangeError('stored slice: histogram count does not add up')
    this.at = at
  }
}

/** Encodes a slice's combos (their latencies ascending, as SliceFolder leaves them). */
export function encodeCombos(combos: Iterable<ComboPartial>): Uint8Array {
  const list = [...combos]
  const strings = new Map<string, number>()
  const index = (s: string) => {
    let i = strings.get(s)
    if (i === undefined) strings.set(s, (i = strings.size))
    return i
  }
  const refs = list.map((c) => [index(c.agent), c.chain === null ? 0 : index(c.chain) + 1, index(c.provider), index(c.model)])
  const out = new Writer()
  const utf8 = new TextEncoder()
  out.byte(FORMAT)
  out.varint(strings.size)
  for (const s of strings.keys()) out.bytes(utf8.encode(s))
  out.varint(list.length)
  list.forEach((c, i) => {
    for (const ref of refs[i]!) out.varint(ref)
    for (const n of [c.success, c.error, c.timeout, c.tokensIn, c.tokensOut, c.reportedCount, c.reportedUsd]) out.number(n)
    for (const n of [c.unreportedCount, c.unreportedTokensIn, c.unreportedTokensOut, c.halfUsage, c.requests, c.requestSuccesses]) out.number(n)
    writeHistogram(out, c.latencies)
  })
  return out.done()
}

function writeHistogram(out: Writer, latencies: ArrayLike<number>): void {
  const values: number[] = []
  const counts: number[] = []
  for (let i = 0; i < latencies.length; i++) {
    const v = latencies[i]!
    if (i > 0 && v < latencies[i - 1]!) throw new RangeError('stored slice: latencies must be ascending')
    if (values.length && values[values.length - 1] === v) counts[counts.length - 1]!++
    else {
      values.push(v)
      counts.push(1)
    }
  }
  const whole = values.every((v) => Number.isSafeInteger(v) && v >= 0 && v < SMALL)
  // Whole and within Int32: read back as the Int32Array SliceFolder keeps; otherwise a Float64Array, as it does.
  out.varint(!whole ? ANY : values.length && values[values.length - 1]! > INT32_MAX ? WHOLE_WIDE : WHOLE)
  out.varint(latencies.length)
  out.varint(values.length)
  let previous = 0
  values.forEach((v, i) => {
    const count = counts[i]!
    if (whole) {
      out.varint(2 * (v - previous) + (count > 1 ? 1 : 0))
      if (count > 1) out.varint(count - 2)
      previous = v
    } else {
      out.number(v)
      out.varint(count)
    }
  })
}

/** Decodes what encodeCombos wrote: the combos by key, latencies ascending as typed arrays. */
export function decodeCombos(bytes: Uint8Array): Map<string, ComboPartial> {
  const r = new Reader(bytes)
  const format = r.byte()
  if (format !== FORMAT) throw new RangeError(`stored slice: unknown format ${format}`)
  const utf8 = new TextDecoder('utf-8', { fatal: true })
  const strings = Array.from({ length: r.varint() }, () => utf8.decode(r.bytes()))
  const str = (i: number) => {
    const s = strings[i]
    if (s === undefined) throw new RangeError('stored slice: bad string index')
    return s
  }
  const combos = new Map<string, ComboPartial>()
  for (let n = r.varint(); n > 0; n--) {
    const agent = str(r.varint())
    const chainRef = r.varint()
    const chain = chainRef === 0 ? null : str(chainRef - 1)
    const provider = str(r.varint())
    const model = str(r.varint())
    // In encodeCombos' order (object literals evaluate left to right).
    const combo: ComboPartial = {
      agent, chain, provider, model,
      success: r.number(), error: r.number(), timeout: r.number(), tokensIn: r.number(), tokensOut: r.number(),
      reportedCount: r.number(), reportedUsd: r.number(), unreportedCount: r.number(), unreportedTokensIn: r.number(),
      unreportedTokensOut: r.number(), halfUsage: r.number(), requests: r.number(), requestSuccesses: r.number(),
      latencies: readHistogram(r),
    }
    combos.set(comboKey(agent, chain, provider, model), combo)
  }
  if (!r.ended) throw new RangeError('stored slice: trailing bytes')
  return combos
}

function readHistogram(r: Reader): Int32Array | Float64Array {
  const kind = r.varint()
  if (kind !== WHOLE && kind !== ANY && kind !== WHOLE_WIDE) throw new RangeError(`stored slice: unknown histogram kind ${kind}`)
  const total = r.varint()
  const distinct = r.varint()
  if (distinct > total) throw new RangeError('stored slice: more distinct latencies than latencies')
  if (kind !== ANY) {
    const out = kind === WHOLE ? new Int32Array(total) : new Float64Array(total)
    r.wholeInto(out, distinct)
    if (kind === WHOLE && total > 0 && out[total - 1]! < 0) throw new RangeError('stored slice: latency beyond its kind')
    return out
  }
  const out = new Float64Array(total)
  let filled = 0
  for (let i = 0; i < distinct; i++) {
    const value = r.number()
    const count = r.varint()
    if (filled + count > total) throw new RangeError('stored slice: histogram larger than its count')
    out.fill(value, filled, filled + count)
    filled += count
  }
  if (filled !== total) throw new RangeError('stored slice: histogram count does not add up')
  return out
}
