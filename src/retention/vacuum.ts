/**
 * Giving space back: the live database is created with
 * `auto_vacuum = INCREMENTAL`, so pages freed by archiving can be returned
 * to the file system with `PRAGMA incremental_vacuum`, a few thousand pages
 * per short transaction (the router keeps writing in between). In WAL mode
 * the file itself shrinks when a checkpoint copies the whole log back, so a
 * TRUNCATE checkpoint follows (best effort: a busy reader only delays it).
 */
import type { Database } from 'bun:sqlite'
import { megabytes } from '../format/size.ts'
import { isBusy, retryWhileBusy } from '../jobs/job-db.ts'

const PAGES_PER_STEP = 2048

/** Bytes of the database's pages in use (excluding free pages). */
export function usedBytes(db: Database): number {
  const pages = (db.query('PRAGMA page_count').get() as { page_count: number }).page_count
  const free = (db.query('PRAGMA freelist_count').get() as { freelist_count: number }).freelist_count
  const size = (db.query('PRAGMA page_size').get() as { page_size: number }).page_size
  return (pages - free) * size
}

/**
 * Returns free pages to the file system and checkpoints so the file shrinks. Returns the bytes of
 * free pages it could not give back: a database not created by witness (a `request_log` made by
 * hand, a restore from a `.dump`) has auto_vacuum off, and only a VACUUM can shrink it.
 */
export async function giveSpaceBack(db: Database, busyBudgetMs = 10_000): Promise<number> {
  const mode = (db.query('PRAGMA auto_vacuum').get() as { auto_vacuum: number }).auto_vacuum
  const freePages = () => (db.query('PRAGMA freelist_count').get() as { freelist_count: number }).freelist_count
  let kept = 0
  if (mode !== 2) kept = freePages() * (db.query('PRAGMA page_size').get() as { page_size: number }).page_size
  else {
    // Bounded: each step frees up to PAGES_PER_STEP pages; stop if a step frees nothing.
    for (let before = freePages(); before > 0; ) {
      await retryWhileBusy('archive: incremental vacuum', () => db.exec(`PRAGMA incremental_vacuum(${PAGES_PER_STEP})`), busyBudgetMs)
      const after = freePages()
      if (after >= before) break
      before = after
      await Bun.sleep(0)
    }
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      const result = db.query('PRAGMA wal_checkpoint(TRUNCATE)').get() as { busy: number } | null
      if (!result || result.busy === 0) return kept
    } catch (error) {
      if (!isBusy(error)) throw error
    }
    await Bun.sleep(25)
  }
  return kept
}

/** What to do about free pages the live file cannot give back (auto_vacuum off: not created by witness). */
export function spaceKept(bytes: number, livePath: string): string {
  return `the live file keeps ${megabytes(bytes)} of free space it cannot give back: it was not created by witness, so auto_vacuum is off. With the server stopped, run: sqlite3 '${livePath.replaceAll("'", "'\\''")}' 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM;'`
}
