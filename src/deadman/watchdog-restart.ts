/**
 * The watchdog's restart after it restored the snapshot: runs
 * `deadman.restart_command` (or, without one, asks a router that answers to
 * reload), then checks that it took: a rollback is in effect only once
 * GET /heartbeat reports the snapshot's hash. A restart command that exits 0
 * without restarting anything, or a reload refused (the config under trial
 * rotated the watchdog's token), leaves the router on the config it ran.
 */
import type { Config } from '../config.ts'
import { type CommandResult, apiKeyNames, describeResult, runCommand, succeeded } from './command.ts'
import { shortHash } from './last-good.ts'
import { type HeartbeatCheck, type RouterClient, request, waitForConfig } from './router-client.ts'

export interface Restart {
  /** The restart (or reload) reported success, and applied every setting the snapshot has. */
  ok: boolean
  summary: string
  command: string | null
  result: CommandResult | null
}

export interface RestartOptions {
  configPath: string
  env: Record<string, string | undefined>
  /** How long the router gets to run the snapshot after the restart. */
  waitMs: number
  /** Where a restarted router listens (it may have moved with the snapshot); null when the address is given (--url). */
  relocate: (() => string) | null
}

export interface Applied {
  restart: Restart
  /** The router as found after the restart (where it answered). */
  router: RouterClient
  /** Whether the router answered at all after the restart. */
  answered: boolean
  /** Why the rollback is not in effect (the router runs another config, or does not answer); null when it runs the snapshot. */
  notInEffect: string | null
}

/** Restarts (or reloads) the router onto the restored snapshot and checks that it runs it. */
export async function restartOntoSnapshot(o: RestartOptions, router: RouterClient, check: HeartbeatCheck, restored: Config, oldHash: string | null, newHash: string): Promise<Applied> {
  const restart = await restartRouter(o, router, check, restored, oldHash, newHash)
  // A restart_command may start the router on the snapshot's listen address; a reload does not move it.
  const candidates = (): RouterClient[] => {
    if (!restart.command || !o.relocate) return [router]
    const url = o.relocate()
    return url === router.url ? [router] : [router, { ...router, url }]
  }
  const found = await waitForConfig(candidates, newHash, o.waitMs)
  const notInEffect =
    found.check.configHash === newHash
      ? null
      : found.check.answered
        ? `the router ${found.check.configHash === oldHash ? 'still runs' : 'runs'} config ${shortHash(found.check.configHash)}, not the snapshot`
        : `the router did not answer within ${o.waitMs / 1000} s, so it is not known to run the snapshot`
  return { restart, router: found.router, answered: found.check.answered, notInEffect }
}

/** Runs `deadman.restart_command`; without one, asks a router that answers to reload. */
async function restartRouter(o: RestartOptions, router: RouterClient, check: HeartbeatCheck, restored: Config, oldHash: string | null, newHash: string): Promise<Restart> {
  const command = restored.deadman.restart_command
  if (command) {
    const timeoutMs = restored.deadman.command_timeout_s * 1000
    const result = await runCommand(command, {
      env: o.env,
      vars: { WITNESS_CONFIG: o.configPath, WITNESS_OLD_CONFIG_HASH: oldHash ?? '', WITNESS_NEW_CONFIG_HASH: newHash },
      timeoutMs,
      secretNames: apiKeyNames(restored),
    })
    const output = result.output ? ` (${result.output.split('\n')[0]})` : ''
    return { ok: succeeded(result), summary: `restart_command ${describeResult(result, timeoutMs)}${succeeded(result) ? '' : output}`, command: 'restart_command', result }
  }
  if (check.answered) {
    const res = await request(router, '/admin/reload', { method: 'POST' })
    if (res?.status !== 200) {
      await res?.body?.cancel()
      return { ok: false, summary: `no restart_command, and POST /admin/reload failed (${res ? `HTTP ${res.status}` : 'no answer'})`, command: null, result: null }
    }
    // Settings a reload cannot apply (the database's, listen) stay as the router started with them.
    const body = (await res.json().catch(() => null)) as { restart_required?: unknown } | null
    const pending = Array.isArray(body?.restart_required) ? body.restart_required.map(String) : []
    if (pending.length) {
      return {
        ok: false,
        summary: `no restart_command; reloaded through POST /admin/reload, but ${pending.join(', ')} of the snapshot take effect only at a restart (the router keeps the ones it started with)`,
        command: null,
        result: null,
      }
    }
    return { ok: true, summary: 'no restart_command; reloaded through POST /admin/reload', command: null, result: null }
  }
  return { ok: false, summary: 'no deadman.restart_command configured: the router was not restarted', command: null, result: null }
}
