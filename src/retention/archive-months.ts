/**
 * The archive months the archive job wrote rows to and has not deleted
 * (`archive_months`, migration 12), kept in the live database. A read that
 * searches the archives compares them with the files it finds: a month
 * recorded here without its file was lost (deleted by hand, a restore that
 * left it out), and a read without it would answer as if its rows never
 * existed. A month with no file and no record held no rows.
 *
 * The mover records a month in the transaction that deletes its rows from
 * the live file, so a month's rows are always in the live file, in a
 * recorded archive, or both. Retention marks a month deleted before it
 * deletes the file, and the mark stays, so a read knows the file is gone on
 * purpose: a kill in between leaves the file there marked deleted, which the
 * next run records again (recordArchiveFiles) and deletes. Months archived
 * by a witness from before migration 12 are recorded by the next archive run
 * from the files it finds; one lost before that run cannot be told.
 */
import type { Database } from 'bun:sqlite'
import { columnsOf, hasTable } from '../telemetry/schema.ts'

/** Records months whose rows the archives now hold (inside the caller's transaction); one deleted before holds rows again. */
export function recordArchiveMonths(live: Database, months: Iterable<string>, at: string): void {
  if (!hasTable(live, 'archive_months')) return
  const upsert = live.query('INSERT INTO archive_months (month, recorded_at) VALUES (?, ?) ON CONFLICT (month) DO UPDATE SET pruned_at = NULL')
  for (const month of months) upsert.run(month, at)
}

/** Marks a month retention is about to delete (recorded or not: an older witness may have archived it). */
export function markArchiveMonthDeleted(live: Database, month: string, at: string): void {
  if (!hasTable(live, 'archive_months')) return
  live.query('INSERT INTO archive_months (month, recorded_at, pruned_at) VALUES (?, ?, ?) ON CONFLICT (month) DO UPDATE SET pruned_at = excluded.pruned_at').run(month, at, at)
}

/** The months recorded and not deleted, oldest first (none in a database from before migration 12). */
export function recordedArchiveMonths(db: Database): string[] {
  return monthsMarked(db, false)
}

/** The months retention deleted. */
export function prunedArchiveMonths(db: Database): string[] {
  return monthsMarked(db, true)
}

function monthsMarked(db: Database, deleted: boolean): string[] {
  const columns = columnsOf(db, 'archive_months')
  if (!columns.length) return []
  // Read-only, a database of a build from before pruned_at (schema.ts LATE_COLUMNS) is read as it is: no month marked deleted.
  const marks = columns.includes('pruned_at')
  if (!marks && deleted) return []
  const where = marks ? `WHERE pruned_at IS ${deleted ? 'NOT ' : ''}NULL` : ''
  return (db.query(`SELECT month FROM archive_months ${where} ORDER BY month`).values() as [string][]).map((r) => r[0])
}
