/**
 * The archive job (`witness archive`, and daily inside `serve`):
 *
 * 1. moves finished rows older than `keep_days` to their monthly archives;
 * 2. if the live file is over `max_db_mb`, moves the oldest finished rows
 *    early until the pages in use are under 90% of it;
 * 3. gives the freed space back (incremental vacuum), so the file shrinks;
 * 4. compresses closed months (before the current UTC month, with no row
 *    left in the live database) to `.db.zst`;
 * 5. deletes archive files older than `archive_keep_days` (if set), except
 *    those still holding rows the sync has not exported.
 *
 * One run at a time (a lock file in the archive directory).
 */
import type { Database } from 'bun:sqlite'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { isoTime } from '../clock.ts'
import type { RetentionSettings } from '../config.ts'
import { openLiveForJob, retryWhileBusy } from '../jobs/job-db.ts'
import { loadSigningKey } from '../proof/keys.ts'
import { monthRunsOf, recordPruned, signPruned } from '../proof/pruned.ts'
import { takeJobLock } from '../jobs/job-lock.ts'
import { type SyncState, NO_SYNC_STATE, readSyncState } from '../sync/sync-state.ts'
import { type ArchiveFile, compressArchive, deleteArchive, listArchives, openArchiveReadonly, pruneCache } from './archive-files.ts'
import { monthOfMs, monthStartMs, nextMonthStartMs } from './months.ts'
import { markArchiveMonthDeleted, recordArchiveMonths } from './archive-months.ts'
import { type BatchEvent, createMover } from './mover.ts'
import { SIDE_TABLES } from './side-tables.ts'
import { megabytes } from '../format/size.ts'
import { giveSpaceBack, usedBytes } from './vacuum.ts'

export const DAY_MS = 86_400_000

/** Rows stamped before this may have moved to the archives: older than `keep_days`. */
export function archivedBeforeMs(retention: Pick<RetentionSettings, 'keepDays'>, nowMs: number): number {
  return nowMs - retention.keepDays * DAY_MS
}
/** Early archiving stops once the pages in use are under this share of max_db_mb. */
const EARLY_TARGET = 0.9
const NEVER = '9999-12-31T23:59:59.999Z'

export interface ArchiveJobOptions {
  livePath: string
  retention: RetentionSettings
  /** When sync is configured, archives still holding unexported rows are never deleted. */
  syncConfigured: boolean
  /** Wall clock, epoch ms. */
  now: () => number
  /** Rows per batch (default 500): each batch is one short write on the live database. */
  batchRows?: number
  onBatch?: (event: BatchEvent) => void
  busyBudgetMs?: number
  /**
   * The machine's signing key (`proof.key_path`) and name, to sign the record of the chain entries a
   * month deleted by `archive_keep_days` takes with it. Without a key there, such a month is kept.
   */
  signer?: { keyPath: string; machine: string }
}

export interface ArchiveReport {
  /** Rows moved because they were older than keep_days. */
  moved: number
  /** Rows moved early because the live file was over max_db_mb. */
  movedEarly: number
  /** Rows moved per month file. */
  months: Record<string, number>
  compressed: string[]
  deleted: string[]
  /** Months past archive_keep_days kept because they hold rows not yet exported. */
  keptUnexported: string[]
  /** Months past archive_keep_days kept because no signing key could sign the record of their chain entries. */
  keptUnsigned: string[]
  /** Months past archive_keep_days kept because they hold chain entries of rows from other months (put there by hand). */
  keptForeign: string[]
  liveBytesBefore: number
  liveBytesAfter: number
  /** Bytes of free pages the live file keeps: it was not created by witness, and auto_vacuum is off (0 otherwise). */
  freeBytesKept: number
  /**
   * Over max_db_mb with more of the file than its target taken by what never moves (checkpoints,
   * stored stats): moving every row cannot bring it under, though rows were moved early all the same
   * (what they free keeps the router under database_max_mb). Null otherwise.
   */
  notRows: { usedBytes: number; fixedBytes: number; largest: [string, number][] } | null
}

export function archiveLockPath(archiveDir: string): string {
  return join(archiveDir, '.archive.lock')
}

