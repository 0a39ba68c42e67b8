/**
 * Which rows the export has covered, kept in the live database's
 * witness_state (key `sync.state`):
 *
 * - `watermark`: every row with an id up to here has been looked at;
 * - `pending`: the ids up to the watermark that were still `pending` then,
 *   and so still wait to be exported once they are finished;
 * - `repo`: the id of the local clone the export went to (a new clone
 *   starts the export over; lines already in the remote are not written
 *   twice);
 * - `machine`: the name the rows were exported under (a renamed machine
 *   would start a second folder partway through its chain: sync stops);
 * - `pushed`: the watermark and pending ids as of the last run that left
 *   the remote holding everything the clone had committed (null: none yet).
 *   Committed is not safe: until the push, those lines live only in
 *   `work_dir`. The archive job deletes an archive past
 *   `archive_keep_days` only when every row in it was pushed.
 *
 * A row is exported exactly when it is final, so "exported" is: id <=
 * watermark and id not in pending. Ids only grow (AUTOINCREMENT), so a row
 * written after a run always lands above its watermark.
 */
import type { Database } from 'bun:sqlite'
import * as v from 'valibot'
import { readState, writeState } from '../jobs/job-db.ts'

export const SYNC_STATE_KEY = 'sync.state'
/** witness_state key: `<repo id> <last chain entry exported> <last checkpoint id exported>` (export-proof.ts). */
export const CHAIN_EXPORT_KEY = 'sync.chain_seq'

/**
 * How far this machine's exports reached, by any clone (0: nothing): chain entries up to `entries`
 * and checkpoints up to `checkpoints` were written out. What verify holds against the database: the
 * export cannot have covered what never existed.
 */
export function exportedThrough(db: Database, schema = 'main'): { entries: number; checkpoints: number } {
  const { seq, checkpoint } = readChainExport(db, schema)
  return { entries: seq, checkpoints: checkpoint }
}

/** What CHAIN_EXPORT_KEY says: the clone the proof was last exported to, and how far (0: nothing). */
export function readChainExport(db: Database, schema = 'main'): { repo: string; seq: number; checkpoint: number } {
  const [repo = '', seq, checkpoint] = (readState(db, CHAIN_EXPORT_KEY, schema) ?? '').split(' ')
  return { repo, seq: Number(seq) || 0, checkpoint: Number(checkpoint) || 0 }
}

const Covered = {
  watermark: v.pipe(v.number(), v.integer(), v.minValue(0)),
  pending: v.array(v.pipe(v.number(), v.integer())),
}

export const SyncStateSchema = v.object({
  ...Covered,
  repo: v.nullable(v.string()),
  // Absent in states saved before it was kept: known from the next run on.
  machine: v.optional(v.nullable(v.string()), null),
  // Absent in states saved before it was kept: nothing is known to be pushed until the next push.
  pushed: v.optional(v.nullable(v.object(Covered)), null),
})
export type SyncState = v.InferOutput<typeof SyncStateSchema>
/** What a state covers: rows up to `watermark`, but for the `pending` ones. */
export type Covered = Pick<SyncState, 'watermark' | 'pending'>

export const NO_SYNC_STATE: SyncState = { watermark: 0, pending: [], repo: null, machine: null, pushed: null }

export function readSyncState(db: Database): SyncState {
  const text = readState(db, SYNC_STATE_KEY)
  if (!text) return NO_SYNC_STATE
  try {
    const parsed = v.safeParse(SyncStateSchema, JSON.parse(text))
    // An unreadable state starts the export over; lines already written are not written twice.
    return parsed.success ? parsed.output : NO_SYNC_STATE
  } catch {
    return NO_SYNC_STATE
  }
}

export function writeSyncState(db: Database, state: SyncState, at: string): void {
  writeState(db, SYNC_STATE_KEY, JSON.stringify(state), at)
}
