/** Writes rows with chosen timestamps and statuses through the real store (as the router would). */
import { Database } from 'bun:sqlite'
import { existsSync } from 'node:fs'
import { archiveDatabasesFor, closeArchives } from '../../src/retention/archive-query.ts'
import type { Status } from '../../src/telemetry/schema.ts'
import { openStore } from '../../src/telemetry/store.ts'
import type { LogRow, MetaRow } from './rows.ts'

export interface SeedRow {
  timestamp: string
  status?: Status
  agent?: string
  provider?: string
  /** Padding for size tests. */
  errorMessage?: string | null
  requestId?: string
  /** Position in its request (request_log_meta.seq, default 1). */
  seq?: number
  /** Write the row without request_log_meta (fallback and rollback rows only). */
  noMeta?: boolean
}

/** Inserts the rows in order; returns their ids. Finished attempt rows also get their meta filled in. */
export async function seedRows(dbPath: string, rows: SeedRow[]): Promise<number[]> {
  const store = openStore(dbPath, { sync: 'normal', busyTimeoutMs: 5000 })
  try {
    const ids: number[] = []
    // In slices, so each slice is one group-commit transaction.
    for (let start = 0; start < rows.length; start += 2000) {
      const slice = rows.slice(start, start + 2000)
      ids.push(
        ...(await Promise.all(
          slice.map(async (row, i) => {
            const status = row.status ?? 'success'
            const head = { timestamp: row.timestamp, agentName: row.agent ?? 'ezra', provider: row.provider ?? 'kimi', model: 'kimi-k2.5', endpoint: 'https://api.moonshot.ai/v1/chat/completions' }
            const meta = { requestId: row.requestId ?? `req-${start + i}`, chain: 'default', api: 'infer' as const, seq: row.seq ?? 1, step: 0, try: 1, stream: false }
            if (status === 'fallback' || status === 'rollback') {
              return (await store.insert({ ...head, status, errorMessage: row.errorMessage ?? 'fallback from kimi/kimi-k2.5: timeout' }, row.noMeta ? null : meta)).id
            }
            const id = await store.begin(head, meta)
            if (status === 'pending') return id
            await store.finish(id, {
              status,
              tokensIn: 12,
              tokensOut: 34,
              latencyMs: 567,
              errorMessage: row.errorMessage ?? (status === 'success' ? null : 'HTTP 503 service unavailable'),
              httpStatus: status === 'success' ? 200 : 503,
              responseId: `resp-${start + i}`,
              servedModel: 'kimi-k2.5',
              firstByteMs: 89,
              costUsd: 0.00125,
            })
            return id
          }),
        )),
      )
    }
    return ids
  } finally {
    store.close()
  }
}

/** Finishes pending rows as the router would. */
export async function finishRows(dbPath: string, ids: number[]): Promise<void> {
  const store = openStore(dbPath, { sync: 'normal', busyTimeoutMs: 5000 })
  try {
    await Promise.all(ids.map((id) => store.finish(id, { status: 'success', tokensIn: 1, tokensOut: 2, latencyMs: 3, errorMessage: null, httpStatus: 200 })))
  } finally {
    store.close()
  }
}

/** An ISO timestamp `days` days (and `ms` ms) before `nowMs`. */
export function daysAgo(nowMs: number, days: number, ms = 0): string {
  return new Date(nowMs - days * 86_400_000 - ms).toISOString()
}

/** Every row (with its meta, if any) in the live database and the archives, with where it was found. */
export function everyRow(livePath: string, archiveDir: string): { where: string; row: LogRow; meta: MetaRow | null }[] {
  const out: { where: string; row: LogRow; meta: MetaRow | null }[] = []
  const collect = (where: string, db: Database) => {
    const meta = new Map((db.query('SELECT * FROM request_log_meta').all() as MetaRow[]).map((m) => [m.log_id, m]))
    for (const row of db.query('SELECT * FROM request_log ORDER BY id').all() as LogRow[]) out.push({ where, row, meta: meta.get(row.id) ?? null })
  }
  if (existsSync(livePath)) {
    const live = new Database(livePath, { readonly: true })
    collect('live', live)
    live.close()
  }
  const archives = archiveDatabasesFor(archiveDir)
  for (const archive of archives) collect(archive.month, archive.db)
  closeArchives(archives)
  return out.sort((a, b) => a.row.id - b.row.id)
}

/** Checkpoints a WAL database so its file holds every page (for size measurements). */
export function checkpoint(path: string): void {
  const db = new Database(path)
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
  db.close()
}
