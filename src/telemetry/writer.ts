/**
 * The writer connection: pragmas, prepared statements, and `apply`, which
 * runs a batch of write ops in one IMMEDIATE transaction (one commit, one
 * fsync with synchronous=FULL). It never waits for another process's lock
 * (busy_timeout 0): a locked database throws SQLITE_BUSY at once and group
 * commit retries asynchronously. Runs on the writer thread (see
 * writer-worker.ts) or inline.
 */
import { Database } from 'bun:sqlite'
import { chainAppender } from '../proof/append.ts'
import { wellFormed } from '../text.ts'
import type { LogRow } from '../proof/record.ts'
import { type AttemptOutcome, type RowHead, type WriteOp, type WriteResult, sideStatements } from './rows.ts'
import { type Status, isStatus } from './schema.ts'
import { isSyncFailure } from './sync-failure.ts'

/**
 * What the WAL is cut back to when it starts over. It grows past its usual
 * few megabytes only while a reader holds an old snapshot (a long export, a
 * CLI query left open), and without a limit it kept that size for good.
 */
export const WAL_SIZE_LIMIT_BYTES = 16 * 1024 * 1024
/**
 * Commits between the writer's own checkpoints (when it checkpoints: `autocheckpoint`). SQLite's
 * automatic checkpoint (1000 frames) ignores its errors, a failed fsync among them, so the writer
 * runs the same PASSIVE checkpoint itself after its commits and hears of one (sync-failure.ts).
 */
const CHECKPOINT_EVERY_COMMITS = 64

export interface WriterOptions {
  sync: 'full' | 'normal'
  /** Hard size budget for the file, applied with max_page_count. */
  maxMb?: number
  /** false: the writer never checkpoints; another connection does (checkpointer.ts). Default true. */
  autocheckpoint?: boolean
  /** One of its checkpoints failed to fsync (sync-failure.ts): it checkpoints no more. */
  onSyncFailure?: (error: unknown) => void
}

export interface Writer {
  /** Applies the ops in one transaction; one result per op. Throws to fail them all. */
  apply(ops: WriteOp[]): WriteResult[]
  /** Turns the writer's own checkpoints after its commits (every CHECKPOINT_EVERY_COMMITS) on or off. */
  autocheckpoint(on: boolean): void
  close(): void
}

