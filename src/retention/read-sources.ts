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
 *
 * A read lists the month files, then reads the live file and the files it
 * opened. The archive job commits each batch to its month's file before it
 * deletes it from the live file, so a row the read misses in the live file
 * is in a file it opened, unless that file was made (a new month: the first
 * run after a month ends) or decompressed (a late row for a compressed
 * month) after the listing. The job raises a month's count (ARCHIVE_FILLS_KEY)
 * with the first rows of that month it deletes in a run: a read that saw it move while it
 * ran is done again on a fresh listing (withSources), rather than answering
 * without those rows (did-call saying "no" for a call that was made). No
 * read transaction is held across the listing for that: the server's read
 * connection is shared by every request, and a snapshot held through a
 * long read kept the WAL from starting over.
 */
import type { Database } from 'bun:sqlite'
import { existsSync } from 'node:fs'
import { isoTime } from '../clock.ts'
import { ArchiveDamagedError, ArchivesMovingError, ArchivesUnavailableError } from '../errors.ts'
import { type Source, listAcross } from '../telemetry/across.ts'
import type { LogRow, PageKey, RequestFilter } from '../telemetry/queries.ts'
import { readState } from '../jobs/job-db.ts'
import { hasTable } from '../telemetry/schema.ts'
import { prunedMonths } from '../proof/pruned.ts'
import { isDamage, listArchives } from './archive-files.ts'
import { prunedArchiveMonths, recordedArchiveMonths } from './archive-months.ts'
import { closeArchives, openArchivesFor } from './archive-query.ts'
import { ARCHIVED_THROUGH_KEY, archiveFillsKey } from './mover.ts'
import { monthOfMs, nextMonthStartMs } from './months.ts'

