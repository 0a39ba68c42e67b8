/**
 * How long `verify --repo`'s history check (src/proof/export-history.ts) takes over a long history,
 * for each layout of the checkpoint files.
 *
 *   bun bench/export-history.ts [--syncs 20000] [--layout flat|daily]... [--dir DIR]
 *
 * Makes a synthetic history with `git fast-import`: `--syncs` commits, each adding one checkpoint
 * file (a sync's, five minutes apart) beside a row file and a chain file it appends to, as
 * `alpha/checkpoints/<id>.json` (flat: the layout before) or
 * `alpha/checkpoints-by-day/YYYY/MM/DD/<id>.json` (daily: sync's now); checks it out, notes the
 * checkpoint files as verify does, then times `exportHistory` (git's tree diffs of the checkpoint
 * folders, read a line at a time into the work store) and prints its wall time and git log's own.
 * (Its memory is measured with the rest of verify's: bench/verify-memory.ts --checkpoints --export.)
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { checkpointFiles, checkpointPaths } from '../src/proof/checkpoint-files.ts'
import { exportHistory, noteCheckpointFile } from '../src/proof/export-history.ts'
import { openWorkStore } from '../src/proof/work-store.ts'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    syncs: { type: 'string', default: '20000' },
    layout: { type: 'string', multiple: true },
    dir: { type: 'string' },
  },
})
const SYNCS = Number(values.syncs)
const STEP_MS = 5 * 60_000
const base = values.dir ? resolve(values.dir) : mkdtempSync(join(tmpdir(), 'witness-export-history-'))
mkdirSync(base, { recursive: true })
for (const layout of values.layout ?? ['flat', 'daily']) {
  if (layout !== 'flat' && layout !== 'daily') throw new Error(`--layout: flat or daily, not ${layout}`)
  await measure(layout, join(base, layout))
}
if (!values.dir) rmSync(base, { recursive: true, force: true })

async function measure(layout: 'flat' | 'daily', clone: string): Promise<void> {
  let started = performance.now()
  run(['git', 'init', '-q', '-b', 'main', clone])
  const stream: string[] = []
  const data = (text: string) => `data ${Buffer.byteLength(text)}\n${text}\n`
  const start = Date.now() - SYNCS * STEP_MS
  let rows = ''
  let chain = ''
  for (let id = 1; id <= SYNCS; id++) {
    const time = new Date(start + id * STEP_MS).toISOString()
    const checkpoint = { id, machine: 'alpha', seq: id, head_hash: 'ab'.repeat(32), time, key_id: '0123456789abcdef', signature: 'x'.repeat(86) }
    const paths = checkpointPaths('alpha', checkpoint)
    rows += `{"id":${id},"timestamp":"${time}"}\n`
    chain += `{"seq":${id},"log_id":${id}}\n`
    // A day's files start over each day, as sync's do.
    if (id % 288 === 0) [rows, chain] = ['', '']
    stream.push(
      `commit refs/heads/main\ncommitter x <x@x> ${Math.floor((start + id * STEP_MS) / 1000)} +0000\n${data(`witness sync: alpha: ${id}`)}` +
        `M 100644 inline alpha/${time.slice(0, 4)}/${time.slice(5, 7)}/${time.slice(8, 10)}.ndjson\n${data(rows)}` +
        `M 100644 inline alpha/chain/${time.slice(0, 4)}/${time.slice(5, 7)}/${time.slice(8, 10)}.jsonl\n${data(chain)}` +
        `M 100644 inline ${layout === 'flat' ? paths.flat : paths.daily}\n${data(`${JSON.stringify(checkpoint, null, 2)}\n`)}\n`,
    )
  }
  run(['git', '-C', clone, 'fast-import', '--quiet'], stream.join(''))
  run(['git', '-C', clone, 'checkout', '-q', 'main'])
  console.log(`${layout}: ${SYNCS} commits made in ${seconds(started)}`)

  started = performance.now()
  const logged = Bun.spawnSync(['git', '-C', clone, 'log', '--format=%x01%H', '--raw', '--no-renames', '--no-abbrev', '--full-history', '-m', '--', '*/checkpoints/*', '*/checkpoints-by-day/*'], { stdout: 'pipe' })
  console.log(`  git log --raw of the checkpoint folders alone: ${seconds(started)} (${(logged.stdout.length / 1024 / 1024).toFixed(1)} MB of output)`)

  const store = openWorkStore()
  try {
    started = performance.now()
    await store.inTransaction(async () => {
      for (const file of checkpointFiles(clone, 'alpha')) noteCheckpointFile(store, readFileSync(file))
    })
    console.log(`  the folder's ${SYNCS} checkpoint files noted: ${seconds(started)}`)
    started = performance.now()
    const history = await exportHistory(clone, 'alpha', '0123456789abcdef', store)
    console.log(`  exportHistory: ${seconds(started)}, ${history.problems.length} problem(s), ${history.removed} removed`)
  } finally {
    store.close()
  }
}

function run(args: string[], stdin?: string): void {
  const proc = Bun.spawnSync(args, { stdin: stdin === undefined ? 'ignore' : new TextEncoder().encode(stdin), stdout: 'pipe', stderr: 'pipe' })
  if (proc.exitCode !== 0) throw new Error(`${args.join(' ')}: ${proc.stderr.toString()}`)
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`
}
