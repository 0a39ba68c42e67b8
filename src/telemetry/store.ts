/**
 * The telemetry store: one writer connection per process, prepared
 * statements only, and the write-before/write-after pair that proves every
 * upstream call. Writes go through group commit; each returned promise
 * settles once the row is committed.
 */
import { Database } from 'bun:sqlite'
import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { GroupCommit } from './group-commit.ts'
import { type Status, ensureSchema, isStatus } from './schema.ts'

/** Which API a request came in on. */
export type Api = 'infer' | 'chat.completions' | 'messages' | 'deadman'

/** What ties a row to its request; stored in request_log_meta. */
export interface RowMeta {
  requestId: string
  chain: string
  api: Api
  /** Position of this row within its request, from 1. */
  seq: number
  step: number | null
  try: number | null
  stream: boolean
}

/** The identity of a row: the request_log columns known before the call. */
export interface RowHead {
  timestamp: string
  agentName: string
  provider: string
  model: string
  endpoint: string
}

/** How an attempt ended. */
export interface AttemptOutcome {
  status: 'success' | 'error' | 'timeout'
  tokensIn: number | null
  tokensOut: number | null
  latencyMs: number | null
  errorMessage: string | null
  httpStatus?: number | null
  responseId?: string | null
  servedModel?: string | null
  firstByteMs?: number | null
  costUsd?: number | null
}

/** A row written already final (fallback, rollback). */
export interface FinalRow extends RowHead {
  status: Exclude<Status, 'pending'>
  errorMessage: string | null
  tokensIn?: number | null
  tokensOut?: number | null
  latencyMs?: number | null
}

/**
 * A write to one of witness's side tables. The SQL is a constant owned by a
 * query module (src/telemetry/*-store.ts), never built from input; values
 * are bound parameters. With `insert`, `$log_id` is bound to the new row's id.
 */
export interface SideWrite {
  sql: string
  params: Record<string, string | number | null>
}

type WriteOp =
  | { kind: 'begin'; head: RowHead; meta: RowMeta }
  | { kind: 'finish'; id: number; outcome: AttemptOutcome }
  | { kind: 'insert'; row: FinalRow; meta: RowMeta | null; side: SideWrite | null }
  | { kind: 'state'; key: string; value: string; at: string }
  | { kind: 'side'; side: SideWrite }

export interface StoreOptions {
  sync: 'full' | 'normal'
  /** How long a write may wait for another process's lock (ms). */
  busyTimeoutMs: number
  /** Hard size budget for the file, applied with max_page_count. */
  maxMb?: number
}

export interface Store {
  readonly path: string
  /** Inserts and commits a `pending` row; resolves with its id. No row, no call. */
  begin(head: RowHead, meta: RowMeta): Promise<number>
  /** Finishes a pending row; resolves once committed. */
  finish(id: number, outcome: AttemptOutcome): Promise<void>
  /** Inserts an already-final row (fallback, rollback), with its side-table facts in the same commit; resolves with its id. */
  insert(row: FinalRow, meta: RowMeta | null, side?: SideWrite): Promise<number>
  /** Commits a write to a side table. */
  write(side: SideWrite): Promise<void>
  /** Writes a key in witness_state; a real commit, used as the health probe. */
  setState(key: string, value: string): Promise<void>
  /** Finishes rows left `pending` by a crashed run; returns how many. */
  recoverPending(message: string): number
  pendingCount(): number
  /** Finishing writes that failed and are being retried in the background. */
  deferredCount(): number
  /** Wall time (ms) of the last successful commit, and the last write failure. */
  health(): { lastCommitAt: number | null; lastError: string | null }
  /** A read-only connection for queries. */
  readonly reader: Database
  readonly counters: GroupCommit<WriteOp, number>['counters']
  close(): void
}

