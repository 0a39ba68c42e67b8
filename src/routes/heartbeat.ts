/**
 * GET /heartbeat: the router's own health. 200 with its vital signs while
 * it is healthy; 503 with the reasons (database not writable, calls stuck
 * past their timeouts, every chain failing) when it is not, and whether a
 * rollback of the config may cure them (not a database's trouble). Each call is a
 * health check that counts towards promoting the config to last known good.
 */
import type { Context } from 'hono'
import type { DeadmanSwitch } from '../deadman/switch.ts'

export interface HeartbeatDeps {
  deadman: DeadmanSwitch
}

export function heartbeatRoute(deps: HeartbeatDeps) {
  return async (c: Context) => {
    const report = await deps.deadman.heartbeat()
    const vitals = {
      config_hash: report.configHash,
      last_known_good: report.lastKnownGood,
      uptime_s: report.uptimeS,
      in_flight: report.inFlight,
      pending_rows: report.pendingRows,
      last_success_at: report.lastSuccessAt,
    }
    if (report.reasons.length) return c.json({ status: 'unhealthy', reasons: report.reasons, rollback_may_help: report.rollbackMayHelp, ...vitals }, 503)
    return c.json({ status: 'ok', ...vitals })
  }
}
