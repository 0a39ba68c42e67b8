/**
 * Reading archives: the archive files whose month overlaps a period, opened
 * read-only (compressed months through a decompressed copy in
 * `<archive_dir>/.cache/`, made once per version of the file). The query
 * layer searches these besides the live database (`--archives`,
 * `archives=1`); each handle has the exact request_log table with the
 * original ids, and request_log_meta.
 */
import type { Database } from 'bun:sqlite'
import { listArchives, openArchiveReadonly } from './archive-files.ts'
import { monthOverlaps } from './months.ts'

export interface ArchiveDatabase {
  /** `YYYY-MM` */
  month: string
  /** The archive file (`.db` or `.db.zst`). */
  path: string
  db: Database
}

/**
 * Opens the archives of every UTC month overlapping [sinceMs, untilMs]
 * (either end open when undefined), oldest first. The caller closes them
 * (`closeArchives`).
 */
export function archiveDatabasesFor(archiveDir: string, sinceMs?: number, untilMs?: number): ArchiveDatabase[] {
  const opened: ArchiveDatabase[] = []
  try {
    for (const file of listArchives(archiveDir)) {
      if (!monthOverlaps(file.month, sinceMs, untilMs)) continue
      opened.push({ month: file.month, path: file.path, db: openArchiveReadonly(archiveDir, file) })
    }
    return opened
  } catch (error) {
    closeArchives(opened)
    throw error
  }
}

export function closeArchives(archives: readonly ArchiveDatabase[]): void {
  for (const archive of archives) archive.db.close()
}