export interface ReadSources {
  live: Database
  /** The archives opened, newest month first. */
  archives: Database[]
  /** The live file first, then the archives newest month first: the order the merged reads want. */
  sources: Source[]
  /** The same databases, without their bounds. */
  dbs: Database[]
  /** The archive files opened (`.db` or `.db.zst`), newest month first. */
  archiveFiles: string[]
  /**
   * Whether the archive job has begun moving rows into a month file of the period since the archives
   * were listed (a month's ARCHIVE_FILLS_KEY moved): a read over these may have missed rows, gone from
   * the live file into a file it did not list. For the live file alone, false (but see openSourcesFor).
   */
  moved(): boolean
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
function missingMonths(live: Database, dir: string, through: string | null, [sinceMs, untilMs]: [number | undefined, number | undefined] = [undefined, undefined]): string[] {
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

/** The months of `period` (all when unbounded) whose archived rows retention deleted (archive_keep_days), oldest first. */
export function deletedMonthsIn(live: Database, period: ReadPeriod): string[] {
  const [sinceMs, untilMs] = periodMs(period)
  const from = sinceMs === undefined ? '' : monthOfMs(sinceMs)
  const to = untilMs === undefined ? '9999-12' : monthOfMs(untilMs)
  return [...new Set([...prunedMonths(live), ...prunedArchiveMonths(live)])].filter((m) => m >= from && m <= to).sort()
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
  // Read before the listing: a file made after it is then seen to have been (ReadSources.moved).
  const months = periodMs(period)
  const fills = archiveDir === null ? null : fillsIn(live, months)
  const opened = archiveDir === null ? [] : (await openArchivesFor(archiveDir, ...periodMs(period))).reverse()
  const archives = opened.map((a) => a.db)
  let closed = false
  return {
    live,
    archives,
    sources: [{ db: live }, ...opened.map((a) => ({ db: a.db, olderThan: isoTime(nextMonthStartMs(a.month)) }))],
    dbs: [live, ...archives],
    archiveFiles: opened.map((a) => a.path),
    moved: () => archiveDir !== null && fillsIn(live, months) !== fills,
    close: () => {
      if (closed) return
      closed = true
      closeArchives(opened)
    },
  }
}

/**
 * Opens the sources a read searches (archiveDirFor decides which), for a reader of the live file at
 * `live` whose archives are in `dir`. An answer that reads the live file alone (its window starts
 * after the newest row moved) is also read again when, meanwhile, the job moved rows of its window
 * out (an early move, past retention.max_db_mb, reaches recent rows): the next opening then
 * searches the archives too.
 */
export async function openSourcesFor(live: Database, dir: string | null, read: { asked: boolean; answer: boolean; period: ReadPeriod; horizonMs?: number }): Promise<ReadSources> {
  const archiveDir = archiveDirFor(live, dir, read)
  const sources = await openReadSources(live, archiveDir, read.period)
  if (archiveDir !== null || !read.answer || read.period.since === undefined) return sources
  const since = read.period.since
  return { ...sources, moved: () => archivesReached(live, since) }
}

/** The counts of the months of [sinceMs, untilMs] (all when open) the mover raises as it begins filling them (ARCHIVE_FILLS_KEY). */
function fillsIn(live: Database, [sinceMs, untilMs]: [number | undefined, number | undefined]): string | null {
  if (!hasTable(live, 'witness_state')) return null
  const from = archiveFillsKey(sinceMs === undefined ? '' : monthOfMs(sinceMs))
  const to = archiveFillsKey(untilMs === undefined ? '9999-12' : monthOfMs(untilMs))
  const row = live.query("SELECT group_concat(key || '=' || value, ' ') AS fills FROM (SELECT key, value FROM witness_state WHERE key BETWEEN ? AND ? ORDER BY key)").get(from, to) as { fills: string | null }
  return row.fills
}

/** How many times a read is done before ArchivesMovingError, while the archive job keeps beginning month files under it. */
export const READ_TRIES = 3

/**
 * Runs `read` over sources `open` opens, and closes them after. When the archive job began moving
 * rows into a month file meanwhile (ReadSources.moved), the answer may lack them: it is read again
 * over sources opened anew, at most READ_TRIES times in all (then ArchivesMovingError). The job
 * begins a month file once per month per run, so a second read almost always stands.
 */
export async function withSources<T>(open: () => Promise<ReadSources>, read: (sources: ReadSources) => T | Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    const sources = await open()
    try {
      const answer = await read(sources)
      if (!sources.moved()) return answer
    } catch (error) {
      throw damageNamed(sources, error)
    } finally {
      sources.close()
    }
    if (tries >= READ_TRIES) throw new ArchivesMovingError(tries)
  }
}

/**
 * Every row matching `filter` from `before` on (at most `max`), a page at a time, as walkAcross
 * reads them, over `first` and then sources `open` opens anew: a page read while the archive job
 * began moving rows into a month file (ReadSources.moved) is read again from the same cursor over
 * a fresh listing (at most READ_TRIES times). For a streamed export, which lasts as long as its
 * client takes: no read is held between pages. The sources open are closed when it ends or is
 * returned.
 */
export async function* pagesAcross(first: ReadSources, open: () => Promise<ReadSources>, filter: RequestFilter, before: PageKey | undefined, max = Infinity, pageSize = 1000): AsyncGenerator<LogRow[]> {
  let sources: ReadSources | null = first
  try {
    let key = before
    let sent = 0
    while (sent < max) {
      const want = Math.min(pageSize, max - sent)
      let rows: LogRow[]
      for (let tries = 1; ; tries++) {
        sources ??= await open()
        try {
          rows = listAcross(sources.sources, filter, want, key)
        } catch (error) {
          throw damageNamed(sources, error)
        }
        if (!sources.moved()) break
        sources.close()
        sources = null
        if (tries >= READ_TRIES) throw new ArchivesMovingError(tries)
      }
      if (rows.length) yield rows
      sent += rows.length
      const last = rows[rows.length - 1]
      if (rows.length < want || !last) return
      key = { timestamp: last.timestamp, id: last.id }
    }
  } finally {
    sources?.close()
  }
}

/**
 * SQLite reporting damage in the middle of a read over archives (a page a cut or altered file lacks)
 * does not say in which file: the files the read searched are named, for the operator to check
 * each. Damage with the live file alone, and any other error, is passed on as it is.
 */
function damageNamed(sources: ReadSources, error: unknown): unknown {
  if (!isDamage(error) || sources.archiveFiles.length === 0) return error
  const files = [sources.live.filename, ...sources.archiveFiles]
  return new ArchiveDamagedError(
    `a file this read searched is damaged (${(error as Error).message}): the live database ${files[0]} or one of the archives ${sources.archiveFiles.join(', ')}; \`sqlite3 FILE 'PRAGMA quick_check'\` (on a .zst, after zstd -d) tells which; restore it from a copy`,
    files,
    error,
  )
}

/** [sinceMs, untilMs], both inclusive, as archiveDatabasesFor takes them. */
function periodMs(period: ReadPeriod): [number | undefined, number | undefined] {
  const ends = [period.until === undefined ? undefined : Date.parse(period.until) - 1, period.before && Date.parse(period.before.timestamp)].filter(
    (ms): ms is number => ms !== undefined && Number.isFinite(ms),
  )
  const since = period.since === undefined ? undefined : Date.parse(period.since)
  return [since !== undefined && Number.isFinite(since) ? since : undefined, ends.length ? Math.min(...ends) : undefined]
}
