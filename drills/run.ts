/**
 * `npm run drills [-- --small] [-- --only crash,chaos] [-- --seed N]`: runs
 * the fault drills (full size unless --small), prints each result, and,
 * after a full-size run of all of them, writes docs/RELIABILITY.md. Exits 1
 * if any drill found a problem.
 */
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { DRILLS } from './index.ts'
import { reliabilityReport } from './report.ts'
import type { DrillResult } from './support/result.ts'

const ROOT = join(import.meta.dir, '..')
const HAND_WRITTEN = '<!-- Written by hand below this line; npm run drills keeps it. -->'
const { values } = parseArgs({ args: process.argv.slice(2), options: { small: { type: 'boolean' }, only: { type: 'string' }, seed: { type: 'string' } } })
const size = values.small ? 'small' : 'full'
const only = values.only ? new Set(values.only.split(',')) : null
const seed = values.seed === undefined ? undefined : Number(values.seed)
if (seed !== undefined && !Number.isInteger(seed)) throw new Error(`--seed must be a whole number, got "${values.seed}"`)
const unknown = [...(only ?? [])].filter((name) => !DRILLS.some((d) => d.name === name))
if (unknown.length) throw new Error(`unknown drill(s): ${unknown.join(', ')}; drills: ${DRILLS.map((d) => d.name).join(', ')}`)

/** Issue 8's minimums for a full run: at least 20 kills, a soak of about a minute, at least 50 inputs. */
function holdToMinimums(result: DrillResult): void {
  const short = (why: string) => {
    result.problems.push(why)
    result.problemCount++
  }
  const least: Record<string, [string, number]> = { crash: ['kills (SIGKILL)', 20], hostile: ['distinct malformed inputs', 50] }
  const need = least[result.drill]
  if (need && (result.counts[need[0]] ?? 0) < need[1]) short(`${need[0]}: ${result.counts[need[0]] ?? 0}, under the ${need[1]} a full run needs`)
  if (result.drill === 'chaos' && result.durationMs < 50_000) short(`the soak ran ${(result.durationMs / 1000).toFixed(0)} s, under the minute a full run needs`)
}

const chosen = DRILLS.filter((d) => !only || only.has(d.name))
const results: DrillResult[] = []
for (const drill of chosen) {
  console.log(`drill ${drill.name} (${size})…`)
  const result = await drill.run(size, { seed })
  if (size === 'full') holdToMinimums(result)
  results.push(result)
  const verdict = result.problemCount === 0 ? 'no problems' : `${result.problemCount} PROBLEM(S)`
  console.log(`drill ${drill.name}: ${verdict} in ${(result.durationMs / 1000).toFixed(1)} s (seed ${result.seed})`)
  for (const [name, value] of Object.entries(result.counts)) console.log(`  ${name}: ${value}`)
  for (const note of result.notes) console.log(`  note: ${note}`)
  for (const problem of result.problems) console.log(`  PROBLEM: ${problem}`)
}

if (size === 'full' && !only) {
  const git = (args: string[]) => Bun.spawnSync(['git', ...args], { cwd: ROOT }).stdout.toString().trim()
  const dirty = git(['status', '--porcelain', '--', 'src', 'providers']) ? ' with uncommitted changes' : ''
  const report = reliabilityReport(DRILLS, results, {
    date: new Date().toISOString().slice(0, 10),
    commit: `${git(['rev-parse', '--short', 'HEAD'])}${dirty}`,
    machine: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GB, ${process.platform}`,
    bun: Bun.version,
    command: 'npm run drills',
  })
  // What follows the marker is written by hand (what the drills found) and kept.
  const path = join(ROOT, 'docs/RELIABILITY.md')
  const existing = (await Bun.file(path).exists()) ? await Bun.file(path).text() : ''
  const kept = existing.includes(HAND_WRITTEN) ? existing.slice(existing.indexOf(HAND_WRITTEN)) : `${HAND_WRITTEN}\n`
  await Bun.write(path, `${report}\n${kept}`)
  console.log('wrote docs/RELIABILITY.md')
}
process.exit(results.some((r) => r.problemCount > 0) ? 1 : 0)
