/**
 * SQL for the deadman switch's side tables (migration 2): the facts of each
 * rollback row (`deadman_rollback`, keyed by request_log id) and each
 * agent's last heartbeat (`deadman_agent`). Writes are `SideWrite`s that the
 * store commits (a rollback's facts in the same commit as its row); reads
 * use the store's read-only connection.
 */
import type { Database } from 'bun:sqlite'
import { RARE_STATUSES, statusIn } from './schema.ts'
import type { SideWrite } from './store.ts'

/** Who wrote a rollback row. */
export type RecordedBy = 'router' | 'endpoint' | 'watchdog'

/** What is known about a rollback besides its request_log row. */
export interface RollbackFacts {
  agent: string
  oldConfigHash: string | null
  newConfigHash: string | null
  reason: string
  /** Which command ran (`restart_command`, `rollback_command`), null when none did. */
  command: string | null
  exitStatus: number | null
  timedOut: boolean
  /** The first lines of the command's output. */
  output: string | null
  recordedBy: RecordedBy
  /** The reporter's id for this rollback (a watchdog's): a second report of it is refused (unique). */
  rollbackId?: string | null
}

/** The persisted view of one agent's heartbeats. */
export interface AgentRecord {
  agent: string
  lastBeatAt: string | null
  configHash: string | null
  configHashSince: string | null
  previousConfigHash: string | null
  /** rolling_back: its rollback_command was started and its row is not written yet (the router stopped in between, if read at start). */
  state: 'ok' | 'late' | 'rolling_back' | 'rolled_back'
  silenceHandled: boolean
  lastRollbackLogId: number | null
}

export function rollbackFactsWrite(facts: RollbackFacts): SideWrite {
  return {
    sql: `INSERT INTO deadman_rollback (log_id, agent, old_config_hash, new_config_hash, reason, command, exit_status, timed_out, output, recorded_by, rollback_id)
          VALUES ($log_id, $agent, $old, $new, $reason, $command, $exit, $timedOut, $output, $by, $rollbackId)`,
    params: {
      agent: facts.agent,
      old: facts.oldConfigHash,
      new: facts.newConfigHash,
      reason: facts.reason,
      command: facts.command,
      exit: facts.exitStatus,
      timedOut: facts.timedOut ? 1 : 0,
      output: facts.output,
      by: facts.recordedBy,
      rollbackId: facts.rollbackId ?? null,
    },
  }
}

export function agentWrite(record: AgentRecord, at: string): SideWrite {
  return {
    sql: `INSERT INTO deadman_agent (agent, last_beat_at, config_hash, config_hash_since, previous_config_hash, state, silence_handled, last_rollback_log_id, updated_at)
          VALUES ($agent, $lastBeatAt, $hash, $since, $previous, $state, $handled, $rollback, $at)
          ON CONFLICT(agent) DO UPDATE SET last_beat_at = excluded.last_beat_at, config_hash = excluded.config_hash,
            config_hash_since = excluded.config_hash_since, previous_config_hash = excluded.previous_config_hash,
            state = excluded.state, silence_handled = excluded.silence_handled,
            last_rollback_log_id = excluded.last_rollback_log_id, updated_at = excluded.updated_at`,
    params: {
      agent: record.agent,
      lastBeatAt: record.lastBeatAt,
      hash: record.configHash,
      since: record.configHashSince,
      previous: record.previousConfigHash,
      state: record.state,
      handled: record.silenceHandled ? 1 : 0,
      rollback: record.lastRollbackLogId,
      at,
    },
  }
}

/**
 * Forgets agents (the router's own pick: unlisted, not rolling back, silent long enough), as found at
 * commit: one that beat since it was picked (a beat after `before`) stays.
 */
/** Deletes each agent's record if its last beat is still the one given (one that beat since stays). */
export function forgetAgentsWrite(agents: readonly { agent: string; lastBeatAt: string }[]): SideWrite {
  return {
    sql: `DELETE FROM deadman_agent WHERE state != 'rolling_back' AND (agent, last_beat_at) IN
            (SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each($agents))`,
    params: { agents: JSON.stringify(agents.map((a) => [a.agent, a.lastBeatAt])) },
  }
}

