/**
 * `witness verify` over a big log: peak memory (RSS) and wall time.
 *
 *   bun bench/verify-memory.ts [--rows 1000000] [--checkpoints N] [--dir DIR] [--archive] [--export [--export-with PATH]] [--cli PATH]... [--no-live]
 *
 * Builds, once per `--dir` (kept; a temp dir otherwise, removed after), a witness database of
 * `--rows` synthetic rows over 120 days (bench/fill.ts), every finished row chained in id order by
 * witness's own appender (src/proof/append.ts), with a checkpoint signed by the machine's key every
 * 100,000 entries and one at the head, and a config naming it; with `--checkpoints N`, N more of the
 * head before those, signed five minutes apart (a year at the default checkpoint_every is 105,000).
 * With `--archive`, the archive job
 * (keep_days 30) first moves the older three quarters of the rows to monthly archives and compresses
 * the closed months. With `--export`, `witness sync` exports it all to a bare git repository beside
 * it (its work clone: `<dir>/sync`); `--export-with` runs another checkout's `witness sync` for it
 * (the build before wrote the checkpoints flat, the only layout it reads). Then it runs `witness verify --config` (and `verify --archives`
 * when there are archives, `verify --repo` when there is an export) under `/usr/bin/time -v` with
 * each `--cli` given (default: this checkout's src/cli.ts; another checkout's to compare builds), and
 * prints one line per run: exit code, peak RSS, wall time, and verify's own first line.
 */
import { Database } from 'bun:sqlite'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { INSERT_CHECKPOINT_SQL, signCheckpoint } from '../src/proof/checkpoint.ts'
import { checkpointNow } from '../src/proof/checkpoint-job.ts'
import { chainAppender } from '../src/proof/append.ts'
import { type SigningKey, ensureSigningKey } from '../src/proof/keys.ts'
import { sha256 } from '../src/hash.ts'
import { runArchive } from '../src/retention/archive-job.ts'
import { describeSync, runSync } from '../src/sync/sync-job.ts'
import { fillDatabase } from './fill.ts'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    rows: { type: 'string', default: '1000000' },
    dir: { type: 'string' },
    archive: { type: 'boolean', default: false },
    export: { type: 'boolean', default: false },
    'export-with': { type: 'string' },
    checkpoints: { type: 'string', default: '0' },
    cli: { type: 'string', multiple: true },
    'no-live': { type: 'boolean', default: false },
  },
})
const ROWS = Number(values.rows)
const DAYS = 120
const KEEP_DAYS = 30
const CHECKPOINT_EVERY = 100_000
const MACHINE = 'bench'
const ROOT = resolve(import.meta.dir, '..')

const dir = values.dir ? resolve(values.dir) : mkdtempSync(join(tmpdir(), 'witness-verify-memory-'))
mkdirSync(dir, { recursive: true })
const dbPath = join(dir, 'witness.db')
const keyPath = join(dir, 'witness-key.json')
const archiveDir = join(dir, 'archive')
const configPath = join(dir, 'witness.yaml')
const cloneDir = join(dir, 'sync')

if (!existsSync(dbPath)) await build()
if (values.archive && !existsSync(archiveDir)) await archive()
if (values.export && !existsSync(cloneDir)) await exportAll()
for (const cli of (values.cli ?? [join(ROOT, 'src/cli.ts')]).map((path) => resolve(path))) {
  if (!values['no-live']) measure(cli, ['--config', configPath])
  if (existsSync(archiveDir)) measure(cli, ['--config', configPath, '--archives'])
  if (existsSync(cloneDir)) measure(cli, ['--repo', cloneDir, '--machine', MACHINE, '--key', keyPath])
}
if (!values.dir) rmSync(dir, { recursive: true, force: true })

