/**
 * Moves finished rows from the live database into their monthly archives,
 * one small batch at a time, so that a kill at any instant loses nothing
 * and duplicates nothing:
 *
 *   1. copy: INSERT OR IGNORE the rows (request_log and every side table)
 *      into each month's archive, and commit there;
 *   2. verify: read them back from the archive and compare, column by
 *      column, with the live rows (a row already in the archive under the
 *      same id must be identical, or nothing is deleted);
 *   3. delete: remove them from the live database in one short transaction
 *      (with the stats' stored slices that held them, and those of no row
 *      before them; the first such transaction of a run for a month raises
 *      its ARCHIVE_FILLS_KEY, which the reads watch: see read-sources.ts).
 *
 * A kill before 3 commits leaves rows in both places; the next run's
 * INSERT OR IGNORE skips them, the check passes and the delete finishes.
 * Finished rows never change, so the copy stays true until the delete.
 */
import type { Database } from 'bun:sqlite'
import { isoTime } from '../clock.ts'
import { ArchiveError } from '../errors.ts'
import { CHAIN_HEAD_KEY, chainHeadState } from '../proof/append.ts'
import { readState, retryWhileBusy, writeState } from '../jobs/job-db.ts'
import { dropEmptyStoredSlicesBefore, dropStoredSlicesOf, hasSliceTable } from '../telemetry/slice-store.ts'
import { columnsOf, hasTable } from '../telemetry/schema.ts'
import { archivePath, ident, openArchiveForWrite } from './archive-files.ts'
import { recordArchiveMonths } from './archive-months.ts'
import { ISO_TIMESTAMP_GLOB, monthOfTimestamp } from './months.ts'
import type { SideTable } from './side-tables.ts'

/** witness_state key: the highest request_log id ever moved to an archive (sync reads it). */
export const ARCHIVED_MAX_ID_KEY = 'archive.max_id'
/**
 * witness_state key: the newest timestamp among the rows moved to the archives. A read whose window
 * starts at or before it searches the archives too (read-sources.ts), or it would answer from a part
 * of the window: did-call would say "no" for a call that was made.
 */
export const ARCHIVED_THROUGH_KEY = 'archive.through'
/**
 * witness_state keys `archive.fills.YYYY-MM`: a count per month the mover raises, in the transaction
 * that deletes them, with the first rows of that month each run deletes after copying them into the
 * month's file (made or decompressed by that run, perhaps). A read lists the month files before it
 * reads the live file: it reads the counts of its period's months before it lists them and after it
 * has read, and reads again when one moved (read-sources.ts withSources), since rows moved meanwhile
 * into a file it did not list are in neither place it looked. Per month, so that a run filling many
 * months (a first run over years of rows) does not make every read of other months read again.
 */
export const ARCHIVE_FILLS_KEY = 'archive.fills'

/** The key of a month's count (ARCHIVE_FILLS_KEY). */
export function archiveFillsKey(month: string): string {
  return `${ARCHIVE_FILLS_KEY}.${month}`
}

export interface BatchEvent {
  phase: 'copied' | 'deleted'
  ids: number[]
  months: string[]
}

interface Table {
  name: string
  key: string
  columns: string[]
}

export interface Mover {
  /** The oldest finished rows with a timestamp before `beforeIso`, at most `limit`. */
  oldest(beforeIso: string, limit: number): { id: number; timestamp: string }[]
  /** Copies, verifies and deletes one batch; returns how many rows went to each month. */
  move(rows: { id: number; timestamp: string }[]): Promise<Map<string, number>>
  /** Closes the archives it opened. */
  close(): void
}

export interface MoverOptions {
  dir: string
  sides: readonly SideTable[]
  now: () => number
  onBatch?: (event: BatchEvent) => void
  busyBudgetMs?: number
}

