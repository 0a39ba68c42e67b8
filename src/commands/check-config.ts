/** `witness check-config [--config PATH]`: validate a config file without starting anything. */
import { parseArgs } from 'node:util'
import { loadConfig } from '../config.ts'
import { configPathFrom } from '../main.ts'
import { type Command, parsed } from './args.ts'

export const checkConfigCommand: Command = {
  summary: 'check-config [--config PATH]                   validate a config file and print its hash',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { config: { type: 'string' } } }))
    const config = loadConfig(configPathFrom(values.config))
    console.log(`witness: ${config.path} is valid (sha256 ${config.hash}; chains: ${[...config.chains.keys()].join(', ')})`)
    return 0
  },
}
