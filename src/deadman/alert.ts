/**
 * Alerts: every rollback, failed rollback and silent agent is logged, and
 * `deadman.alert_command` (if set) is run with the one-line summary as $1
 * and in WITNESS_ALERT, so a human hears of it. A failing alert command is
 * logged, never fatal.
 */
import type { Config } from '../config.ts'
import { type CommandGroups, apiKeyNames, describeResult, runCommand, succeeded } from './command.ts'

export type Alert = (summary: string) => Promise<void>

export interface AlertDeps {
  config: () => Config
  env: Record<string, string | undefined>
  log: (message: string) => void
  /** Where the command's process group is kept while it runs, to be ended when witness stops. */
  groups?: CommandGroups
}

export function makeAlert(deps: AlertDeps): Alert {
  return async (summary) => {
    deps.log(`ALERT ${summary}`)
    const { alert_command: command, command_timeout_s } = deps.config().deadman
    if (!command) return
    const timeoutMs = command_timeout_s * 1000
    const result = await runCommand(command, { env: deps.env, vars: { WITNESS_ALERT: summary }, args: [summary], timeoutMs, secretNames: apiKeyNames(deps.config()), groups: deps.groups })
    if (!succeeded(result)) deps.log(`alert_command ${describeResult(result, timeoutMs)}: ${result.output}`)
  }
}
