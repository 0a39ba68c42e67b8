/**
 * The side tables whose rows belong to one request_log row (keyed by its
 * id) and so travel with it into the monthly archive. To archive a new side
 * table, add it here: the mover copies, verifies and deletes every table in
 * this list the same way, and creates it in each archive from the live
 * database's own definition.
 */
export interface SideTable {
  table: string
  /** The column holding request_log.id. */
  key: string
}

export const SIDE_TABLES: readonly SideTable[] = [
  { table: 'request_log_meta', key: 'log_id' },
  // The proof chain's entries move with their rows, so archives stay verifiable.
  { table: 'log_chain', key: 'log_id' },
  // What each rollback row's command did (hashes, exit status, output).
  { table: 'deadman_rollback', key: 'log_id' },
]
