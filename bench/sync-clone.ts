/**
 * How big one machine's sync clone (`sync.work_dir`) gets in a repository that several machines
 * sync into: its working tree, its `.git` (loose objects, packs, index), and what a sync costs.
 *
 *   bun bench/sync-clone.ts [--machines 5] [--days 14] [--rows-per-day 2200] [--syncs-per-day 24]
 *                           [--report-every-days 1] [--src DIR] [--partial] [--dir DIR]
 *
 * `--machines` machines, each with its own database, signing key and clone, sync into one bare
 * repository beside them. Each simulated day has 288 five-minute ticks; at each tick every machine
 * writes its share of `--rows-per-day` rows (20 agents, 3 models, 1 request in 20 an error followed
 * by a fallback row and a retry) through the real store, so chained (each entry then dated to the
 * simulated clock, so each day has its chain file, as it would), and signs a checkpoint as
 * `proof.checkpoint_every: 5m` would; `--syncs-per-day` times a day the machines sync one after the
 * other (so each one's fetch brings the others' commits, as in a fleet). At the end of every
 * `--report-every-days` days the first machine's clone is measured: its working tree (files, and
 * bytes on disk), its `.git` on disk and as `git count-objects -v` sees it, its index, and the wall
 * time of its syncs that day. At the end, a full `git gc` of that clone is timed and measured.
 *
 * `--src DIR` runs the sync code of another checkout (the build before, to compare); the rows are
 * written by this one's store either way. `--partial` makes each clone a partial clone before its
 * first sync (`remote.origin.promisor`, `partialclonefilter=blob:none`, the remote allowing
 * filters): a measurement of what partial clone would save, not something witness does.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, lstatSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { openLiveForJob } from '../src/jobs/job-db.ts'
import { checkpointNow } from '../src/proof/checkpoint-job.ts'
import { ensureSigningKey } from '../src/proof/keys.ts'
import { openStore } from '../src/telemetry/store.ts'
import { writeRequest } from './simulated-request.ts'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    machines: { type: 'string', default: '5' },
    days: { type: 'string', default: '14' },
    'rows-per-day': { type: 'string', default: '2200' },
    'syncs-per-day': { type: 'string', default: '24' },
    'report-every-days': { type: 'string', default: '1' },
    src: { type: 'string' },
    partial: { type: 'boolean', default: false },
    dir: { type: 'string' },
  },
})
const MACHINES = Number(values.machines)
const DAYS = Number(values.days)
// A request is 1.1 rows: one in 20 fails and falls back (an error, a fallback row and a retry).
const REQUESTS_PER_DAY = Math.round(Number(values['rows-per-day']) / 1.1)
const TICKS_PER_SYNC = Math.max(1, Math.round(288 / Number(values['syncs-per-day'])))
const REPORT_EVERY = Number(values['report-every-days'])
const DAY_MS = 86_400_000
const TICK_MS = 5 * 60_000
const START_MS = Date.parse('2026-01-01T00:00:00.000Z')
const src = resolve(values.src ?? join(import.meta.dir, '..'))
const { runSync } = (await import(join(src, 'src/sync/sync-job.ts'))) as typeof import('../src/sync/sync-job.ts')

const dir = values.dir ? resolve(values.dir) : mkdtempSync(join(tmpdir(), 'witness-sync-clone-'))
mkdirSync(dir, { recursive: true })
const remote = join(dir, 'remote.git')
const env = { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' }
function git(args: string[], cwd?: string): string {
  const result = Bun.spawnSync(['git', ...args], { cwd, env })
  if (result.exitCode !== 0) throw new Error(`git ${args.join(' ')}: ${result.stderr.toString()}`)
  return result.stdout.toString()
}
git(['init', '-q', '--bare', '--initial-branch=main', remote])
if (values.partial) git(['--git-dir', remote, 'config', 'uploadpack.allowFilter', 'true'])

let nowMs = START_MS
const agents = Array.from({ length: 20 }, (_, i) => `agent-${i}`)
const models = ['kimi-k2.5', 'glm-4.6', 'mimo-v2']

const machines = await Promise.all(
  Array.from({ length: MACHINES }, async (_, i) => {
    const name = `m${i}`
    const home = join(dir, name)
    mkdirSync(home, { recursive: true })
    const livePath = join(home, 'witness.db')
    const keyPath = join(home, 'witness-key.json')
    const workDir = join(home, 'sync')
    const store = openStore(livePath, { sync: 'normal', busyTimeoutMs: 5000 })
    const key = (await ensureSigningKey(keyPath)).key
    const job = await openLiveForJob(livePath, 'bench')
    if (values.partial) {
      mkdirSync(workDir, { recursive: true })
      git(['init', '-q', '-b', 'main'], workDir)
      git(['remote', 'add', 'origin', remote], workDir)
      git(['config', 'remote.origin.promisor', 'true'], workDir)
      git(['config', 'remote.origin.partialclonefilter', 'blob:none'], workDir)
    }
    return { name, livePath, keyPath, workDir, store, key, job, requests: 0, chainedUpTo: 0, syncMs: [] as number[] }
  }),
)

/** One request of a machine: a success, or (1 in 20) an error, a fallback row and a retry. */
async function request(m: (typeof machines)[number], at: number): Promise<void> {
  const n = m.requests++
  await writeRequest(m.store, n, `${m.name}-req-${n}`, at, agents, models)
}

