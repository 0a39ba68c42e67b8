/** A row's place in the proof: its chain entry and the first signed checkpoint that covers it. */
import type { Database } from 'bun:sqlite'
import { coveringCheckpoint } from './checkpoint.ts'

export interface RowProof {
  /** Null while the row is pending (it joins the chain when it finishes). */
  hash: string | null
  chain_seq: number | null
  prev_hash: string | null
  chained_at: string | null
  /** The first checkpoint signed at or after the row's entry; null until the next one is signed. */
  checkpoint: { id: number; seq: number; head_hash: string; time: string; key_id: string; signature: string } | null
}

/** Looks the row's entry up in `dbs` (live and archives) and its checkpoint in the live database. */
interface Entry {
  seq: number
  hash: string
  prev_hash: string
  chained_at: string
}

function entryIn(db: Database, logId: number): Entry | null {
  if (!db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_chain'").get()) return null
  return db.query('SELECT seq, hash, prev_hash, chained_at FROM log_chain WHERE log_id = ?').get(logId) as Entry | null
}

export function proofOf(dbs: readonly Database[], logId: number, live: Database): RowProof {
  let entry: Entry | null = null
  for (const db of dbs) {
    entry = entryIn(db, logId)
    if (entry) break
  }
  if (!entry) return { hash: null, chain_seq: null, prev_hash: null, chained_at: null, checkpoint: null }
  const c = coveringCheckpoint(live, entry.seq)
  return {
    hash: entry.hash,
    chain_seq: entry.seq,
    prev_hash: entry.prev_hash,
    chained_at: entry.chained_at,
    checkpoint: c ? { id: c.id, seq: c.seq, head_hash: c.head_hash, time: c.time, key_id: c.key_id, signature: c.signature } : null,
  }
}
