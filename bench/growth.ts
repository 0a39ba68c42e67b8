/**
 * What grows over months of operation: a simulated witness runs `--days` days on an injected clock,
 * and prints, at the end of each simulated month, the rows and bytes of every table of the live
 * file, the live file and its WAL, the archive directory (by kind of file) and the sync clone.
 *
 *   bun bench/growth.ts [--days 120] [--rows-per-day 2000] [--idle-hours 8] [--keep-days 30]
 *                       [--archive-keep-days 0] [--sync-every-days 1] [--dir DIR] [--read-archives]
 *
 * Each day has 288 five-minute ticks; the first `--idle-hours` of a UTC day have no traffic (a quiet
 * night), the rest share `--rows-per-day` rows (20 agents, 3 models, 1 in 20 an error followed by a
 * fallback row), written through the real store (so chained, each entry then dated to the simulated
 * clock: the store dates them by the real one, which put every entry into one chain file of the
 * export, rewritten whole by each sync). After each tick a checkpoint is signed
 * as `proof.checkpoint_every: 5m` would; after each day the stats fill runs as `serve`'s would, then
 * the archive job, then (every `--sync-every-days`) a sync to a bare repository beside it. With
 * `--read-archives`, every archive month is read once at the end (as `?archives=1` over all time,
 * or a sync catching up, would), and the archive directory is measured again: then, and after the
 * archive job's cache pruning, at once and once no read has used the copies for two days. All of it is witness's own code in process,
 * on the simulated clock: nothing here is a model of it.
 */
import { Database } from 'bun:sqlite'
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { Clock } from '../src/clock.ts'
import { startStatsFill } from '../src/jobs/stats-fill.ts'
import { openLiveForJob } from '../src/jobs/job-db.ts'
import { checkpointNow } from '../src/proof/checkpoint-job.ts'
import { ensureSigningKey } from '../src/proof/keys.ts'
import { runArchive } from '../src/retention/archive-job.ts'
import { listArchives, openArchiveReadonly, pruneCache } from '../src/retention/archive-files.ts'
import { runSync } from '../src/sync/sync-job.ts'
import { SliceRollups } from '../src/telemetry/slice-rollups.ts'
import { openStore } from '../src/telemetry/store.ts'
import { writeRequest } from './simulated-request.ts'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    days: { type: 'string', default: '120' },
    'rows-per-day': { type: 'string', default: '2000' },
    'idle-hours': { type: 'string', default: '8' },
    'keep-days': { type: 'string', default: '30' },
    'archive-keep-days': { type: 'string', default: '0' },
    'sync-every-days': { type: 'string', default: '1' },
    'read-archives': { type: 'boolean', default: false },
    dir: { type: 'string' },
  },
})
const DAYS = Number(values.days)
const ROWS_PER_DAY = Number(values['rows-per-day'])
const IDLE_TICKS = Number(values['idle-hours']) * 12
const SYNC_EVERY = Number(values['sync-every-days'])
const DAY_MS = 86_400_000
const TICK_MS = 5 * 60_000
const START_MS = Date.parse('2025-01-01T00:00:00.000Z')
const MACHINE = 'growth'

const dir = values.dir ? resolve(values.dir) : mkdtempSync(join(tmpdir(), 'witness-growth-'))
mkdirSync(dir, { recursive: true })
const dbPath = join(dir, 'witness.db')
const keyPath = join(dir, 'witness-key.json')
const archiveDir = join(dir, 'archive')
const remote = join(dir, 'remote.git')
const workDir = join(dir, 'sync')
Bun.spawnSync(['git', 'init', '-q', '--bare', '--initial-branch=main', remote])

let nowMs = START_MS
const clock: Clock = { now: () => nowMs, monotonic: () => performance.now() }
const retention = { keepDays: Number(values['keep-days']), archiveDir, archiveKeepDays: Number(values['archive-keep-days']), maxDbMb: 512 }
const sync = { remote, branch: 'main', workDir, everyMs: 0 }

const store = openStore(dbPath, { sync: 'normal', busyTimeoutMs: 5000 })
const key = (await ensureSigningKey(keyPath)).key
const rollups = new SliceRollups(store.reader, (side) => store.write(side), () => nowMs)
const fill = startStatsFill({ store, rollups, clock, log: (line) => console.error(line), tickMs: null, stepMs: 1000, pauseMs: 0 })
const job = await openLiveForJob(dbPath, 'growth')

const agents = Array.from({ length: 20 }, (_, i) => `agent-${i}`)
const models = ['kimi-k2.5', 'glm-4.6', 'mimo-v2']
let requestNo = 0
let chainedUpTo = 0

/** One request: a success, or (1 in 20) an error then a fallback row. */
async function request(at: number): Promise<void> {
  const n = requestNo++
  await writeRequest(store, n, `req-${n}`, at, agents, models)
}