/** Opens a writer on a database whose schema already exists (see ensureSchema). */
export function openWriter(path: string, options: WriterOptions): Writer {
  const db = new Database(path, { strict: true })
  db.exec('PRAGMA busy_timeout = 0')
  db.exec(`PRAGMA synchronous = ${options.sync === 'full' ? 'FULL' : 'NORMAL'}`)
  db.exec(`PRAGMA journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`)
  db.exec('PRAGMA wal_autocheckpoint = 0')
  let checkpointing = options.autocheckpoint ?? true
  let commitsSince = 0
  const autocheckpoint = (on: boolean) => {
    checkpointing = on
  }
  const passive = db.query('PRAGMA wal_checkpoint(PASSIVE)')
  /** After a commit (never failing it: the commit stands), as SQLite's own would, but hearing of a failed fsync. */
  const checkpointNow = () => {
    if (!checkpointing || ++commitsSince < CHECKPOINT_EVERY_COMMITS) return
    commitsSince = 0
    try {
      passive.get()
    } catch (error) {
      // A lock or a reader: the next time. A failed fsync: never again (what it lost counts as copied).
      if (!isSyncFailure(error)) return
      checkpointing = false
      options.onSyncFailure?.(error)
    }
  }

  // What each pending row was written with, so finishing it can chain it without reading it back.
  const pendingHeads = new Map<number, { head: RowHead; requestId: string | null }>()
  // Changes to pendingHeads made by a batch, applied only once it commits (a rolled-back batch leaves none).
  let begun: [number, { head: RowHead; requestId: string | null }][] = []
  let finished: number[] = []

  // The size budget. SQLite raises a connection's limit silently when it sees
  // the file grown past it by another connection, so it is re-applied before
  // every batch (a cheap pager call). A new row must leave room for finishing
  // every row in flight (roomForNewRow): a full file refuses the next request
  // with 503, never the finish of a call already made.
  let applyBudget = () => {}
  let roomForNewRow = () => {}
  if (options.maxMb) {
    const pageSize = (db.query('PRAGMA page_size').get() as { page_size: number }).page_size
    const maxPages = Math.max(1, Math.floor((options.maxMb * 1024 * 1024) / pageSize))
    const budget = db.query(`PRAGMA max_page_count = ${maxPages}`)
    const pageCount = db.query('PRAGMA page_count')
    const freePages = db.query('PRAGMA freelist_count')
    applyBudget = () => {
      budget.run()
    }
    roomForNewRow = () => {
      const inFlight = pendingHeads.size + begun.length
      const reserve = finishReservePages(inFlight, pageSize)
      const used = (pageCount.get() as { page_count: number }).page_count - (freePages.get() as { freelist_count: number }).freelist_count
      if (used + reserve > maxPages) throw new FinishReserveFull(reserve, inFlight)
    }
  }

  const insertLog = db.query(
    `INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status, error_message)
     VALUES ($timestamp, $agent, $provider, $model, $endpoint, $tokensIn, $tokensOut, $latencyMs, $status, $errorMessage)`,
  )
  const insertMeta = db.query(
    `INSERT INTO request_log_meta (log_id, request_id, chain, api, seq, step, try, stream)
     VALUES ($id, $requestId, $chain, $api, $seq, $step, $try, $stream)`,
  )
  const finishLog = db.query(
    `UPDATE request_log SET status = $status, tokens_in = $tokensIn, tokens_out = $tokensOut,
       latency_ms = $latencyMs, error_message = $errorMessage
     WHERE id = $id AND status = 'pending'`,
  )
  const finishMeta = db.query(
    `UPDATE request_log_meta SET http_status = $httpStatus, response_id = $responseId, served_model = $servedModel,
       first_byte_ms = $firstByteMs, first_token_ms = $firstTokenMs, cost_usd = $costUsd
     WHERE log_id = $id`,
  )
  const upsertState = db.query(
    `INSERT INTO witness_state (key, value, updated_at) VALUES ($key, $value, $at)
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
  )

  const chain = chainAppender(db)
  const NONE = { requestSha256: null, responseSha256: null }

  function writeRow(op: Extract<WriteOp, { kind: 'begin' | 'insert' }>): WriteResult {
    const head = op.kind === 'begin' ? op.head : op.row
    const status: Status = op.kind === 'begin' ? 'pending' : op.row.status
    if (!isStatus(status)) throw new Error(`invalid status ${JSON.stringify(status)}`)
    const rest = op.kind === 'insert' ? op.row : null
    roomForNewRow()
    const id = Number(
      insertLog.run({
        timestamp: head.timestamp,
        agent: head.agentName,
        provider: head.provider,
        model: head.model,
        endpoint: head.endpoint,
        tokensIn: rest?.tokensIn ?? null,
        tokensOut: rest?.tokensOut ?? null,
        latencyMs: rest?.latencyMs ?? null,
        status,
        errorMessage: rest?.errorMessage ?? null,
      }).lastInsertRowid,
    )
    const meta = op.meta
    if (meta) {
      insertMeta.run({ id, requestId: meta.requestId, chain: meta.chain, api: meta.api, seq: meta.seq, step: meta.step, try: meta.try, stream: meta.stream ? 1 : 0 })
    }
    if (op.kind === 'begin') {
      begun.push([id, { head, requestId: meta?.requestId ?? null }])
      return { id, hash: null }
    }
    if (op.side) db.query(op.side.sql).run({ ...op.side.params, log_id: id })
    // A row written final joins the chain at once; a pending one when it finishes.
    const row = logRow(id, head, status, rest)
    return { id, hash: chain.append(id, NONE, { row, requestId: meta?.requestId ?? null, responseId: null }) }
  }

  // A row as large as a real one can get (a long message), so the probe fails no later than real rows do.
  const probeRow = {
    timestamp: new Date(0).toISOString(),
    agent: 'witness-probe',
    provider: 'probe',
    model: 'probe',
    endpoint: 'http://probe/',
    tokensIn: null,
    tokensOut: null,
    latencyMs: null,
    status: 'pending',
    errorMessage: 'x'.repeat(512),
  }

  /** Inserts a row and its meta inside a savepoint and rolls them back: nothing stays, but a full or locked database fails here as a real row would. */
  function probe(): WriteResult {
    roomForNewRow()
    db.exec('SAVEPOINT probe')
    try {
      const id = Number(insertLog.run(probeRow).lastInsertRowid)
      insertMeta.run({ id, requestId: '00000000-0000-0000-0000-000000000000', chain: 'probe', api: 'infer', seq: 1, step: 0, try: 1, stream: 0 })
    } finally {
      try {
        db.exec('ROLLBACK TO probe')
        db.exec('RELEASE probe')
      } catch {
        // SQLite already rolled the transaction back after the failure; the failure is what matters
      }
    }
    return { id: 0, hash: null }
  }

  function applyOne(given: WriteOp): WriteResult {
    // Text as SQLite will store it, so the chain hashes what the row holds (src/text.ts).
    const op = wellFormed(given)
    switch (op.kind) {
      case 'begin':
      case 'insert':
        return writeRow(op)
      case 'finish': {
        const o = op.outcome
        if (!isStatus(o.status) || o.status === ('pending' as Status)) throw new Error(`invalid final status ${JSON.stringify(o.status)}`)
        const changes = finishLog.run({ id: op.id, status: o.status, tokensIn: o.tokensIn, tokensOut: o.tokensOut, latencyMs: o.latencyMs, errorMessage: o.errorMessage }).changes
        const known = pendingHeads.get(op.id)
        finished.push(op.id)
        if (changes === 0) return { id: op.id, hash: null } // not pending (already finished): nothing to chain
        finishMeta.run({
          id: op.id,
          httpStatus: o.httpStatus ?? null,
          responseId: o.responseId ?? null,
          servedModel: o.servedModel ?? null,
          firstByteMs: o.firstByteMs ?? null,
          firstTokenMs: o.firstTokenMs ?? null,
          costUsd: o.costUsd ?? null,
        })
        const bodies = { requestSha256: o.requestSha256 ?? null, responseSha256: o.responseSha256 ?? null }
        if (!known) return { id: op.id, hash: chain.append(op.id, bodies) } // begun by another writer: read it back
        const row = logRow(op.id, known.head, o.status, o)
        return { id: op.id, hash: chain.append(op.id, bodies, { row, requestId: known.requestId, responseId: o.responseId ?? null }) }
      }
      case 'state':
        upsertState.run({ key: op.key, value: op.value, at: op.at })
        return { id: 0, hash: null }
      case 'side':
        for (const side of sideStatements(op.side)) db.query(side.sql).run(side.params)
        return { id: 0, hash: null }
      case 'probe':
        return probe()
    }
  }

  /**
   * A COMMIT whose fsync failed: SQLite rolled it back, but its frames stay in the WAL, commit mark
   * and all, and a process stopped now (as witness then is) would have them read back in by the
   * next start's recovery: rows of calls refused and never made, taken for calls cut short. One small
   * commit written now lands over them, and recovery stops where its frames end. No checkpoint runs
   * again on this connection (sync-failure.ts).
   */
  const sealFailedCommit = () => {
    checkpointing = false
    try {
      upsertState.run({ key: 'durability.lost_at', value: new Date().toISOString(), at: new Date().toISOString() })
    } catch {
      // its frames are written whether or not its own fsync fails; nothing else can be done
    }
  }

  const applyAll = db.transaction((ops: WriteOp[]) => {
    chain.start()
    return ops.map(applyOne)
  })
  return {
    apply(ops) {
      applyBudget()
      begun = []
      finished = []
      let results: WriteResult[]
      try {
        results = applyAll.immediate(ops)
      } catch (error) {
        chain.rolledBack()
        if (isSyncFailure(error)) sealFailedCommit()
        throw error
      }
      chain.committed()
      for (const [id, facts] of begun) pendingHeads.set(id, facts)
      for (const id of finished) pendingHeads.delete(id)
      checkpointNow()
      return results
    },
    autocheckpoint,
    close: () => db.close(),
  }
}

/**
 * Room kept under `database_max_mb` for finishing the rows in flight: a finish grows its row
 * (tokens, latency, an error message of at most a few hundred bytes), its meta row (the response
 * id and model) and adds a chain entry, a few hundred bytes in all (0.6 KB measured with the row
 * begun), under 2 KB with the longest error; and some pages for the b-trees' splits.
 */
function finishReservePages(inFlight: number, pageSize: number): number {
  return RESERVE_FLOOR_PAGES + Math.ceil((inFlight * FINISH_RESERVE_BYTES) / pageSize)
}
const FINISH_RESERVE_BYTES = 2048
const RESERVE_FLOOR_PAGES = 16

/** A new row refused because what is left of `database_max_mb` is kept for finishing the rows in flight. */
class FinishReserveFull extends Error {
  readonly code = 'SQLITE_FULL'
  constructor(reserve: number, inFlight: number) {
    super(`database or disk is full (database_max_mb: its last ${reserve} pages are kept for finishing the ${inFlight} row(s) in flight)`)
    this.name = 'FinishReserveFull'
  }
}

/** A row as it was just written, for chaining it. */
function logRow(id: number, head: RowHead, status: Status, values: Partial<Pick<AttemptOutcome, 'tokensIn' | 'tokensOut' | 'latencyMs' | 'errorMessage'>> | null): LogRow {
  return {
    id,
    timestamp: head.timestamp,
    agent_name: head.agentName,
    provider: head.provider,
    model: head.model,
    endpoint: head.endpoint,
    tokens_in: values?.tokensIn ?? null,
    tokens_out: values?.tokensOut ?? null,
    latency_ms: values?.latencyMs ?? null,
    status,
    error_message: values?.errorMessage ?? null,
  }
}

/** An error as it crosses from the writer thread: its SQLite code survives. */
export interface WriterFailure {
  code: string | null
  message: string
}

export function describeFailure(error: unknown): WriterFailure {
  const e = error as { code?: unknown; message?: unknown }
  return { code: typeof e?.code === 'string' ? e.code : null, message: typeof e?.message === 'string' ? e.message : String(error) }
}

/** Whether an error means "locked by another connection, try again" (SQLITE_BUSY and its extended codes, SQLITE_LOCKED). */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code
  return typeof code === 'string' && (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED' || code.startsWith('SQLITE_BUSY_'))
}