export function createMover(live: Database, options: MoverOptions): Mover {
  const tables: Table[] = [
    { name: 'request_log', key: 'id' },
    ...options.sides.filter((s) => hasTable(live, s.table)).map((s) => ({ name: s.table, key: s.key })),
  ].map((t) => ({ ...t, columns: columnsOf(live, t.name) }))
  const archives = new Map<string, Database>()
  const budget = options.busyBudgetMs ?? 10_000
  // Opening brings the file's schema up to date, a write that a server reading the month can make busy.
  const archiveFor = async (month: string) => {
    let db = archives.get(month)
    if (!db) {
      db = await retryWhileBusy(`archive: opening request_log-${month}.db`, () => openArchiveForWrite(options.dir, month, live, options.sides), budget)
      archives.set(month, db)
    }
    return db
  }

  const selectOldest = live.query(
    `SELECT id, timestamp FROM request_log
     WHERE status != 'pending' AND timestamp < ? AND timestamp GLOB '${ISO_TIMESTAMP_GLOB}'
     ORDER BY timestamp, id LIMIT ?`,
  )
  const rowsOf = (db: Database, t: Table, ids: string) =>
    db
      .query(`SELECT ${t.columns.map(ident).join(', ')} FROM ${ident(t.name)} WHERE ${ident(t.key)} IN (SELECT value FROM json_each(?)) ORDER BY ${ident(t.key)}`)
      .values(ids)

  function copy(archive: Database, ids: string): void {
    archive.transaction(() => {
      for (const t of tables) {
        const insert = archive.query(
          `INSERT OR IGNORE INTO ${ident(t.name)} (${t.columns.map(ident).join(', ')}) VALUES (${t.columns.map(() => '?').join(', ')})`,
        )
        for (const row of rowsOf(live, t, ids)) insert.run(...(row as never[]))
      }
    }).immediate()
  }

  function verify(archive: Database, month: string, ids: string): void {
    for (const t of tables) {
      const want = rowsOf(live, t, ids)
      const got = rowsOf(archive, t, ids)
      if (!Bun.deepEquals(want, got)) {
        const keyAt = t.columns.indexOf(t.key)
        const wrong = want.find((row, i) => !Bun.deepEquals(row, got[i])) ?? want[0]
        throw new ArchiveError(
          `archive: request_log-${month}.db holds ${t.name} ${t.key} ${String(wrong?.[keyAt])} with other content than the live database; nothing was deleted (was the live database replaced?)`,
        )
      }
    }
  }

  const hasState = hasTable(live, 'witness_state')
  const hasStoredSlices = hasSliceTable(live)
  const movesChain = hasState && tables.some((t) => t.name === 'log_chain')
  // The months this run has deleted rows of: the first deletion of each raises ARCHIVE_FILLS_KEY.
  const filling = new Set<string>()
  const deleteBatch = live.transaction((ids: string, months: string[], maxId: number, throughMs: number) => {
    const at = new Date(options.now()).toISOString()
    // After the file was made (or decompressed) and before any row in it left the live file: a read
    // that listed the archives before the file was there sees the count move, and reads again.
    for (const month of hasState ? months.filter((m) => !filling.has(m)) : []) {
      writeState(live, archiveFillsKey(month), String(Number(readState(live, archiveFillsKey(month)) ?? 0) + 1), at)
    }
    // Their months are known to hold rows from now on, so a read can tell a month file gone missing.
    recordArchiveMonths(live, months, at)
    // The head stays known when every chain entry has moved out (see chainHead).
    const head = movesChain ? chainHeadState(live) : null
    if (head) writeState(live, CHAIN_HEAD_KEY, head, at)
    // The stats' stored slices holding these rows no longer tell the live file's truth (slice-store.ts),
    // and those of no row before them would never go otherwise.
    if (hasStoredSlices) {
      dropStoredSlicesOf(live, ids, at)
      if (Number.isFinite(throughMs)) dropEmptyStoredSlicesBefore(live, isoTime(throughMs))
    }
    for (const t of tables.slice(1)) live.query(`DELETE FROM ${ident(t.name)} WHERE ${ident(t.key)} IN (SELECT value FROM json_each(?))`).run(ids)
    live.query(`DELETE FROM request_log WHERE status != 'pending' AND id IN (SELECT value FROM json_each(?))`).run(ids)
    if (hasState) {
      const before = Number(readState(live, ARCHIVED_MAX_ID_KEY) ?? 0)
      if (maxId > before) writeState(live, ARCHIVED_MAX_ID_KEY, String(maxId), at)
      const through = Date.parse(readState(live, ARCHIVED_THROUGH_KEY) ?? '')
      if (Number.isFinite(throughMs) && !(throughMs <= through)) writeState(live, ARCHIVED_THROUGH_KEY, isoTime(throughMs), at)
    }
  })

  return {
    oldest: (beforeIso, limit) => selectOldest.all(beforeIso, limit) as { id: number; timestamp: string }[],

    async move(rows) {
      const byMonth = new Map<string, number[]>()
      // The highest id and the newest timestamp moved, taken as the rows go by (not Math.max(...):
      // a spread of a million arguments overflows the stack).
      let maxId = 0
      let throughMs = Number.NEGATIVE_INFINITY
      for (const row of rows) {
        const month = monthOfTimestamp(row.timestamp)
        if (!month) continue
        const ids = byMonth.get(month)
        if (ids) ids.push(row.id)
        else byMonth.set(month, [row.id])
        if (row.id > maxId) maxId = row.id
        const ms = Date.parse(row.timestamp)
        if (ms > throughMs) throughMs = ms
      }
      for (const [month, ids] of byMonth) {
        try {
          const archive = await archiveFor(month)
          await retryWhileBusy(`archive: writing request_log-${month}.db`, () => copy(archive, JSON.stringify(ids)), budget)
        } catch (error) {
          // SQLite's "database or disk is full" names no file: the operator needs to know which disk.
          // Named once: a write that already names its file (writeFileDurably's) is not named again.
          if (error instanceof Error && !(error instanceof ArchiveError) && !error.message.startsWith('cannot write ')) error.message = `cannot write ${archivePath(options.dir, month)}: ${error.message}`
          throw error
        }
      }
      const all = [...byMonth.values()].flat()
      options.onBatch?.({ phase: 'copied', ids: all, months: [...byMonth.keys()] })
      for (const [month, ids] of byMonth) verify(await archiveFor(month), month, JSON.stringify(ids))
      await retryWhileBusy('archive: deleting archived rows from the live database', () => deleteBatch.immediate(JSON.stringify(all), [...byMonth.keys()], maxId, throughMs), budget)
      for (const month of byMonth.keys()) filling.add(month)
      options.onBatch?.({ phase: 'deleted', ids: all, months: [...byMonth.keys()] })
      return new Map([...byMonth].map(([month, ids]) => [month, ids.length]))
    },

    close() {
      for (const db of archives.values()) db.close()
      archives.clear()
    },
  }
}