function tableSizes(db: Database): { name: string; rows: number; bytes: number }[] {
  const bytes = new Map((db.query('SELECT name, sum(pgsize) AS b FROM dbstat GROUP BY name').all() as { name: string; b: number }[]).map((r) => [r.name, r.b]))
  const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name").values() as [string][]).map((r) => r[0])
  const indexesOf = (table: string) => (db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?").values(table) as [string][]).map((r) => r[0])
  return tables.map((name) => ({
    name,
    rows: (db.query(`SELECT count(*) AS n FROM "${name}"`).get() as { n: number }).n,
    bytes: [name, ...indexesOf(name)].reduce((sum, n) => sum + (bytes.get(n) ?? 0), 0),
  }))
}

function duBytes(path: string): number {
  let total = 0
  let st
  try {
    st = statSync(path)
  } catch {
    return 0
  }
  if (!st.isDirectory()) return st.size
  for (const name of readdirSync(path)) total += duBytes(join(path, name))
  return total
}

function archiveKinds(): Record<string, { files: number; bytes: number }> {
  const out: Record<string, { files: number; bytes: number }> = {}
  const add = (kind: string, bytes: number) => {
    out[kind] ??= { files: 0, bytes: 0 }
    out[kind].files++
    out[kind].bytes += bytes
  }
  for (const name of readdirSync(archiveDir, { withFileTypes: false }).map(String)) {
    const path = join(archiveDir, name)
    if (name === '.cache') for (const cached of readdirSync(path)) add('.cache/*', statSync(join(path, cached)).size)
    else add(name.endsWith('.db.zst') ? '*.db.zst' : name.endsWith('.db') ? '*.db' : name.endsWith('-journal') ? '*-journal' : name, statSync(path).size)
  }
  return out
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(2)} MB`
function report(label: string): void {
  const sizes = tableSizes(job)
  const state = job.query("SELECT count(*) AS n, sum(length(key) + length(value) + length(updated_at)) AS b FROM witness_state").get() as { n: number; b: number }
  const emptySlices = (job.query('SELECT count(*) AS n FROM stats_slice WHERE row_count = 0').get() as { n: number }).n
  const live = statSync(dbPath).size
  let wal = 0
  try {
    wal = statSync(`${dbPath}-wal`).size
  } catch {}
  console.log(`\n== ${label} (simulated ${new Date(nowMs).toISOString().slice(0, 10)}; ${requestNo} requests so far)`)
  console.log(`live file ${mb(live)}, WAL ${mb(wal)}; witness_state ${state.n} keys (${state.b} bytes of text); stats_slice of no row: ${emptySlices}`)
  for (const t of sizes) console.log(`  ${t.name.padEnd(18)} ${String(t.rows).padStart(8)} rows ${mb(t.bytes).padStart(10)}`)
  const kinds = archiveKinds()
  console.log(`archive dir: ${Object.entries(kinds).map(([k, v]) => `${k} ${v.files} file(s) ${mb(v.bytes)}`).join('; ')}`)
  console.log(`sync clone: ${mb(duBytes(workDir))} (.git ${mb(duBytes(join(workDir, '.git')))}); remote ${mb(duBytes(remote))}`)
}

const started = performance.now()
for (let day = 0; day < DAYS; day++) {
  const dayMs = START_MS + day * DAY_MS
  const busyTicks = 288 - IDLE_TICKS
  let written = 0
  for (let tick = 0; tick < 288; tick++) {
    nowMs = dayMs + (tick + 1) * TICK_MS
    if (tick >= IDLE_TICKS) {
      const due = Math.round(((tick - IDLE_TICKS + 1) * ROWS_PER_DAY) / busyTicks)
      const writes: Promise<void>[] = []
      for (; written < due; written++) writes.push(request(dayMs + tick * TICK_MS + Math.floor(((written % 50) * TICK_MS) / 50)))
      await Promise.all(writes)
      // The store chains on the real clock; chained_at (not in the hashed record) names the chain file an entry is exported to.
      job.query('UPDATE log_chain SET chained_at = ? WHERE seq > ?').run(new Date(nowMs).toISOString(), chainedUpTo)
      chainedUpTo = (job.query('SELECT max(seq) AS seq FROM log_chain').get() as { seq: number | null }).seq ?? 0
    }
    await checkpointNow(job, key, MACHINE, () => nowMs)
  }
  nowMs = dayMs + DAY_MS
  await fill.run()
  await rollups.settled()
  await runArchive({ livePath: dbPath, retention, syncConfigured: SYNC_EVERY > 0, now: () => nowMs, signer: { keyPath, machine: MACHINE } })
  if (SYNC_EVERY > 0 && (day + 1) % SYNC_EVERY === 0) {
    await runSync({ livePath: dbPath, archiveDir, sync, machine: MACHINE, keyPath, now: () => nowMs })
  }
  const next = new Date(nowMs)
  if (next.getUTCDate() === 1 || day === DAYS - 1) report(`day ${day + 1}`)
}
console.error(`simulated ${DAYS} days in ${((performance.now() - started) / 1000).toFixed(0)} s`)

if (values['read-archives']) {
  for (const file of listArchives(archiveDir)) openArchiveReadonly(archiveDir, file).close()
  report('after reading every archive month once')
  pruneCache(archiveDir)
  report('after the archive job\'s pruneCache, at once')
  // A day and more without a read: the copies' access times (their last use) moved back two days.
  const cache = join(archiveDir, '.cache')
  for (const name of readdirSync(cache)) {
    const path = join(cache, name)
    utimesSync(path, (Date.now() - 2 * DAY_MS) / 1000, statSync(path).mtimeMs / 1000)
  }
  pruneCache(archiveDir)
  report('after the archive job\'s pruneCache, no read for two days')
}

await fill.stop()
job.close()
store.close()
console.error(`kept in ${dir}`)
if (!values.dir) rmSync(dir, { recursive: true, force: true })
