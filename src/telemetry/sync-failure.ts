/**
 * An fsync that failed: SQLite's SQLITE_IOERR_FSYNC and SQLITE_IOERR_DIR_FSYNC.
 * After one, what the kernel failed to write is marked clean and never
 * written again (Linux reports a writeback error once), so a later fsync's
 * success proves nothing: witness stops rather than acknowledge rows that a
 * power loss would erase (store.ts, `onDurabilityLost`).
 */
export function isSyncFailure(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code
  return code === 'SQLITE_IOERR_FSYNC' || code === 'SQLITE_IOERR_DIR_FSYNC'
}
