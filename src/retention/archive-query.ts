/**
 * Reading archives: the archive files whose month overlaps a period, opened
 * read-only (compressed months through a decompressed copy in
 * `<archive_dir>/.cache/`, made once per version of the file). The query
 * layer searches these besides the live database (`--archives`,
 * `archives=1`, see read-sources.ts); each handle has the exact request_log
 * table with the original ids, and request_log_meta.
 */
import type { Database } from 'bun:sqlite'
import { type ArchiveFile, listArchives, openArchiveForAudit, openArchiveReadonly, prepareReadable, prunePrivateCache } from './archive-files.ts'
import { monthOverlaps } from './months.ts'

export interface ArchiveDatabase {
  /** `YYYY-MM` */
  month: string
  /** The archive file (`.db` or `.db.zst`). */
  path: string
  db: Database
  /** Deletes a copy made for this handle alone (an audit's), once it is closed. */
  remove?: (() => void) | null
}

/**
 * Opens the archives of every UTC month overlapping [sinceMs, untilMs]
 * (either end open when undefined), oldest first. The caller closes them
 * (`closeArchives`).
 */
export function archiveDatabasesFor(archiveDir: string, sinceMs?: number, untilMs?: number): ArchiveDatabase[] {
  return openAll(archiveDir, archivesIn(archiveDir, sinceMs, untilMs))
}

/**
 * The same, for the server: compressed months are decompressed to the cache
 * off the event loop first, so a month read for the first time does not
 * stall the router.
 */
export async function openArchivesFor(archiveDir: string, sinceMs?: number, untilMs?: number): Promise<ArchiveDatabase[]> {
  const files = archivesIn(archiveDir, sinceMs, untilMs)
  for (const file of files) await prepareReadable(archiveDir, file)
  return openAll(archiveDir, files)
}

/**
 * Every archive in turn, oldest first, each compressed month decompressed anew for this reader alone
 * (verify: see openArchiveForAudit), `use`d, then closed and its copy deleted before the next one is
 * opened: one month's copy on disk at a time. Returns how many there were.
 */
export async function eachArchiveForAudit(archiveDir: string, copyDir: string, use: (archive: ArchiveDatabase) => Promise<void>): Promise<number> {
  const files = listArchives(archiveDir)
  for (const file of files) {
    const archive: ArchiveDatabase = { month: file.month, path: file.path, ...(await openArchiveForAudit(archiveDir, file, copyDir)) }
    try {
      await use(archive)
    } finally {
      closeArchives([archive])
    }
  }
  return files.length
}

export function closeArchives(archives: readonly ArchiveDatabase[]): void {
  for (const archive of archives) {
    archive.db.close()
    archive.remove?.()
  }
}

function archivesIn(archiveDir: string, sinceMs?: number, untilMs?: number): ArchiveFile[] {
  prunePrivateCache(archiveDir)
  return listArchives(archiveDir).filter((file) => monthOverlaps(file.month, sinceMs, untilMs))
}

function openAll(archiveDir: string, files: ArchiveFile[]): ArchiveDatabase[] {
  const opened: ArchiveDatabase[] = []
  try {
    for (const file of files) opened.push({ month: file.month, path: file.path, db: openArchiveReadonly(archiveDir, file) })
    return opened
  } catch (error) {
    closeArchives(opened)
    throw error
  }
}

/**
 * The rows of an archive that belong to other months (each row's month is its timestamp's, as the
 * archive job files it): none, unless the file was renamed or replaced by another month's, or rows
 * were put there by hand. A read picks month files by name, so such rows are missed by a read of
 * their own month (did-call would say no). At most `limit` months named, with the count of all.
 */
export function rowsOfOtherMonths(archive: ArchiveDatabase, limit = 5): { count: number; months: string[] } | null {
  const rows = archive.db
    .query('SELECT substr(timestamp, 1, 7) AS month, count(*) AS n FROM request_log WHERE substr(timestamp, 1, 7) != ? GROUP BY 1 ORDER BY 1')
    .all(archive.month) as { month: string; n: number }[]
  if (rows.length === 0) return null
  return { count: rows.reduce((sum, r) => sum + r.n, 0), months: rows.slice(0, limit).map((r) => r.month).concat(rows.length > limit ? ['…'] : []) }
}