/** Bytes on disk (allocated blocks) and regular files under `path`, `.git` left out unless asked. */
function onDisk(path: string, withGit = false): { bytes: number; files: number } {
  const st = lstatSync(path)
  if (!st.isDirectory()) return { bytes: st.blocks * 512, files: st.isFile() ? 1 : 0 }
  let bytes = 0
  let files = 0
  for (const name of readdirSync(path)) {
    if (name === '.git' && !withGit) continue
    const sub = onDisk(join(path, name), true)
    bytes += sub.bytes
    files += sub.files
  }
  return { bytes, files }
}

function countObjects(workDir: string): Record<string, number> {
  return Object.fromEntries(
    git(['count-objects', '-v'], workDir)
      .trim()
      .split('\n')
      .map((line) => line.split(': '))
      .map(([k, v]) => [k!, Number(v)]),
  )
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1)
const first = machines[0]!
console.log(`${MACHINES} machines, ${REQUESTS_PER_DAY} requests a day each (about ${values['rows-per-day']} rows), a sync every ${TICKS_PER_SYNC * 5} min, sync code of ${src}${values.partial ? ', partial clones' : ''}`)
console.log('day | rows exported (all machines) | work tree files | work tree MB | .git MB | loose objects | loose MB | packs | pack MB | index MB | sync ms (median / max)')
let exportedRows = 0
const benchStarted = performance.now()

for (let day = 0; day < DAYS; day++) {
  const dayMs = START_MS + day * DAY_MS
  for (let tick = 0; tick < 288; tick++) {
    nowMs = dayMs + (tick + 1) * TICK_MS
    for (const m of machines) {
      const due = Math.round(((tick + 1) * REQUESTS_PER_DAY) / 288) - Math.round((tick * REQUESTS_PER_DAY) / 288)
      await Promise.all(Array.from({ length: due }, (_, i) => request(m, dayMs + tick * TICK_MS + Math.floor((i * TICK_MS) / Math.max(due, 1)))))
      // The store chains on the real clock; chained_at (not in the hashed record) names the chain file an entry goes to.
      m.job.query('UPDATE log_chain SET chained_at = ? WHERE seq > ?').run(new Date(nowMs).toISOString(), m.chainedUpTo)
      m.chainedUpTo = (m.job.query('SELECT max(seq) AS seq FROM log_chain').get() as { seq: number | null }).seq ?? 0
      await checkpointNow(m.job, m.key, m.name, () => nowMs)
    }
    if ((tick + 1) % TICKS_PER_SYNC !== 0) continue
    for (const m of machines) {
      const started = performance.now()
      const report = await runSync({ livePath: m.livePath, archiveDir: join(m.workDir, '..', 'archive'), sync: { remote, branch: 'main', workDir: m.workDir, everyMs: 0 }, machine: m.name, keyPath: m.keyPath, now: () => nowMs })
      m.syncMs.push(performance.now() - started)
      exportedRows += report.exported
      if (report.remoteError) throw new Error(`${m.name}: ${report.remoteError}`)
    }
  }
  console.error(`day ${day + 1} simulated, ${((performance.now() - benchStarted) / 1000).toFixed(0)} s`)
  if ((day + 1) % REPORT_EVERY === 0 || day === DAYS - 1) {
    const tree = onDisk(first.workDir)
    const gitDir = onDisk(join(first.workDir, '.git'), true)
    const objects = countObjects(first.workDir)
    const index = statSync(join(first.workDir, '.git', 'index')).size
    const times = [...first.syncMs].sort((a, b) => a - b)
    console.log(
      `${day + 1} | ${exportedRows} | ${tree.files} | ${mb(tree.bytes)} | ${mb(gitDir.bytes)} | ${objects.count} | ${mb(objects.size! * 1024)} | ${objects.packs} | ${mb(objects['size-pack']! * 1024)} | ${mb(index)} | ${times[times.length >> 1]!.toFixed(0)} / ${times.at(-1)!.toFixed(0)}`,
    )
    first.syncMs = []
  }
}

const gcStarted = performance.now()
git(['-c', 'gc.autoDetach=false', 'gc', '--quiet'], first.workDir)
const after = countObjects(first.workDir)
console.log(`after a full git gc of ${first.name}'s clone (${((performance.now() - gcStarted) / 1000).toFixed(1)} s): .git ${mb(onDisk(join(first.workDir, '.git'), true).bytes)} MB, packs ${mb(after['size-pack']! * 1024)} MB, loose ${after.count}`)
console.log(`remote: ${mb(onDisk(remote, true).bytes)} MB on disk`)
for (const m of machines) {
  m.job.close()
  m.store.close()
}
if (values.dir) console.error(`kept in ${dir}`)
else rmSync(dir, { recursive: true, force: true })
