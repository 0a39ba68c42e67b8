/**
 * Receipts: what an agent can paste into a report to prove a call. A small
 * JSON, base64url-encoded: the machine and, for each row the request wrote,
 * its log id and chain hash. `witness verify --receipt` checks it against
 * the log.
 *
 *   {"v":1,"m":"forge-01","r":[[41,"9f2c…"],[42,"07ab…"]]}
 */

export interface Receipt {
  machine: string
  rows: { id: number; hash: string }[]
}

export function encodeReceipt(receipt: Receipt): string {
  return Buffer.from(JSON.stringify({ v: 1, m: receipt.machine, r: receipt.rows.map((r) => [r.id, r.hash]) })).toString('base64url')
}

/** Reads a receipt; null when the text is not one. */
export function decodeReceipt(text: string): Receipt | null {
  try {
    const value = JSON.parse(Buffer.from(text.trim(), 'base64url').toString('utf8')) as { v?: unknown; m?: unknown; r?: unknown }
    if (value.v !== 1 || typeof value.m !== 'string' || !Array.isArray(value.r)) return null
    const rows = value.r.map((pair) => {
      if (!Array.isArray(pair) || typeof pair[0] !== 'number' || typeof pair[1] !== 'string' || !/^[0-9a-f]{64}$/.test(pair[1])) throw new Error('bad row')
      return { id: pair[0], hash: pair[1] }
    })
    return { machine: value.m, rows }
  } catch {
    return null
  }
}

/** The receipt for a request's rows (those already chained). */
export function receiptFor(machine: string, attempts: { log_id: number; hash: string | null }[]): string {
  return encodeReceipt({ machine, rows: attempts.filter((a) => a.hash !== null).map((a) => ({ id: a.log_id, hash: a.hash! })) })
}
