/**
 * Run as a separate process: `witness serve` on the config given, with its background jobs
 * checked every 50 ms (the real command checks every 60 s), stopped on SIGTERM as the real
 * command stops (the server's stop, with a 100 ms grace instead of 10 s, then process.exit).
 * Prints "listening" once it listens.
 */
import { serve } from '../../src/main.ts'

const configPath = process.argv[2]
if (!configPath) throw new Error('usage: serve-jobs.ts CONFIG')
const running = await serve({ configPath, port: 0, jobs: { tickMs: 50 }, statsFill: false, background: false, log: () => {} })
process.on('SIGTERM', async () => {
  await running.stop(100)
  process.exit(0)
})
console.log('listening')
