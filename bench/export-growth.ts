/**
 * How much a `witness sync` commit costs the git export once the folder holds many checkpoints.
 *
 *   bun bench/export-growth.ts [--checkpoints 105000] [--syncs 20] [--dir DIR] [--first PATH] [--cli PATH]...
 *
 * For each `--cli` given (default: this checkout's src/cli.ts; another checkout's to compare
 * builds), in a fresh directory: a witness database with a few chained rows and `--checkpoints`
 * checkpoints signed by the machine's key (one every 5 minutes, ending now: 105,000 is a year at
 * the default `proof.checkpoint_every`), a bare repository as the remote, and one real
 * `witness sync --config` that exports them all (with `--first`'s cli, when given: a clone an older
 * build filled, synced on by a newer one). Then `--syncs` times: 20 new rows chained, three
 * checkpoints (the 5-minute ones of a 15-minute `sync.every`) and a real `witness sync`, which signs
 * one more. It prints, per sync on average: the objects a sync commit adds (`git rev-list --objects
 * HEAD --not HEAD^`) and their bytes as git stores them uncompressed, the thin pack a push of that
 * commit carries (`git pack-objects --revs --thin`), how much the remote's and the clone's object
 * folders grew (loose objects: a push of fewer than 100 objects is unpacked on the remote), and the
 * sync's wall time; then both repositories' sizes after `git gc`. Git's automatic gc is kept off
 * (a real remote runs its own, Gitea daily; a clone at 6,700 loose objects, about 5 days of syncs).
 */
import { Database } from 'bun:sqlite'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { chainAppender } from '../src/proof/append.ts'
import { INSERT_CHECKPOINT_SQL, signCheckpoint } from '../src/proof/checkpoint.ts'
import { checkpointNow } from '../src/proof/checkpoint-job.ts'
import { ensureSigningKey } from '../src/proof/keys.ts'
import { sha256 } from '../src/hash.ts'
import { ensureSchema } from '../src/telemetry/schema.ts'

const { values } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    checkpoints: { type: 'string', default: '105000' },
    syncs: { type: 'string', default: '20' },
    dir: { type: 'string' },
    cli: { type: 'string', multiple: true },
    first: { type: 'string' },
  },
})
const CHECKPOINTS = Number(values.checkpoints)
const SYNCS = Number(values.syncs)
const MACHINE = 'bench'
const STEP_MS = 5 * 60_000
const ROOT = resolve(import.meta.dir, '..')
/**
 * Git's automatic gc is off (through git's environment, for builds before 2026-12; this build's sync
 * turns it off itself, and strips such variables: src/git-env.ts, and packs only past 1,000 loose
 * objects, src/sync/pack-clone.ts, which the first sync's export of every checkpoint passes and `--syncs`
 * 20 do not): what a commit adds stays loose and is measured, not packed away at a random sync in the background.
 */
const NO_AUTO_GC = { GIT_CONFIG_COUNT: '1', GIT_CONFIG_KEY_0: 'gc.auto', GIT_CONFIG_VALUE_0: '0' }

const base = values.dir ? resolve(values.dir) : mkdtempSync(join(tmpdir(), 'witness-export-growth-'))
mkdirSync(base, { recursive: true })
const clis = (values.cli ?? [join(ROOT, 'src/cli.ts')]).map((path) => resolve(path))
for (const [index, cli] of clis.entries()) await measure(cli, join(base, String(index)))
if (!values.dir) rmSync(base, { recursive: true, force: true })

