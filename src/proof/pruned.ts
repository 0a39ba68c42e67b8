/**
 * Chain entries deleted with their archives (`retention.archive_keep_days`).
 * Before an archive month is deleted, the runs of consecutive chain entries
 * it holds are recorded in the live database (`chain_pruned`, migration
 * 10): each run's first and last position, the hash its first entry
 * follows and the hash of its last, signed by the machine's key (migration
 * 13). `witness verify` then takes a gap in the chain that signed runs fill
 * exactly, linked hash to hash, as deleted by retention, not as entries
 * removed by hand. An unsigned run proves nothing: anyone who can write the
 * file could have written it.
 */
import type { Database } from 'bun:sqlite'
import { type SigningKey, importPublicKey } from './keys.ts'
import { monthOfTimestamp } from '../retention/months.ts'
import { columnsOf, hasTable } from '../telemetry/schema.ts'
import { decodeRecord, finishedByRecovery } from './record.ts'
import type { ChainEntry } from './verify.ts'

export interface PrunedRun {
  fromSeq: number
  toSeq: number
  /** The prev_hash of entry fromSeq: the hash of the entry before the run. */
  prevHash: string
  /** The hash of entry toSeq. */
  hash: string
  /** The smallest row id the run chained, rows finished by start-up recovery aside (null: none, or not recorded). */
  firstLogId?: number | null
}

/**
 * The runs of consecutive chain entries in a month's archive about to be deleted, each with the
 * smallest row id it chained. `foreign` lists the positions of entries whose rows are not of `month`:
 * the mover files each row, its entry with it, under the row's own month, so such entries were put
 * there by hand (to have retention sign their deletion), and the month must not be deleted.
 */
export function monthRunsOf(db: Database, month: string): { runs: PrunedRun[]; foreign: number[] } {
  const runs: PrunedRun[] = []
  const foreign: number[] = []
  if (!hasTable(db, 'log_chain')) return { runs, foreign }
  const entries = db.query('SELECT seq, log_id, prev_hash, hash, record FROM log_chain ORDER BY seq').iterate() as Iterable<ChainEntry>
  for (const e of entries) {
    const row = decodeRecord(e.record)?.row
    if (!row || monthOfTimestamp(String(row.timestamp)) !== month) foreign.push(e.seq)
    const logId = row && !finishedByRecovery(row) ? e.log_id : null
    const last = runs.at(-1)
    if (last && e.seq === last.toSeq + 1) {
      Object.assign(last, { toSeq: e.seq, hash: e.hash })
      if (logId !== null && (last.firstLogId == null || logId < last.firstLogId)) last.firstLogId = logId
    } else runs.push({ fromSeq: e.seq, toSeq: e.seq, prevHash: e.prev_hash, hash: e.hash, firstLogId: logId })
  }
  return { runs, foreign }
}

/** A run as recorded: the month it was deleted with, and who signed it (null for a record from before runs were signed). */
export interface PrunedRecord extends PrunedRun {
  month: string
  machine: string | null
  keyId: string | null
  signature: string | null
}

/**
 * The exact bytes signed for a run: keys in this order, no spaces. Without `first_log_id` (`withFirst`
 * false): what a build in between signed, before runs carried their first row (never released, but
 * on a developer's disk).
 */
function prunedPayload(r: PrunedRun, month: string, machine: string, withFirst = true): Uint8Array<ArrayBuffer> {
  const signed = { machine, month, from: r.fromSeq, to: r.toSeq, prev: r.prevHash, hash: r.hash }
  return new TextEncoder().encode(JSON.stringify(withFirst ? { ...signed, first_log_id: r.firstLogId ?? null } : signed))
}

/** Signs the runs of a month about to be deleted with the machine's key. */
export async function signPruned(key: SigningKey, machine: string, month: string, runs: readonly PrunedRun[]): Promise<PrunedRecord[]> {
  return Promise.all(
    runs.map(async (r) => {
      const signature = await crypto.subtle.sign({ name: 'Ed25519' }, key.privateKey, prunedPayload(r, month, machine))
      return { ...r, month, machine, keyId: key.keyId, signature: Buffer.from(signature).toString('base64url') }
    }),
  )
}

