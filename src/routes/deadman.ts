/**
 * The deadman switch's routes for agents and watchdogs:
 * POST /heartbeat (an agent is alive, and runs this config),
 * GET /deadman (each agent's last beat, silence, state, last rollback),
 * POST /deadman/rollback (an external watchdog records a rollback it did).
 */
import type { Context } from 'hono'
import * as v from 'valibot'
import type { Clock } from '../clock.ts'
import type { Config } from '../config.ts'
import { configRollbackMessage, recordRollbackOnce } from '../deadman/rollback-row.ts'
import type { DeadmanSwitch } from '../deadman/switch.ts'
import type { Store } from '../telemetry/store.ts'
import { AgentName, readJsonObject, resolveAgent, validate } from './request-body.ts'

export interface DeadmanRouteDeps {
  deadman: DeadmanSwitch
  store: Store
  clock: Clock
  config: () => Config
}

const ConfigHash = v.pipe(v.string(), v.regex(/^[\x21-\x7e]{1,128}$/, 'a config hash is 1-128 printable characters without spaces'))

export const AgentBeatSchema = v.looseObject({
  agent: v.optional(AgentName),
  config_hash: v.optional(ConfigHash),
})

export const RollbackReportSchema = v.looseObject({
  agent: AgentName,
  old_config_hash: v.nullable(ConfigHash),
  new_config_hash: v.nullable(ConfigHash),
  reason: v.pipe(v.string(), v.minLength(1), v.maxLength(1000)),
  /** What was rolled back: a config path (the default is `watchdog`). */
  endpoint: v.optional(v.pipe(v.string(), v.minLength(1), v.maxLength(1024))),
  /** The command the watchdog ran (`restart_command`) and how it ended. */
  command: v.optional(v.nullable(v.pipe(v.string(), v.maxLength(64)))),
  exit_status: v.optional(v.nullable(v.pipe(v.number(), v.integer()))),
  timed_out: v.optional(v.boolean()),
  output: v.optional(v.nullable(v.pipe(v.string(), v.maxLength(8000)))),
  /** The reporter's id for this rollback: reported again (a retry, a direct write that raced), it stays one row. */
  rollback_id: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9._-]{1,64}$/, 'a rollback id is 1-64 letters, digits, ".", "_" or "-"'))),
})

/** POST /heartbeat `{ "agent", "config_hash" }` → 200 with the agent's state. */
export function agentBeatRoute(deps: DeadmanRouteDeps) {
  return async (c: Context) => {
    const input = validate(AgentBeatSchema, await readJsonObject(c), 'heartbeat')
    const agent = resolveAgent(
      c,
      [
        { from: 'the "agent" field', value: input.agent },
        { from: 'the X-Agent-Name header', value: c.req.header('x-agent-name') },
      ],
      'set "agent" in the body or the X-Agent-Name header',
      true,
    )
    const view = await deps.deadman.agents.beat(agent, input.config_hash)
    return c.json({ status: 'ok', ...view })
  }
}

/** GET /deadman → the router's own config state and every agent. */
export function deadmanStatusRoute(deps: DeadmanRouteDeps) {
  return (c: Context) => {
    const config = deps.config()
    return c.json({
      router: {
        name: config.deadman.name,
        config_path: config.path,
        config_hash: config.hash,
        last_known_good: deps.deadman.promoter.lastKnownGood(),
      },
      agents: deps.deadman.agents.list(),
    })
  }
}

/**
 * POST /deadman/rollback → 201 `{ "log_id" }`, the rollback row written; 200 `{ "log_id",
 * "already_recorded": true }` when a row with its `rollback_id` exists (nothing written or alerted).
 */
export function rollbackReportRoute(deps: DeadmanRouteDeps) {
  return async (c: Context) => {
    const input = validate(RollbackReportSchema, await readJsonObject(c), 'rollback report')
    const message = configRollbackMessage(input.old_config_hash, input.new_config_hash, input.reason)
    const { logId, earlier } = await recordRollbackOnce(deps.store, deps.clock, {
      agent: input.agent,
      model: input.new_config_hash ?? 'unknown',
      endpoint: input.endpoint ?? 'watchdog',
      errorMessage: message,
      facts: {
        oldConfigHash: input.old_config_hash,
        newConfigHash: input.new_config_hash,
        reason: input.reason,
        command: input.command ?? null,
        exitStatus: input.exit_status ?? null,
        timedOut: input.timed_out ?? false,
        output: input.output ?? null,
        recordedBy: 'endpoint',
        rollbackId: input.rollback_id ?? null,
      },
    })
    if (earlier) return c.json({ log_id: logId, already_recorded: true }, 200)
    void deps.deadman.alert(`${input.agent}: ${message}`)
    return c.json({ log_id: logId }, 201)
  }
}
