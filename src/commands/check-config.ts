/**
 * `witness check-config [--config PATH] [--against OLD] [--not-rolled-back] [--require-keys]`:
 * validate a config file without starting anything. With `--against`, also
 * say how a server running OLD takes the change: a reload, or a restart when
 * a setting fixed at start-up differs (the socket, the database; see
 * restartRequired), so a deploy tool knows which to do (deploy/ansible does).
 * With `--not-rolled-back`, refuse a config the deadman switch rolled back on
 * this machine (a rollback row in its database names the file's hash as the
 * config it left): a deploy that pushed it again would have it applied,
 * failing, and rolled back again at every run. With `--require-keys`, refuse a
 * config a chain of which calls a provider whose API key variable is not set
 * in this environment (deploy/ansible runs it with the environment file
 * loaded: a key missing from the vault stops the deploy, where it would
 * otherwise deploy a provider whose every step is skipped).
 *
 * What would go wrong with a valid config on this machine is said as a warning,
 * on stderr, without changing the exit code: a provider whose API key variable
 * is not set in this environment (as `serve` logs at start: its steps would be
 * skipped), a signing key file (proof.key_path) that is there but damaged, which
 * `serve` would refuse to start with.
 */
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { type Config, keylessChainProviders, unsetApiKeys } from '../config.ts'
import { loadConfig, configPathFrom } from '../config-file.ts'
import { shortHash } from '../deadman/last-good.ts'
import { restartRequired } from '../deadman/live-config.ts'
import { readServed } from '../deadman/served-config.ts'
import { SigningKeyError } from '../errors.ts'
import { loadSigningKey } from '../proof/keys.ts'
import { rollbackAwayFrom } from '../telemetry/deadman-store.ts'
import { type Command, parsed } from './args.ts'
import { openWitnessDb } from './read-db.ts'

export const checkConfigCommand: Command = {
  summary:
    'check-config [--config PATH] [--against OLD] [--not-rolled-back] [--require-keys]   validate a config file and print its hash (and how a server on OLD applies it; refuse one rolled back here, or whose chains call a provider without its API key)',
  async run(args) {
    const { values } = parsed(() =>
      parseArgs({ args, options: { config: { type: 'string' }, against: { type: 'string' }, 'not-rolled-back': { type: 'boolean' }, 'require-keys': { type: 'boolean' } } }),
    )
    const config = loadConfig(configPathFrom(values.config))
    if (values['not-rolled-back']) {
      const rolled = rolledBack(config)
      if (rolled) {
        console.error(
          `witness: the config ${shortHash(config.hash)} was rolled back on this machine at ${rolled.timestamp} (${rolled.reason}); ` +
            'fix it, or push it again deliberately (without --not-rolled-back; deploy/ansible: witness_config_allow_rolled_back: true)',
        )
        return 1
      }
    }
    if (values['require-keys']) {
      const keyless = keylessChainProviders(config, process.env)
      for (const { name, variable, state, chains } of keyless) {
        console.error(`witness: provider "${name}" (chains: ${chains.join(', ')}) has no API key: its variable ${variable} is ${state} in this environment; set it, or take the provider out of its chains`)
      }
      if (keyless.length) return 1
    }
    console.log(`witness: ${config.path} is valid (sha256 ${config.hash}; chains: ${[...config.chains.keys()].join(', ')})`)
    for (const warning of await warningsFor(config)) console.error(`witness: warning: ${warning}`)
    if (values.against !== undefined) console.log(`witness: to apply: ${howToApply(values.against, config)}`)
    return 0
  },
}

/** What a valid config would run into on this machine (see the top of this file). */
async function warningsFor(config: Config): Promise<string[]> {
  const warnings = unsetApiKeys(config, process.env)
  if (existsSync(config.proof.keyPath)) {
    try {
      await loadSigningKey(config.proof.keyPath)
    } catch (error) {
      // Unreadable here says nothing of the service user, who may be another.
      if (error instanceof SigningKeyError) warnings.push(`${error.message} (serve will not start with it)`)
    }
  }
  return warnings
}

/**
 * The last rollback away from `config` in its database, or in the one the router on this config was
 * given with `serve --db` (served-config.ts), or null (none, or no database yet).
 */
function rolledBack(config: Config): { timestamp: string; reason: string } | null {
  const override = config.path ? readServed(config.path)?.database_override : null
  for (const path of new Set([config.databasePath, ...(override ? [override] : [])])) {
    if (!existsSync(path)) continue
    let db: ReturnType<typeof openWitnessDb> | null = null
    try {
      db = openWitnessDb(path)
      const found = rollbackAwayFrom(db, config.deadman.name, config.hash)
      if (found) return found
    } catch {
      // unreadable, or from before the deadman switch: no rollback known there
    } finally {
      db?.close()
    }
  }
  return null
}

/** `reload`, or `restart (listen, database)`; a restart too when OLD is missing or not a valid config. */
function howToApply(oldPath: string, next: ReturnType<typeof loadConfig>): string {
  if (!existsSync(oldPath)) return 'restart (no previous config)'
  let previous: ReturnType<typeof loadConfig>
  try {
    previous = loadConfig(oldPath)
  } catch {
    return 'restart (the previous config is not valid)'
  }
  const fixed = restartRequired(previous, next)
  return fixed.length ? `restart (${fixed.join(', ')})` : 'reload'
}