async function build(): Promise<void> {
  let started = performance.now()
  const written = fillDatabase(dbPath, { rows: ROWS, days: DAYS })
  console.log(`fill: ${written} rows in ${seconds(started)}`)
  started = performance.now()
  const { key } = await ensureSigningKey(keyPath)
  const db = new Database(dbPath, { strict: true })
  db.exec('PRAGMA synchronous = OFF')
  const chain = chainAppender(db)
  const ids = db.query("SELECT id FROM request_log WHERE status != 'pending' AND id > ? ORDER BY id LIMIT 10000")
  const appendAll = db.transaction((batch: number[]) => {
    chain.start()
    for (const id of batch) chain.append(id, { requestSha256: sha256(`request ${id}`), responseSha256: sha256(`response ${id}`) })
  })
  let after = 0
  let chained = 0
  let signedAt = 0
  for (;;) {
    const batch = (ids.all(after) as { id: number }[]).map((r) => r.id)
    if (batch.length === 0) break
    appendAll.immediate(batch)
    chain.committed()
    chained += batch.length
    after = batch.at(-1)!
    if (chained - signedAt >= CHECKPOINT_EVERY) {
      await checkpointNow(db, key, MACHINE, Date.now)
      signedAt = chained
    }
  }
  await checkpointNow(db, key, MACHINE, Date.now)
  await signMore(db, key, Number(values.checkpoints))
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
  db.close()
  const config = {
    machine: MACHINE,
    database: './witness.db',
    providers: { sim: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' } },
    chains: { default: [{ provider: 'sim', model: 'm' }] },
    retention: { keep_days: KEEP_DAYS, archive_dir: './archive', max_db_mb: 100_000 },
    proof: { key_path: './witness-key.json' },
  }
  writeFileSync(configPath, JSON.stringify(config, null, 2))
  console.log(`chain: ${chained} entries in ${seconds(started)}`)
}

/** `count` more checkpoints of the head, five minutes apart before now, inserted as checkpointNow would (it signs only a head that moved). */
async function signMore(db: Database, key: SigningKey, count: number): Promise<void> {
  if (count <= 0) return
  const started = performance.now()
  const head = db.query('SELECT seq, hash FROM log_chain ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string }
  const insert = db.query(INSERT_CHECKPOINT_SQL)
  const from = Date.now() - count * 300_000
  for (let done = 0; done < count; done += 5000) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(5000, count - done) }, (_, i) => signCheckpoint(key, { machine: MACHINE, seq: head.seq, head_hash: head.hash, time: new Date(from + (done + i) * 300_000).toISOString() })),
    )
    db.transaction(() => {
      for (const c of batch) insert.run({ machine: c.machine, seq: c.seq, head_hash: c.head_hash, time: c.time, key_id: c.key_id, signature: c.signature })
    })()
  }
  console.log(`checkpoints: ${count} more signed in ${seconds(started)}`)
}

async function archive(): Promise<void> {
  const started = performance.now()
  const report = await runArchive({
    livePath: dbPath,
    retention: { keepDays: KEEP_DAYS, archiveDir, archiveKeepDays: 0, maxDbMb: 100_000 },
    syncConfigured: false,
    now: Date.now,
    batchRows: 5000,
    signer: { keyPath, machine: MACHINE },
  })
  const files = readdirSync(archiveDir).filter((f) => f.startsWith('request_log-'))
  console.log(`archive: moved ${report.moved} rows into ${files.join(', ')} in ${seconds(started)}`)
}

async function exportAll(): Promise<void> {
  const started = performance.now()
  const remote = join(dir, 'telemetry.git')
  Bun.spawnSync(['git', 'init', '--quiet', '--bare', '--initial-branch', 'main', remote])
  if (values['export-with']) {
    const syncConfig = join(dir, 'witness-sync.yaml')
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>
    writeFileSync(syncConfig, JSON.stringify({ ...config, sync: { remote, branch: 'main', work_dir: './sync', every: 0 } }))
    const proc = Bun.spawnSync([process.execPath, resolve(values['export-with']), 'sync', '--config', syncConfig], { cwd: dir, stdout: 'pipe', stderr: 'pipe' })
    console.log(`export (${values['export-with']}): exit ${proc.exitCode}: ${proc.stdout.toString().trim()} in ${seconds(started)}`)
    return
  }
  const report = await runSync({
    livePath: dbPath,
    archiveDir,
    sync: { remote, branch: 'main', workDir: cloneDir, everyMs: 0 },
    machine: MACHINE,
    keyPath,
    now: Date.now,
  })
  console.log(`export: ${describeSync(report, 'main')} in ${seconds(started)}`)
}

function measure(cli: string, extra: string[]): void {
  const args = ['/usr/bin/time', '-v', process.execPath, cli, 'verify', ...extra]
  const proc = Bun.spawnSync(args, { cwd: dir, stdout: 'pipe', stderr: 'pipe' })
  const err = proc.stderr.toString()
  const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(err)?.[1])
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)/.exec(err)?.[1]
  const first = proc.stdout.toString().split('\n')[0]
  console.log(`${cli} verify ${extra.join(' ')}: exit ${proc.exitCode}, peak RSS ${(rssKb / 1024).toFixed(0)} MB, wall ${wall}: ${first}`)
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`
}