/** Runs the archive job once. Throws JobBusyError when another run holds the lock. */
export async function runArchive(options: ArchiveJobOptions): Promise<ArchiveReport> {
  const { retention } = options
  const dir = retention.archiveDir
  const lock = takeJobLock('archive', archiveLockPath(dir), options.now)
  const report: ArchiveReport = {
    moved: 0, movedEarly: 0, months: {}, compressed: [], deleted: [], keptUnexported: [], keptUnsigned: [], keptForeign: [],
    liveBytesBefore: fileBytes(options.livePath), liveBytesAfter: 0, freeBytesKept: 0, notRows: null,
  }
  let live: Database | null = null
  try {
    if (existsSync(options.livePath)) live = await openLiveForJob(options.livePath, 'archive', options.busyBudgetMs)
    if (live) await moveRows(live, options, report)
    // Months archived before they were recorded (an older witness), or left by a run killed while deleting one, are recorded from their files.
    if (live) await recordArchiveFiles(live, listArchives(dir), isoTime(options.now()), options.busyBudgetMs)
    report.liveBytesAfter = fileBytes(options.livePath)
    const currentMonth = monthOfMs(options.now())
    for (const file of listArchives(dir)) {
      if (file.month >= currentMonth || (file.compressed && !file.both)) continue
      if (live && liveHasMonth(live, file.month)) continue
      await compressArchive(dir, file.month)
      report.compressed.push(file.month)
    }
    if (retention.archiveKeepDays > 0) {
      const horizon = options.now() - retention.archiveKeepDays * DAY_MS
      const state = options.syncConfigured ? (live ? readSyncState(live) : NO_SYNC_STATE) : null
      for (const file of listArchives(dir)) {
        if (nextMonthStartMs(file.month) > horizon) continue
        if (state && holdsUnexported(dir, file, state)) {
          report.keptUnexported.push(file.month)
          continue
        }
        // Its chain entries go with it: where they were is recorded first, signed, so verify knows the gap.
        const recorded = live ? await recordPrunedMonth(live, dir, file, isoTime(options.now()), options) : true
        if (recorded !== true) {
          ;(recorded === 'foreign' ? report.keptForeign : report.keptUnsigned).push(file.month)
          continue
        }
        if (live) await retryWhileBusy(`archive: marking ${file.month} deleted`, () => markArchiveMonthDeleted(live!, file.month, isoTime(options.now())), options.busyBudgetMs)
        deleteArchive(dir, file.month)
        report.deleted.push(file.month)
      }
    }
    pruneCache(dir)
    return report
  } finally {
    live?.close()
    lock.release()
  }
}

/**
 * Records the runs of chain entries an archive month holds, signed, in the live database, before it
 * is deleted. False (the month must stay) when it holds entries and there is no key to sign with;
 * 'foreign' when it holds entries of rows from other months (put there by hand, to have their
 * deletion signed: the month stays, and the run says so).
 */
async function recordPrunedMonth(live: Database, dir: string, file: ArchiveFile, at: string, options: ArchiveJobOptions): Promise<true | false | 'foreign'> {
  const archive = openArchiveReadonly(dir, file)
  let held: ReturnType<typeof monthRunsOf>
  try {
    held = monthRunsOf(archive, file.month)
  } finally {
    archive.close()
  }
  const { runs, foreign } = held
  if (foreign.length) return 'foreign'
  if (runs.length === 0) return true
  const { signer } = options
  if (!signer || !existsSync(signer.keyPath)) return false
  const records = await signPruned(await loadSigningKey(signer.keyPath), signer.machine, file.month, runs)
  await retryWhileBusy(`archive: recording the chain entries of ${file.month}`, () => recordPruned(live, records, at), options.busyBudgetMs)
  return true
}

function recordArchiveFiles(live: Database, files: readonly ArchiveFile[], at: string, budgetMs?: number): Promise<void> {
  return retryWhileBusy('archive: recording the archive months', () => live.transaction(() => recordArchiveMonths(live, files.map((f) => f.month), at))(), budgetMs)
}