/** Opens (creating if needed) the database, migrates it, prepares statements. */
export function openStore(path: string, options: StoreOptions): Store {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path, { create: true, strict: true })
  db.exec(`PRAGMA busy_timeout = ${options.busyTimeoutMs}`)
  ensureSchema(db)
  db.exec(`PRAGMA synchronous = ${options.sync === 'full' ? 'FULL' : 'NORMAL'}`)
  // The size budget. SQLite raises a connection's limit silently when it sees
  // the file grown past it by another connection, so it is re-applied before
  // every batch (a cheap pager call).
  let applyBudget = () => {}
  if (options.maxMb) {
    const pageSize = (db.query('PRAGMA page_size').get() as { page_size: number }).page_size
    const budget = db.prepare(`PRAGMA max_page_count = ${Math.max(1, Math.floor((options.maxMb * 1024 * 1024) / pageSize))}`)
    applyBudget = () => {
      budget.run()
    }
    applyBudget()
  }
  // From here on, a locked database is retried by group commit, never waited for inside SQLite.
  db.exec('PRAGMA busy_timeout = 0')

  const insertLog = db.prepare(
    `INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status, error_message)
     VALUES ($timestamp, $agent, $provider, $model, $endpoint, $tokensIn, $tokensOut, $latencyMs, $status, $errorMessage)`,
  )
  const insertMeta = db.prepare(
    `INSERT INTO request_log_meta (log_id, request_id, chain, api, seq, step, try, stream)
     VALUES ($id, $requestId, $chain, $api, $seq, $step, $try, $stream)`,
  )
  const finishLog = db.prepare(
    `UPDATE request_log SET status = $status, tokens_in = $tokensIn, tokens_out = $tokensOut,
       latency_ms = $latencyMs, error_message = $errorMessage
     WHERE id = $id AND status = 'pending'`,
  )
  const finishMeta = db.prepare(
    `UPDATE request_log_meta SET http_status = $httpStatus, response_id = $responseId, served_model = $servedModel,
       first_byte_ms = $firstByteMs, cost_usd = $costUsd
     WHERE log_id = $id`,
  )
  const upsertState = db.prepare(
    `INSERT INTO witness_state (key, value, updated_at) VALUES ($key, $value, $at)
     ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
  )
  const recover = db.prepare(`UPDATE request_log SET status = 'error', error_message = $message WHERE status = 'pending'`)

  function writeRow(head: RowHead, status: Status, rest: Partial<FinalRow>, meta: RowMeta | null): number {
    if (!isStatus(status)) throw new Error(`invalid status ${JSON.stringify(status)}`)
    const id = Number(
      insertLog.run({
        timestamp: head.timestamp,
        agent: head.agentName,
        provider: head.provider,
        model: head.model,
        endpoint: head.endpoint,
        tokensIn: rest.tokensIn ?? null,
        tokensOut: rest.tokensOut ?? null,
        latencyMs: rest.latencyMs ?? null,
        status,
        errorMessage: rest.errorMessage ?? null,
      }).lastInsertRowid,
    )
    if (meta) {
      insertMeta.run({
        id,
        requestId: meta.requestId,
        chain: meta.chain,
        api: meta.api,
        seq: meta.seq,
        step: meta.step,
        try: meta.try,
        stream: meta.stream ? 1 : 0,
      })
    }
    return id
  }

  function applyOne(op: WriteOp): number {
    switch (op.kind) {
      case 'begin':
        return writeRow(op.head, 'pending', {}, op.meta)
      case 'insert': {
        const id = writeRow(op.row, op.row.status, op.row, op.meta)
        if (op.side) db.query(op.side.sql).run({ ...op.side.params, log_id: id })
        return id
      }
      case 'finish': {
        const o = op.outcome
        if (!isStatus(o.status) || o.status === ('pending' as Status)) throw new Error(`invalid final status ${JSON.stringify(o.status)}`)
        const changes = finishLog.run({
          id: op.id,
          status: o.status,
          tokensIn: o.tokensIn,
          tokensOut: o.tokensOut,
          latencyMs: o.latencyMs,
          errorMessage: o.errorMessage,
        }).changes
        finishMeta.run({
          id: op.id,
          httpStatus: o.httpStatus ?? null,
          responseId: o.responseId ?? null,
          servedModel: o.servedModel ?? null,
          firstByteMs: o.firstByteMs ?? null,
          costUsd: o.costUsd ?? null,
        })
        return changes
      }
      case 'state':
        upsertState.run({ key: op.key, value: op.value, at: op.at })
        return 0
      case 'side':
        db.query(op.side.sql).run(op.side.params)
        return 0
    }
  }

  const applyAll = db.transaction((ops: WriteOp[]) => ops.map(applyOne))
  const commits = new GroupCommit<WriteOp, number>({
    apply: (ops) => {
      applyBudget()
      return applyAll.immediate(ops)
    },
    budgetMs: options.busyTimeoutMs,
    isBusy: (error) => (error as { code?: string })?.code === 'SQLITE_BUSY',
  })

  // Finishing writes that failed (disk full, lock held past the budget) are
  // kept and retried until they commit, so a row is never left pending while
  // the process lives.
  const deferred = new Map<number, AttemptOutcome>()
  let retrying: ReturnType<typeof setInterval> | null = null
  const retryDeferred = async () => {
    for (const [id, outcome] of [...deferred]) {
      try {
        await commits.submit({ kind: 'finish', id, outcome })
        deferred.delete(id)
      } catch {
        return // still failing; next tick
      }
    }
    if (deferred.size === 0 && retrying) {
      clearInterval(retrying)
      retrying = null
    }
  }
  let busyRetry = false
  const deferFinish = (id: number, outcome: AttemptOutcome) => {
    deferred.set(id, outcome)
    retrying ??= setInterval(() => {
      if (busyRetry) return
      busyRetry = true
      retryDeferred().finally(() => (busyRetry = false))
    }, 1000)
  }

  const reader = path === ':memory:' ? db : new Database(path, { readonly: true, strict: true })
  if (reader !== db) reader.exec(`PRAGMA busy_timeout = ${options.busyTimeoutMs}`)
  const pending = reader.prepare(`SELECT count(*) AS n FROM request_log WHERE status = 'pending'`)

  return {
    path,
    reader,
    counters: commits.counters,
    begin: (head, meta) => commits.submit({ kind: 'begin', head, meta }),
    finish: async (id, outcome) => {
      try {
        await commits.submit({ kind: 'finish', id, outcome })
      } catch (error) {
        deferFinish(id, outcome)
        throw error
      }
    },
    insert: (row, meta, side) => commits.submit({ kind: 'insert', row, meta, side: side ?? null }),
    write: async (side) => {
      await commits.submit({ kind: 'side', side })
    },
    setState: async (key, value) => {
      await commits.submit({ kind: 'state', key, value, at: new Date().toISOString() })
    },
    recoverPending(message) {
      db.exec(`PRAGMA busy_timeout = ${options.busyTimeoutMs}`)
      try {
        return recover.run({ message }).changes
      } finally {
        db.exec('PRAGMA busy_timeout = 0')
      }
    },
    pendingCount: () => (pending.get() as { n: number }).n,
    deferredCount: () => deferred.size,
    health: () => ({ lastCommitAt: commits.lastCommitAt, lastError: commits.lastError }),
    close() {
      if (retrying) clearInterval(retrying)
      if (reader !== db) reader.close()
      db.close()
    },
  }
}
