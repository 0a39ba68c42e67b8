/**
 * How the watchdog records a rollback: through POST /deadman/rollback when
 * the router answers (it writes the row and alerts), else straight into the
 * SQLite file (a one-shot write; pending rows are left for the router to
 * finish at its start), once per rollback id whoever writes it.
 */
import type { Clock } from '../clock.ts'
import type { Config } from '../config.ts'
import { redact } from '../redaction.ts'
import { openStoreFor } from '../telemetry/open-for-config.ts'
import { makeAlert } from './alert.ts'
import { configRollbackMessage, recordRollbackOnce } from './rollback-row.ts'
import { type RouterClient, request, waitForRouter } from './router-client.ts'
import type { Restart } from './watchdog-restart.ts'

export interface RecordOptions {
  configPath: string
  env: Record<string, string | undefined>
  log: (line: string) => void
  /** The database the router writes, for a row written straight into it (see databaseOf). */
  database: (config: Config) => string
}

export interface RollbackRecord {
  id: string
  agent: string
  oldHash: string | null
  newHash: string
  reason: string
  restart: Restart
}

/** How the row was recorded: `byRouter` when the router wrote it (and alerted on it). */
export type Recorded = { ok: true; logId: number; via: string; byRouter: boolean } | { ok: false; error: string; byRouter: false }

/**
 * Records a rollback, says how, and alerts on it unless the router did (the endpoint alerts for rows
 * it writes). `waitMs`: how long the router gets to answer before the row is written directly.
 * `alertFailure` false: a failure to record it is logged only (it was alerted on before).
 */
export async function recordAndAlert(o: RecordOptions, router: RouterClient, waitMs: number, config: Config, clock: Clock, entry: RollbackRecord, what: string, alertFailure = true): Promise<Recorded> {
  const recorded = await recordEntry(o, router, waitMs, config, clock, entry)
  o.log(recorded.ok ? `${what} recorded (log id ${recorded.logId}, ${recorded.via})` : `${what.toUpperCase()} NOT RECORDED: ${recorded.error}`)
  if (!recorded.byRouter && (recorded.ok || alertFailure)) {
    const message = configRollbackMessage(entry.oldHash, entry.newHash, entry.reason)
    await makeAlert({ config: () => config, env: o.env, log: o.log })(recorded.ok ? message : `${message}; NOT RECORDED: ${recorded.error}`)
  }
  return recorded
}

async function recordEntry(o: RecordOptions, router: RouterClient, waitMs: number, restored: Config, clock: Clock, entry: RollbackRecord): Promise<Recorded> {
  const facts = {
    command: entry.restart.command,
    exitStatus: entry.restart.result?.exitStatus ?? null,
    timedOut: entry.restart.result?.timedOut ?? false,
    output: entry.restart.result?.output ?? null,
  }
  if (await waitForRouter(router, waitMs)) {
    const res = await request(router, '/deadman/rollback', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        agent: entry.agent,
        old_config_hash: entry.oldHash,
        new_config_hash: entry.newHash,
        reason: entry.reason,
        endpoint: o.configPath,
        command: facts.command,
        exit_status: facts.exitStatus,
        timed_out: facts.timedOut,
        output: facts.output,
        rollback_id: entry.id,
      }),
    })
    if (res?.status === 201 || res?.status === 200) {
      const body = (await res.json().catch(() => ({}))) as { log_id?: number; already_recorded?: boolean }
      return { ok: true, logId: body.log_id ?? 0, via: body.already_recorded ? 'already recorded, as POST /deadman/rollback says' : 'through POST /deadman/rollback', byRouter: true }
    }
    o.log(`POST /deadman/rollback ${res ? `answered HTTP ${res.status}` : 'did not answer'}; writing the row directly`)
  }
  try {
    // A one-shot writer. Never recoverPending here: pending rows may belong to a live router.
    const databasePath = o.database(restored)
    // Under the config's durability and size rules, as the router writes (its writer, fsync, max size).
    const store = openStoreFor(restored, databasePath)
    try {
      // Recorded already, maybe (a POST that timed out here but committed, a run killed after writing it).
      const { logId, earlier } = await recordRollbackOnce(store, clock, {
          agent: entry.agent,
          model: entry.newHash,
          endpoint: o.configPath,
          errorMessage: configRollbackMessage(entry.oldHash, entry.newHash, entry.reason),
        facts: { ...facts, oldConfigHash: entry.oldHash, newConfigHash: entry.newHash, reason: entry.reason, recordedBy: 'watchdog', rollbackId: entry.id },
      })
      if (earlier) return { ok: true, logId, via: `already recorded (by the ${earlier})`, byRouter: earlier === 'endpoint' }
      return { ok: true, logId, via: `straight into ${databasePath}`, byRouter: false }
    } finally {
      store.close()
    }
  } catch (error) {
    return { ok: false, error: redact((error as Error).message), byRouter: false }
  }
}
