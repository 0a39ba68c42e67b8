/**
 * An fsync that failed: SQLite's SQLITE_IOERR_FSYNC and SQLITE_IOERR_DIR_FSYNC.
 * After one, what the kernel failed to write is marked clean and never
 * written again (Linux reports a writeback error once), so a later fsync's
 * success proves nothing: witness stops rather than acknowledge rows that a
 * power loss would erase (store.ts, `onDurabilityLost`).
 */
export function isSyncFailure(error: unknown): boolean {
  // Through the causes a job's error wraps it in.
  for (let e = error, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code
    if (code === 'SQLITE_IOERR_FSYNC' || code === 'SQLITE_IOERR_DIR_FSYNC') return true
  }
  return false
}