async function measure(cli: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true })
  const dbPath = join(dir, 'witness.db')
  const keyPath = join(dir, 'witness-key.json')
  const remote = join(dir, 'telemetry.git')
  const clone = join(dir, 'sync')
  const configPath = join(dir, 'witness.yaml')
  git(['init', '--quiet', '--bare', '--initial-branch', 'main', remote])
  writeFileSync(
    configPath,
    JSON.stringify({
      machine: MACHINE,
      database: './witness.db',
      providers: { sim: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' } },
      chains: { default: [{ provider: 'sim', model: 'm' }] },
      proof: { key_path: './witness-key.json', checkpoint_every: 0 },
      sync: { remote, branch: 'main', work_dir: './sync', every: 0 },
    }),
  )
  const { key } = await ensureSigningKey(keyPath)
  const db = new Database(dbPath, { create: true, strict: true })
  ensureSchema(db)
  const chain = chainAppender(db)
  const insertRow = db.query(
    "INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status, error_message) VALUES (?, 'ezra', 'kimi', 'kimi-k2.5', 'https://api.moonshot.ai/v1/chat/completions', 12, 34, 567, 'success', NULL)",
  )
  const addRows = db.transaction((count: number, at: number) => {
    chain.start()
    for (let i = 0; i < count; i++) {
      const id = Number(insertRow.run(new Date(at).toISOString()).lastInsertRowid)
      chain.append(id, { requestSha256: sha256(`request ${id}`), responseSha256: sha256(`response ${id}`) })
    }
  })
  let clock = Date.now() - CHECKPOINTS * STEP_MS
  addRows.immediate(20, clock)
  chain.committed()

  // A year of checkpoints, signed for real; they all sign the head (the rows are not what is measured).
  let started = performance.now()
  const head = db.query('SELECT seq, hash FROM log_chain ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string }
  const insert = db.query(INSERT_CHECKPOINT_SQL)
  for (let done = 0; done < CHECKPOINTS; ) {
    const batch: Awaited<ReturnType<typeof signCheckpoint>>[] = []
    for (; batch.length < 5000 && done < CHECKPOINTS; done++) {
      batch.push(await signCheckpoint(key, { machine: MACHINE, seq: head.seq, head_hash: head.hash, time: new Date(clock).toISOString() }))
      clock += STEP_MS
    }
    db.transaction(() => {
      for (const c of batch) insert.run({ machine: c.machine, seq: c.seq, head_hash: c.head_hash, time: c.time, key_id: c.key_id, signature: c.signature })
    })()
  }
  console.log(`${cli}: ${CHECKPOINTS} checkpoints signed in ${seconds(started)}`)
  started = performance.now()
  sync(values.first ? resolve(values.first) : cli, dir, configPath)
  console.log(`  first sync${values.first ? ` (${resolve(values.first)})` : ''} (exports them all): ${seconds(started)}, ${folderTrees(clone)}`)

  const totals = { objects: 0, bytes: 0, largest: 0, thin: 0, remoteGrowth: 0, cloneGrowth: 0, wallMs: 0 }
  for (let n = 0; n < SYNCS; n++) {
    addRows.immediate(20, clock)
    chain.committed()
    for (let i = 0; i < 3; i++) {
      addRows.immediate(1, clock)
      chain.committed()
      await checkpointNow(db, key, MACHINE, () => clock)
      clock += STEP_MS
    }
    const [remoteBefore, cloneBefore] = [objectBytes(remote), objectBytes(join(clone, '.git'))]
    const at = performance.now()
    sync(cli, dir, configPath)
    totals.wallMs += performance.now() - at
    totals.remoteGrowth += objectBytes(remote) - remoteBefore
    totals.cloneGrowth += objectBytes(join(clone, '.git')) - cloneBefore
    const added = git(['-C', clone, 'rev-list', '--objects', 'HEAD', '--not', 'HEAD^']).split('\n').filter(Boolean).map((line) => line.split(' ')[0]!)
    totals.objects += added.length
    const sizes = git(['-C', clone, 'cat-file', '--batch-check=%(objectsize)'], `${added.join('\n')}\n`).split('\n').filter(Boolean).map(Number)
    totals.bytes += sizes.reduce((sum, size) => sum + size, 0)
    totals.largest = Math.max(totals.largest, ...sizes)
    totals.thin += gitBytes(['-C', clone, 'pack-objects', '--revs', '--thin', '--stdout', '-q'], 'HEAD\n^HEAD^\n')
  }
  db.close()
  const each = (value: number) => value / SYNCS
  console.log(
    `  per sync (mean of ${SYNCS}): ${each(totals.objects).toFixed(1)} new objects, ${kb(each(totals.bytes))} uncompressed (the largest ${kb(totals.largest)}); thin pack pushed ${kb(each(totals.thin))}; ` +
      `remote objects +${kb(each(totals.remoteGrowth))}, clone objects +${kb(each(totals.cloneGrowth))}; wall ${(each(totals.wallMs) / 1000).toFixed(2)} s`,
  )
  console.log(`  after them: ${folderTrees(clone)}`)
  console.log(`  a day of syncs (96) at that rate: remote +${mb(96 * each(totals.remoteGrowth))} before gc`)
  for (const [name, path] of [['remote', remote], ['clone', join(clone, '.git')]] as const) {
    git(['-C', path, 'gc', '--quiet'])
    console.log(`  ${name} after git gc: ${mb(objectBytes(path))}`)
  }
}

function sync(cli: string, cwd: string, configPath: string): void {
  const proc = Bun.spawnSync([process.execPath, cli, 'sync', '--config', configPath], { cwd, env: { ...process.env, ...NO_AUTO_GC }, stdout: 'pipe', stderr: 'pipe' })
  if (proc.exitCode !== 0) throw new Error(`witness sync exited ${proc.exitCode}: ${proc.stdout.toString()}${proc.stderr.toString()}`)
}

/** Bytes of the files under a repository's objects folder (loose objects and packs; not the folders themselves). */
function objectBytes(gitDir: string): number {
  const sizes = Bun.spawnSync(['find', join(gitDir, 'objects'), '-type', 'f', '-printf', '%s\n']).stdout.toString()
  return sizes.split('\n').filter(Boolean).reduce((sum, size) => sum + Number(size), 0)
}

/** The sizes of the checkpoint folders' top trees at HEAD (flat `checkpoints/`, daily `checkpoints-by-day/`), where there are any. */
function folderTrees(clone: string): string {
  const sizes = ['checkpoints', 'checkpoints-by-day'].flatMap((folder) => {
    const proc = Bun.spawnSync(['git', '-C', clone, 'cat-file', '-s', `HEAD:${MACHINE}/${folder}`], { stdout: 'pipe', stderr: 'pipe' })
    return proc.exitCode === 0 ? [`${folder}/ tree ${kb(Number(proc.stdout.toString().trim()))}`] : []
  })
  return sizes.join(', ')
}

function git(args: string[], stdin?: string): string {
  const proc = Bun.spawnSync(['git', ...args], { stdin: stdin === undefined ? 'ignore' : new TextEncoder().encode(stdin), stdout: 'pipe', stderr: 'pipe' })
  if (proc.exitCode !== 0) throw new Error(`git ${args.join(' ')}: ${proc.stderr.toString()}`)
  return proc.stdout.toString()
}

function gitBytes(args: string[], stdin: string): number {
  const proc = Bun.spawnSync(['git', ...args], { stdin: new TextEncoder().encode(stdin), stdout: 'pipe', stderr: 'pipe' })
  if (proc.exitCode !== 0) throw new Error(`git ${args.join(' ')}: ${proc.stderr.toString()}`)
  return proc.stdout.length
}

function kb(bytes: number): string {
  return `${(bytes / 1024).toFixed(1)} KB`
}

function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`
}

function seconds(since: number): string {
  return `${((performance.now() - since) / 1000).toFixed(1)} s`
}
