/**
 * `witness check-config [--config PATH] [--against OLD]`: validate a config
 * file without starting anything. With `--against`, also say how a server
 * running OLD takes the change: a reload, or a restart when a setting fixed
 * at start-up differs (the socket, the database; see restartRequired), so a
 * deploy tool knows which to do (deploy/ansible does).
 */
import { existsSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { loadConfig } from '../config.ts'
import { restartRequired } from '../deadman/live-config.ts'
import { configPathFrom } from '../main.ts'
import { type Command, parsed } from './args.ts'

export const checkConfigCommand: Command = {
  summary: 'check-config [--config PATH] [--against OLD]   validate a config file and print its hash (and how a server on OLD applies it)',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { config: { type: 'string' }, against: { type: 'string' } } }))
    const config = loadConfig(configPathFrom(values.config))
    console.log(`witness: ${config.path} is valid (sha256 ${config.hash}; chains: ${[...config.chains.keys()].join(', ')})`)
    if (values.against !== undefined) console.log(`witness: to apply: ${howToApply(values.against, config)}`)
    return 0
  },
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
