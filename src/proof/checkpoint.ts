/**
 * Signed checkpoints: every few minutes and at every sync, the machine signs
 * `{ machine, sequence, head, time }` (the chain's head) with its Ed25519
 * key. Published elsewhere (the git export), they make rewriting history
 * detectable: a rewritten chain no longer reaches a signed head.
 */
import type { Database } from 'bun:sqlite'
import { chainHead } from './append.ts'
import { type SigningKey, importPublicKey } from './keys.ts'

export { chainHead }

export interface Checkpoint {
  id: number
  machine: string
  seq: number
  head_hash: string
  time: string
  key_id: string
  signature: string
}

/** The exact bytes signed: keys in this order, no spaces. */
export function checkpointPayload(c: Pick<Checkpoint, 'machine' | 'seq' | 'head_hash' | 'time'>): string {
  return JSON.stringify({ machine: c.machine, sequence: c.seq, head: c.head_hash, time: c.time })
}

function b64url(bytes: ArrayBuffer): string {
  return Buffer.from(bytes).toString('base64url')
}

export async function signCheckpoint(key: SigningKey, fields: Pick<Checkpoint, 'machine' | 'seq' | 'head_hash' | 'time'>): Promise<Omit<Checkpoint, 'id'>> {
  const signature = await crypto.subtle.sign({ name: 'Ed25519' }, key.privateKey, new TextEncoder().encode(checkpointPayload(fields)))
  return { ...fields, key_id: key.keyId, signature: b64url(signature) }
}

export async function checkpointSignatureValid(c: Omit<Checkpoint, 'id'>, publicJwk: JsonWebKey): Promise<boolean> {
  try {
    const key = await importPublicKey(publicJwk)
    return await crypto.subtle.verify({ name: 'Ed25519' }, key, Buffer.from(c.signature, 'base64url'), new TextEncoder().encode(checkpointPayload(c)))
  } catch {
    return false
  }
}

export const INSERT_CHECKPOINT_SQL =
  'INSERT INTO checkpoints (machine, seq, head_hash, time, key_id, signature) VALUES ($machine, $seq, $head_hash, $time, $key_id, $signature)'

export function latestCheckpoint(db: Database): Checkpoint | null {
  return db.query('SELECT * FROM checkpoints ORDER BY id DESC LIMIT 1').get() as Checkpoint | null
}

/** The first checkpoint whose signed head is at or after `seq` (it covers that entry). */
export function coveringCheckpoint(db: Database, seq: number): Checkpoint | null {
  return db.query('SELECT * FROM checkpoints WHERE seq >= ? ORDER BY seq, id LIMIT 1').get(seq) as Checkpoint | null
}
