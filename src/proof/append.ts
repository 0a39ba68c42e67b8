/**
 * Appending finished rows to the hash chain, inside the same write
 * transaction as the row's final write. Every process that writes final
 * rows (the server's writer, start-up recovery, the watchdog) does it under
 * SQLite's write lock, reading the head from the table itself, so they all
 * extend one chain: no gaps, no forks.
 */
import type { Database } from 'bun:sqlite'
import { type ChainFacts, GENESIS_HASH, type LogRow, chainHash, encodeRecord } from './record.ts'

export interface ChainAppender {
  /** Reads the current head (or reuses the one this appender last committed); call once at the start of each transaction. */
  start(): void
  /**
   * Chains a row that just reached its final state; returns its hash. `known`
   * is the row as the caller just wrote it (saves reading it back).
   */
  append(logId: number, bodies: Pick<ChainFacts, 'requestSha256' | 'responseSha256'>, known?: { row: LogRow; requestId: string | null; responseId: string | null }): string
  /** Call once the transaction has committed: the head it left may be reused by the next start(). */
  committed(): void
  /** Call when the transaction rolled back: the next start() reads the head again. */
  rolledBack(): void
}

/** witness_state key holding `<seq> <hash>` of the chain's head, saved before archiving moves chain entries out. */
export const CHAIN_HEAD_KEY = 'chain.head'

export function chainAppender(db: Database, now: () => string = () => new Date().toISOString()): ChainAppender {
  const rowOf = db.query(
    'SELECT id, timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status, error_message FROM request_log WHERE id = ?',
  )
  const metaOf = db.query('SELECT request_id, response_id FROM request_log_meta WHERE log_id = ?')
  const insert = db.query('INSERT INTO log_chain (seq, log_id, prev_hash, hash, record, chained_at) VALUES (?, ?, ?, ?, ?, ?)')
  // Changes when another connection (another process, the archive job) commits; never for this one's own commits.
  const dataVersion = db.query('PRAGMA data_version')
  let seq = 0
  let prev = GENESIS_HASH
  let version = 0
  let reusable: { seq: number; prev: string; version: number } | null = null
  return {
    start() {
      version = (dataVersion.get() as { data_version: number }).data_version
      if (reusable && reusable.version === version) {
        // Nobody else wrote since this appender's last commit: the head is the one it left.
        seq = reusable.seq
        prev = reusable.prev
        return
      }
      const head = chainHead(db)
      seq = head?.seq ?? 0
      prev = head?.hash ?? GENESIS_HASH
    },
    append(logId, bodies, known) {
      let facts: { row: LogRow; requestId: string | null; responseId: string | null }
      if (known) facts = known
      else {
        const row = rowOf.get(logId) as LogRow | null
        if (!row) throw new Error(`cannot chain row ${logId}: it does not exist`)
        const meta = metaOf.get(logId) as { request_id: string; response_id: string | null } | null
        facts = { row, requestId: meta?.request_id ?? null, responseId: meta?.response_id ?? null }
      }
      const record = encodeRecord(facts.row, {
        requestId: facts.requestId,
        responseId: facts.responseId,
        requestSha256: bodies.requestSha256,
        responseSha256: bodies.responseSha256,
      })
      const hash = chainHash(prev, record)
      seq++
      insert.run(seq, logId, prev, hash, record, now())
      prev = hash
      return hash
    },
    committed() {
      reusable = { seq, prev, version }
    },
    rolledBack() {
      reusable = null
    },
  }
}

/**
 * The chain's head as saved under CHAIN_HEAD_KEY (`<seq> <hash>`), or null
 * for an empty chain. The archive mover saves it in the transaction that
 * deletes chain entries, so the head is still known when every entry has
 * moved out.
 */
export function chainHeadState(db: Database): string | null {
  const head = chainHead(db)
  return head ? `${head.seq} ${head.hash}` : null
}

/**
 * The chain's head as the database knows it: its last entry, or the head
 * saved in witness_state when archiving has moved the last entries out.
 */
export function chainHead(db: Database): { seq: number; hash: string } | null {
  const last = db.query('SELECT seq, hash FROM log_chain ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | null
  const saved = (db.query('SELECT value FROM witness_state WHERE key = ?').get(CHAIN_HEAD_KEY) as { value: string } | null)?.value.split(' ')
  const savedSeq = saved ? Number(saved[0]) : 0
  if (last && last.seq >= savedSeq) return last
  return saved ? { seq: savedSeq, hash: saved[1] ?? GENESIS_HASH } : null
}