interface AgentRow {
  agent: string
  last_beat_at: string | null
  config_hash: string | null
  config_hash_since: string | null
  previous_config_hash: string | null
  state: AgentRecord['state']
  silence_handled: number
  last_rollback_log_id: number | null
}

/** Every agent that has heartbeated (or been watched), as last committed. */
export function readAgents(reader: Database): AgentRecord[] {
  const rows = reader.query('SELECT * FROM deadman_agent ORDER BY agent').all() as AgentRow[]
  return rows.map((r) => ({
    agent: r.agent,
    lastBeatAt: r.last_beat_at,
    configHash: r.config_hash,
    configHashSince: r.config_hash_since,
    previousConfigHash: r.previous_config_hash,
    state: r.state,
    silenceHandled: r.silence_handled === 1,
    lastRollbackLogId: r.last_rollback_log_id,
  }))
}

/** A rollback row with its facts, as GET /deadman shows it. */
export interface RollbackView {
  log_id: number
  timestamp: string
  error_message: string | null
  old_config_hash: string | null
  new_config_hash: string | null
  command: string | null
  exit_status: number | null
  timed_out: boolean
  recorded_by: RecordedBy
}

/**
 * The latest rollback of the router `router` (its deadman.name) away from the config with this hash
 * (its time and why), or null. An agent's rollback rows hold the hash the agent reported, and are
 * not looked at.
 */
export function rollbackAwayFrom(reader: Database, router: string, configHash: string): { timestamp: string; reason: string } | null {
  return reader
    .query(
      `SELECT l.timestamp, r.reason FROM deadman_rollback r JOIN request_log l ON l.id = r.log_id
       WHERE r.old_config_hash = $hash AND r.agent = $router ORDER BY r.log_id DESC LIMIT 1`,
    )
    .get({ hash: configHash, router }) as { timestamp: string; reason: string } | null
}

/** The row that recorded the rollback with this reporter's id, and who wrote it; null when none has. */
export function rollbackById(reader: Database, rollbackId: string): { log_id: number; recorded_by: RecordedBy } | null {
  return reader.query('SELECT log_id, recorded_by FROM deadman_rollback WHERE rollback_id = $id').get({ id: rollbackId }) as { log_id: number; recorded_by: RecordedBy } | null
}

/** Rollback rows with their facts, read through the partial index on the rare statuses; `filter` narrows them. */
const ROLLBACKS = (filter?: string) => `SELECT l.agent_name AS agent, l.id AS log_id, l.timestamp, l.error_message, r.old_config_hash, r.new_config_hash, r.command, r.exit_status, r.timed_out, r.recorded_by
  FROM request_log l JOIN deadman_rollback r ON r.log_id = l.id
  WHERE ${filter ? `${filter} AND ` : ''}l.status = 'rollback' AND ${statusIn('l.status', RARE_STATUSES)}`

type RollbackRow = Omit<RollbackView, 'timed_out'> & { agent: string; timed_out: number }

function rollbackView({ agent: _agent, ...row }: RollbackRow): RollbackView {
  return { ...row, timed_out: row.timed_out === 1 }
}

/**
 * The newest rollback row of each agent that has one (in the live file), in one read: a view of
 * every agent (GET /deadman, the dashboard) made one query per agent, and with tens of thousands of
 * names heard (agents named per run) held the event loop for seconds.
 */
export function lastRollbacks(reader: Database): Map<string, RollbackView> {
  const newest = new Map<string, RollbackView>()
  for (const row of reader.query(`${ROLLBACKS()} ORDER BY l.timestamp, l.id`).all() as RollbackRow[]) newest.set(row.agent, rollbackView(row))
  return newest
}

/**
 * The newest rollback row of an agent, whoever recorded it: the router's
 * own switch, a report to POST /deadman/rollback, or the watchdog's direct
 * write. Read through the partial index on the rare statuses.
 */
export function lastRollbackOf(reader: Database, agent: string): RollbackView | null {
  const row = reader.query(`${ROLLBACKS('l.agent_name = $agent')} ORDER BY l.timestamp DESC, l.id DESC LIMIT 1`).get({ agent }) as RollbackRow | null
  return row ? rollbackView(row) : null
}