/** Records a month's signed runs before it is deleted (in the live database). */
export function recordPruned(live: Database, records: readonly PrunedRecord[], at: string): void {
  const insert = live.query(
    'INSERT OR IGNORE INTO chain_pruned (from_seq, to_seq, prev_hash, hash, month, pruned_at, machine, first_log_id, key_id, signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  )
  live.transaction(() => {
    for (const r of records) insert.run(r.fromSeq, r.toSeq, r.prevHash, r.hash, r.month, at, r.machine, r.firstLogId ?? null, r.keyId, r.signature)
  })()
}

/**
 * The recorded runs a known key signed (`proven`), and the rest (`unproven`: unsigned, signed by a
 * key not given, or altered since), which excuse nothing.
 */
export async function provenPruned(records: readonly PrunedRecord[], keys: ReadonlyMap<string, JsonWebKey>): Promise<{ proven: PrunedRun[]; unproven: PrunedRecord[] }> {
  const proven: PrunedRun[] = []
  const unproven: PrunedRecord[] = []
  for (const r of records) {
    const jwk = r.keyId === null ? undefined : keys.get(r.keyId)
    let valid = false
    if (jwk && r.signature !== null && r.machine !== null) {
      try {
        const key = await importPublicKey(jwk)
        const signature = Buffer.from(r.signature, 'base64url')
        valid = await crypto.subtle.verify({ name: 'Ed25519' }, key, signature, prunedPayload(r, r.month, r.machine))
        if (!valid && r.firstLogId == null) valid = await crypto.subtle.verify({ name: 'Ed25519' }, key, signature, prunedPayload(r, r.month, r.machine, false))
      } catch {
        valid = false
      }
    }
    if (valid) proven.push({ fromSeq: r.fromSeq, toSeq: r.toSeq, prevHash: r.prevHash, hash: r.hash, firstLogId: r.firstLogId ?? null })
    else unproven.push(r)
  }
  return { proven, unproven }
}

/** The archive months whose chain runs were recorded before retention deleted them. */
export function prunedMonths(db: Database): Set<string> {
  if (!hasTable(db, 'chain_pruned')) return new Set()
  return new Set((db.query('SELECT DISTINCT month FROM chain_pruned').values() as [string][]).map((r) => r[0]))
}

/** The recorded runs, by position (none in a database from before migration 10, or an archive); `schema`: main, or an attached database. */
export function readPruned(db: Database, schema = 'main'): PrunedRecord[] {
  if (!hasTable(db, 'chain_pruned', schema)) return []
  // Read-only, a database from before a column was added (migration 13, schema.ts LATE_COLUMNS) is read as it is.
  const has = columnsOf(db, 'chain_pruned', schema)
  const columns = ['machine', 'first_log_id AS firstLogId', 'key_id AS keyId', 'signature']
    .map((c) => (has.includes(c.split(' ')[0]!) ? c : `NULL AS ${c.split(' AS ').at(-1)}`))
    .join(', ')
  return db.query(`SELECT from_seq AS fromSeq, to_seq AS toSeq, prev_hash AS prevHash, hash, month, ${columns} FROM ${schema}.chain_pruned ORDER BY from_seq`).all() as PrunedRecord[]
}

/**
 * Whether entries fromSeq..toSeq are exactly runs deleted by retention,
 * linked from `before` (the hash of entry fromSeq - 1) to `after` (the
 * prev_hash of entry toSeq + 1; null when the chain ends there).
 */
export function prunedGap(runs: readonly PrunedRun[], fromSeq: number, toSeq: number, before: string, after: string | null): boolean {
  let at = fromSeq
  let hash = before
  for (const r of runs) {
    if (r.toSeq < at) continue
    if (r.fromSeq !== at || r.prevHash !== hash || r.toSeq > toSeq) return false
    at = r.toSeq + 1
    hash = r.hash
    if (at > toSeq) return after === null || after === hash
  }
  return false
}
