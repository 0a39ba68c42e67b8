/** `witness sim [--port N] [--keep N] [--seed N]`: run the provider simulator on 127.0.0.1 until killed. */
import { parseArgs } from 'node:util'
import { startSimulator } from '../sim/server.ts'
import { type Command, UsageError, parsed, portOf } from './args.ts'

export const simCommand: Command = {
  summary: 'sim [--port N] [--keep N] [--seed N]           run the provider simulator on 127.0.0.1 (default port 9100)',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { port: { type: 'string' }, keep: { type: 'string' }, seed: { type: 'string' } } }))
    const keep = values.keep === undefined ? undefined : Number(values.keep)
    if (keep !== undefined && !(Number.isInteger(keep) && keep >= 0)) throw new UsageError(`--keep must be a whole number, got "${values.keep}"`)
    const seed = values.seed === undefined ? undefined : Number(values.seed)
    if (seed !== undefined && !(Number.isInteger(seed) && seed >= 0)) throw new UsageError(`--seed must be a whole number, got "${values.seed}"`)
    const sim = startSimulator({ port: values.port === undefined ? 9100 : portOf(values.port), keep, seed })
    console.error(`witness sim: OpenAI at ${sim.url}/v1/chat/completions, Anthropic at ${sim.url}/v1/messages (seed ${sim.seed})`)
    return new Promise<number>(() => {})
  },
}