async function moveRows(live: Database, options: ArchiveJobOptions, report: ArchiveReport): Promise<void> {
  const budget = options.busyBudgetMs ?? 10_000
  const batch = options.batchRows ?? 500
  const mover = createMover(live, { dir: options.retention.archiveDir, sides: SIDE_TABLES, now: options.now, onBatch: options.onBatch, busyBudgetMs: budget })
  const moveAll = async (before: string, more: () => boolean): Promise<number> => {
    let moved = 0
    while (more()) {
      const rows = mover.oldest(before, batch)
      if (rows.length === 0) break
      for (const [month, count] of await mover.move(rows)) report.months[month] = (report.months[month] ?? 0) + count
      moved += rows.length
      await Bun.sleep(0) // let the router's writes in between batches
    }
    return moved
  }
  try {
    report.moved = await moveAll(isoTime(archivedBeforeMs(options.retention, options.now())), () => true)
    const maxBytes = options.retention.maxDbMb * 1024 * 1024
    if (fileBytes(options.livePath) > maxBytes || usedBytes(live) > maxBytes) {
      // What never moves (checkpoints, the stored stats) may be most of the file: then moving every
      // row, the youngest included, could not bring it under, and would drain the table at each run.
      // Rows are moved all the same: under database_max_mb the router refuses every new call, and
      // whatever moving them frees keeps it serving. The operator is told to raise the limits.
      const fixed = unmovedBytes(live)
      if (fixed && fixed.total >= maxBytes * EARLY_TARGET) report.notRows = { usedBytes: usedBytes(live), fixedBytes: fixed.total, largest: fixed.largest }
      report.movedEarly = await moveAll(NEVER, () => usedBytes(live) > maxBytes * EARLY_TARGET)
    }
  } finally {
    mover.close()
  }
  report.freeBytesKept = await giveSpaceBack(live, budget)
}

/** What an archive run says of a live file whose size is not its rows (report.notRows). */
export function describeNotRows(notRows: NonNullable<ArchiveReport['notRows']>, maxDbMb: number): string {
  const largest = notRows.largest.filter(([, bytes]) => bytes > 0).map(([name, bytes]) => `${name} ${megabytes(bytes)}`).join(', ')
  return `the live database uses ${megabytes(notRows.usedBytes)}, over retention.max_db_mb (${maxDbMb} MB), and ${megabytes(notRows.fixedBytes)} of it is not rows (${largest}), which archiving never moves: moving every row (done all the same, so that writes go on) cannot bring it under, and each run drains the table; raise retention.max_db_mb (and database_max_mb)`
}

/** The tables whose rows the archive job moves (the rows and what moves with them), with their indexes. */
const MOVED_TABLES = new Set(['request_log', ...SIDE_TABLES.map((s) => s.table)])

/**
 * The bytes of the live file's b-trees that no archiving moves (checkpoints, stored stats, state),
 * each a walk of that b-tree alone (SQLite's dbstat); the largest first. Null where dbstat is not built in.
 */
function unmovedBytes(live: Database): { total: number; largest: [string, number][] } | null {
  const names = live.query("SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index') AND rootpage > 0").all() as { name: string; tbl_name: string }[]
  const sizes: [string, number][] = []
  try {
    const size = live.query('SELECT sum(pgsize) AS bytes FROM dbstat WHERE name = ?')
    for (const { name, tbl_name } of names) {
      if (MOVED_TABLES.has(tbl_name) || tbl_name === 'sqlite_sequence') continue
      sizes.push([name, (size.get(name) as { bytes: number | null }).bytes ?? 0])
    }
  } catch {
    return null
  }
  sizes.sort((a, b) => b[1] - a[1])
  return { total: sizes.reduce((sum, [, bytes]) => sum + bytes, 0), largest: sizes.slice(0, 3) }
}

function liveHasMonth(live: Database, month: string): boolean {
  return (
    live
      .query('SELECT 1 FROM request_log WHERE timestamp >= ? AND timestamp < ? LIMIT 1')
      .get(isoTime(monthStartMs(month)), isoTime(nextMonthStartMs(month))) !== null
  )
}

function holdsUnexported(dir: string, file: ArchiveFile, state: SyncState): boolean {
  // Pushed, not only committed: until the push, the exported lines live only in sync.work_dir.
  const pushed = state.pushed ?? NO_SYNC_STATE
  const db = openArchiveReadonly(dir, file)
  try {
    // Exported means: id <= watermark and not in pending (see sync-state.ts).
    return db.query('SELECT 1 FROM request_log WHERE id > ? OR id IN (SELECT value FROM json_each(?)) LIMIT 1').get(pushed.watermark, JSON.stringify(pushed.pending)) !== null
  } finally {
    db.close()
  }
}

function fileBytes(path: string): number {
  return existsSync(path) ? statSync(path).size : 0
}
