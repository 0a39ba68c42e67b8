/** `witness sim [--port N]`: run the provider simulator on 127.0.0.1 until killed. */
import { parseArgs } from 'node:util'
import { startSimulator } from '../sim/server.ts'
import { type Command, parsed, portOf } from './args.ts'

export const simCommand: Command = {
  summary: 'sim [--port N]                                 run the provider simulator on 127.0.0.1 (default port 9100)',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { port: { type: 'string' } } }))
    const sim = startSimulator({ port: values.port === undefined ? 9100 : portOf(values.port) })
    console.error(`witness sim: OpenAI at ${sim.url}/v1/chat/completions, Anthropic at ${sim.url}/v1/messages`)
    return new Promise<number>(() => {})
  },
}
