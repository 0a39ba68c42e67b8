/**
 * A rollback as a row: status `rollback`, provider `deadman`, in
 * request_log, with its facts (hashes, command, exit status, output) in
 * `deadman_rollback`, committed together. Used by the router for agents,
 * by POST /deadman/rollback and by the watchdog's direct write.
 */
import type { Clock } from '../clock.ts'
import { isoTime } from '../clock.ts'
import { redact } from '../redaction.ts'
import { type RecordedBy, type RollbackFacts, rollbackById, rollbackFactsWrite } from '../telemetry/deadman-store.ts'
import type { Store } from '../telemetry/store.ts'
import { shortHash } from './last-good.ts'

export interface RollbackEntry {
  /** agent_name: the agent, or the router's own name. */
  agent: string
  /** model: the config hash restored (or the agent's last reported hash, or `unknown`). */
  model: string
  /** endpoint: the config path, `heartbeat`, ... */
  endpoint: string
  errorMessage: string
  latencyMs?: number | null
  facts: Omit<RollbackFacts, 'agent'>
}

/** Commits the row and its facts; resolves with the row's id. */
export async function recordRollback(store: Store, clock: Clock, entry: RollbackEntry): Promise<number> {
  const { id } = await store.insert(
    {
      timestamp: isoTime(clock.now()),
      agentName: entry.agent,
      provider: 'deadman',
      model: entry.model,
      endpoint: entry.endpoint,
      status: 'rollback',
      errorMessage: redact(entry.errorMessage),
      latencyMs: entry.latencyMs ?? null,
    },
    null,
    rollbackFactsWrite({ ...entry.facts, agent: entry.agent, reason: redact(entry.facts.reason), output: entry.facts.output === null ? null : redact(entry.facts.output) }),
  )
  return id
}

/**
 * Records a rollback once per `facts.rollbackId`: a reporter may try twice (POST /deadman/rollback,
 * then straight into the file) or leave it to its next run. `earlier`: the row already recording it
 * (looked up before writing, and again when the unique id refused the write, the same rollback
 * written meanwhile); nothing is written then. A rollback without an id is written every time.
 */
export async function recordRollbackOnce(
  store: Store,
  clock: Clock,
  entry: RollbackEntry,
): Promise<{ logId: number; earlier: null } | { logId: number; earlier: RecordedBy }> {
  const id = entry.facts.rollbackId ?? null
  const recorded = () => (id === null ? null : rollbackById(store.reader, id))
  const before = recorded()
  if (before) return { logId: before.log_id, earlier: before.recorded_by }
  try {
    return { logId: await recordRollback(store, clock, entry), earlier: null }
  } catch (error) {
    const raced = recorded()
    if (raced) return { logId: raced.log_id, earlier: raced.recorded_by }
    throw error
  }
}

/** `rolled back config 3f2a1b2c9d04… → 9c1d0e4f7781… after 3 failed health checks (connection refused)` */
export function configRollbackMessage(oldHash: string | null, newHash: string | null, reason: string): string {
  const glue = /^after\b/.test(reason) ? ' ' : ': '
  return `rolled back config ${shortHash(oldHash)} → ${shortHash(newHash)}${glue}${reason}`
}
