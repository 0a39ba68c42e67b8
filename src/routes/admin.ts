/**
 * Operator routes. POST /admin/reload: re-read the config file and swap it
 * in if it validates (200 with the new hash, and what the config now running
 * will not do as written: `warnings`); an invalid file is refused
 * with 422 `config_invalid` listing every problem, and the running config
 * stays.
 */
import type { Context } from 'hono'
import type { DeadmanSwitch } from '../deadman/switch.ts'

export interface AdminDeps {
  deadman: DeadmanSwitch
}

export function reloadRoute(deps: AdminDeps) {
  return (c: Context) => {
    const result = deps.deadman.reload()
    return c.json({
      status: result.status,
      config_hash: result.configHash,
      previous_config_hash: result.previousConfigHash,
      restart_required: result.restartRequired,
      warnings: result.warnings,
    })
  }
}
