/**
 * `bun bench/stats-stall.ts [--rows 100000,300000]`: how long a /stats over
 * the live (not yet sealed) slices of a busy witness holds the router's
 * event loop. For each size it fills a temporary database with that many
 * rows over the last five minutes (bench/fill.ts), starts witness on it
 * (in this process, as the tests do, so the event loop measured is the
 * server's), and while /stats?since=1h runs, sends GET /v1/models one
 * after another: the slowest of those answers is the longest the loop was
 * held. Prints the median of 5 /stats calls and the slowest /v1/models
 * during them. A benchmark, not a test.
 */
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { startWitness } from '../test/support/witness.ts'
import { tempDir } from '../test/support/temp.ts'
import { fillDatabase } from './fill.ts'

const { values } = parseArgs({ args: process.argv.slice(2), options: { rows: { type: 'string', default: '100000,300000' } } })

for (const rows of values.rows!.split(',').map(Number)) {
  const dir = tempDir('witness-stats-stall-')
  const nowMs = Date.now()
  fillDatabase(join(dir, 'witness.db'), { rows, days: 5 / 1440, endMs: nowMs })
  const w = await startWitness({ providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] } }, { dir })
  const statsMs: number[] = []
  let slowest = 0
  let answered = 0
  try {
    for (let run = 0; run < 5; run++) {
      let done = false
      const t0 = performance.now()
      const stats = fetch(`${w.url}/stats?since=1h`).then(async (res) => {
        await res.arrayBuffer()
        statsMs.push(performance.now() - t0)
        done = true
      })
      while (!done) {
        const t = performance.now()
        await (await fetch(`${w.url}/v1/models`)).arrayBuffer()
        slowest = Math.max(slowest, performance.now() - t)
        answered++
      }
      await stats
    }
  } finally {
    await w.stop(0)
  }
  statsMs.sort((a, b) => a - b)
  console.log(
    `${rows.toLocaleString('en')} live rows: /stats?since=1h median ${statsMs[2]!.toFixed(0)} ms; ` +
      `${answered} GET /v1/models answered meanwhile, the slowest in ${slowest.toFixed(1)} ms`,
  )
}
