/**
 * Signing a checkpoint of the live database's chain head (every
 * `proof.checkpoint_every` inside `serve`, and at every sync). Nothing is
 * signed when no row was chained since the last checkpoint.
 */
import type { Database } from 'bun:sqlite'
import { isoTime } from '../clock.ts'
import { retryWhileBusy } from '../jobs/job-db.ts'
import { type Checkpoint, INSERT_CHECKPOINT_SQL, chainHead, latestCheckpoint, signCheckpoint } from './checkpoint.ts'
import type { SigningKey } from './keys.ts'

/** Signs and stores a checkpoint on `live` (a job connection, opened with strict bindings); returns it, or null when the head has not moved. */
export async function checkpointNow(live: Database, key: SigningKey, machine: string, now: () => number): Promise<Checkpoint | null> {
  const head = chainHead(live)
  if (!head) return null
  const last = latestCheckpoint(live)
  if (last && last.seq >= head.seq && last.key_id === key.keyId) return null
  const signed = await signCheckpoint(key, { machine, seq: head.seq, head_hash: head.hash, time: isoTime(now()) })
  const id = await retryWhileBusy('proof: storing a checkpoint', () =>
    Number(
      live
        .query(INSERT_CHECKPOINT_SQL)
        .run({ machine: signed.machine, seq: signed.seq, head_hash: signed.head_hash, time: signed.time, key_id: signed.key_id, signature: signed.signature })
        .lastInsertRowid,
    ),
  )
  return { id, ...signed }
}
