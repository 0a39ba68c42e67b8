/**
 * The files a read searches: the live database and, when archives are asked
 * for (`witness query --archives`, `archives=1`), the archive files of the
 * UTC months that overlap the period read (all months when it has no
 * start). They are opened for one request or one command and closed after
 * it (`close`), so an archive handle never outlives the read that opened it
 * and an archive the job compresses or deletes meanwhile is picked up fresh
 * next time. Opening is cheap (a read-only SQLite open per month); a
 * compressed month is decompressed to the cache once per version of the
 * file, off the event loop.
 */
import type { Database } from 'bun:sqlite'
import { existsSync } from 'node:fs'
import { isoTime } from '../clock.ts'
import { ArchivesUnavailableError } from '../errors.ts'
import type { Source } from '../telemetry/across.ts'
import type { PageKey } from '../telemetry/queries.ts'
import { readState } from '../jobs/job-db.ts'
import { prunedMonths } from '../proof/pruned.ts'
import { listArchives } from './archive-files.ts'
import { prunedArchiveMonths, recordedArchiveMonths } from './archive-months.ts'
import { closeArchives, openArchivesFor } from './archive-query.ts'
import { ARCHIVED_THROUGH_KEY } from './mover.ts'
import { monthOfMs, nextMonthStartMs } from './months.ts'

export interface ReadSources {
  live: Database
  /** The archives opened, newest month first. */
  archives: Database[]
  /** The live file first, then the archives newest month first: the order the merged reads want. */
  sources: Source[]
  /** The same databases, without their bounds. */
  dbs: Database[]
  close(): void
}

/** The period a read covers: `since` inclusive, `until` exclusive, and rows no newer than a cursor's. */
export interface ReadPeriod {
  since?: string
  until?: string
  before?: PageKey
}

/**
 * Whether a window starting at `since` reaches rows the archive job may have moved out of the live
 * file: it starts at or before the newest row moved (`through`, ARCHIVED_THROUGH_KEY), or before
 * `horizonMs` (now less `retention.keep_days`, when the config is known: an archive run of an older
 * witness left no mark). Such a read searches the archives whether or not they were asked for; a
 * window with no start (a listing) only when asked.
 */
export function archivesReached(live: Database, since: string | undefined, horizonMs?: number, through = readState(live, ARCHIVED_THROUGH_KEY)): boolean {
  if (since === undefined) return false
  const sinceMs = Date.parse(since)
  if (!Number.isFinite(sinceMs)) return false
  if (horizonMs !== undefined && sinceMs < horizonMs) return true
  return sinceMs <= Date.parse(through ?? '')
}

/**
 * The archive directory a read searches (null: the live file alone). A read searches the archives
 * when asked (`archives=1`, `--archives`), and an answer (did-call, the stats) also where its window
 * reaches them (archivesReached); a listing shows what it read, and reads them only when asked.
 *
 * It fails (ArchivesUnavailableError) when rows it needs were moved there (asked for, or its window
 * starts at or before the newest row moved, `archive.through`) and it cannot search them: no
 * directory is known, it is gone, or it lacks a month file the archive job wrote and retention never
 * deleted (a mount point left empty, a file deleted by hand): from the live file alone, did-call
 * would say "no" for archived calls. A window that wants them only for the keep_days horizon (an
 * older witness left no mark) reads whatever is there.
 */
export function archiveDirFor(live: Database, dir: string | null, read: { asked: boolean; answer: boolean; period: ReadPeriod; horizonMs?: number }): string | null {
  const through = readState(live, ARCHIVED_THROUGH_KEY)
  const moved = read.asked || (read.answer && archivesReached(live, read.period.since, undefined, through))
  if (!moved && !(read.answer && archivesReached(live, read.period.since, read.horizonMs, through))) return null
  if (!through || !moved) return dir
  if (dir === null || !existsSync(dir)) throw new ArchivesUnavailableError(dir, through)
  const [missing] = missingMonths(live, dir, through, periodMs(read.period))
  if (missing) throw new ArchivesUnavailableError(dir, through, `holds no archive for ${missing}`)
  return dir
}

/**
 * The months in [sinceMs, untilMs] (all when unbounded) that the archives should hold and `dir`
 * lacks, oldest first: each one recorded as written (archive-months.ts), and the month of the newest
 * row moved (`through`: a database archived before months were recorded), unless retention deleted it.
 */
export function missingMonths(live: Database, dir: string, through: string | null, [sinceMs, untilMs]: [number | undefined, number | undefined] = [undefined, undefined]): string[] {
  const from = sinceMs === undefined ? '' : monthOfMs(sinceMs)
  const to = untilMs === undefined ? '9999-12' : monthOfMs(untilMs)
  const throughMs = Date.parse(through ?? '')
  const months = [...recordedArchiveMonths(live), ...(Number.isFinite(throughMs) ? [monthOfMs(throughMs)] : [])]
  const expected = new Set(months.filter((m) => m >= from && m <= to))
  if (expected.size === 0) return []
  for (const file of listArchives(dir)) expected.delete(file.month)
  for (const month of [...prunedMonths(live), ...prunedArchiveMonths(live)]) expected.delete(month)
  return [...expected].sort()
}

/**
 * What a job that must read every archived row (the sync's export) cannot read: the directory gone,
 * or month files missing. Empty when nothing was ever archived.
 */
export function archivesMissing(live: Database, dir: string): string[] {
  const through = readState(live, ARCHIVED_THROUGH_KEY)
  if (!existsSync(dir)) return through || recordedArchiveMonths(live).length ? [`${dir}: the archive directory does not exist, and rows up to ${through ?? '(unknown)'} were moved there`] : []
  return missingMonths(live, dir, through).map((m) => `request_log-${m}.db: not in ${dir}, though the archive job wrote it and retention did not delete it`)
}

/**
 * Opens the sources for a read: `live` alone when `archiveDir` is null
 * (archives not asked for), else with the archives of the months in `period`.
 */
export async function openReadSources(live: Database, archiveDir: string | null, period: ReadPeriod = {}): Promise<ReadSources> {
  const opened = archiveDir === null ? [] : (await openArchivesFor(archiveDir, ...periodMs(period))).reverse()
  const archives = opened.map((a) => a.db)
  return {
    live,
    archives,
    sources: [{ db: live }, ...opened.map((a) => ({ db: a.db, olderThan: isoTime(nextMonthStartMs(a.month)) }))],
    dbs: [live, ...archives],
    close: () => closeArchives(opened),
  }
}

/** Runs `read` over sources being opened, and closes them after. */
export async function withSources<T>(sources: Promise<ReadSources>, read: (sources: ReadSources) => T | Promise<T>): Promise<T> {
  const opened = await sources
  try {
    return await read(opened)
  } finally {
    opened.close()
  }
}

/** [sinceMs, untilMs], both inclusive, as archiveDatabasesFor takes them. */
function periodMs(period: ReadPeriod): [number | undefined, number | undefined] {
  const ends = [period.until === undefined ? undefined : Date.parse(period.until) - 1, period.before && Date.parse(period.before.timestamp)].filter(
    (ms): ms is number => ms !== undefined && Number.isFinite(ms),
  )
  const since = period.since === undefined ? undefined : Date.parse(period.since)
  return [since !== undefined && Number.isFinite(since) ? since : undefined, ends.length ? Math.min(...ends) : undefined]
}
