/**
 * Sync: the export of finished rows as NDJSON day files to a git remote (a
 * bare repository by path, `git daemon`, `git http-backend` with a token),
 * exactly once per row, offline-tolerant, concurrent machines, credentials
 * never written anywhere; and `witness fleet` merging every machine.
 */
import { Database } from 'bun:sqlite'
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { openLiveForJob } from '../src/jobs/job-db.ts'
import { checkpointNow } from '../src/proof/checkpoint-job.ts'
import { chainHash, decodeRecord, encodeRecord } from '../src/proof/record.ts'
import { ensureSigningKey } from '../src/proof/keys.ts'
import { runArchive } from '../src/retention/archive-job.ts'
import { unreachable } from '../src/sync/clone.ts'
import type { ExportLine } from '../src/sync/export-line.ts'
import { FLEET_DDL } from '../src/sync/fleet.ts'
import { runSync } from '../src/sync/sync-job.ts'
import { readSyncState, writeSyncState } from '../src/sync/sync-state.ts'
import { MIGRATIONS, REQUEST_LOG_DDL } from '../src/telemetry/schema.ts'
import { HAVE_GIT, HAVE_GIT_DAEMON, HAVE_GIT_HTTP_BACKEND, bareRepo, git, startGitDaemon, startGitHttp } from './support/git.ts'
import { runWitness } from './support/process.ts'
import { readRows } from './support/rows.ts'
import { UP_TO_DATE, commitCount, ids, machine, remoteFiles, remoteLines } from './support/sync-machine.ts'
import { daysAgo, everyRow, finishRows } from './support/seed.ts'
import { tempDir } from './support/temp.ts'

// Each test runs real gits (several syncs, a verify): more than the suite's 20 s default on a loaded CI machine.
setDefaultTimeout(60_000)

const COLUMNS = ['id', 'timestamp', 'agent_name', 'provider', 'model', 'endpoint', 'tokens_in', 'tokens_out', 'latency_ms', 'status', 'error_message', 'request_id']

/** The checkpoint files of a machine's folder in a clone, both layouts (`checkpoints/<id>.json`, `checkpoints-by-day/YYYY/MM/DD/<id>.json`), relative to the clone, in the order of their ids. */
function checkpointFilesIn(clone: string, machineName = 'alpha'): string[] {
  const folder = join(clone, machineName)
  if (!existsSync(folder)) return []
  return (readdirSync(folder, { recursive: true }) as string[])
    .filter((path) => /^checkpoints(-by-day\/\d{4}\/\d{2}\/\d{2})?\/\d{8}\.json$/.test(path))
    .sort((a, b) => basename(a).localeCompare(basename(b)) || a.localeCompare(b))
    .map((path) => `${machineName}/${path}`)
}

/** `witness verify --repo` over a fresh clone of the remote (as anyone holding it would run it). */
async function verifyRemote(bare: string, ...args: string[]) {
  const clone = join(tempDir(), 'clone')
  git(['clone', '-q', bare, clone])
  return runWitness(['verify', '--repo', clone, ...args])
}
/** Verifies a clone of the remote with the machine's key pinned: passes, and says `summary`. */
async function expectRepoVerified(bare: string, keyPath: string, summary: string) {
  const verified = await verifyRemote(bare, '--key', keyPath)
  expect(verified.stdout).toContain(summary)
  expect(verified.code).toBe(0)
  return verified
}

describe.skipIf(!HAVE_GIT)('witness sync to a bare repository by path', () => {
  test('exports finished rows to <machine>/YYYY/MM/DD.ndjson, each line the 11 columns by name then request_id', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    const seeded = await m.seed([
      { timestamp: '2026-11-23T10:00:00.000Z' },
      { timestamp: '2026-11-23T11:00:00.000Z', status: 'fallback', noMeta: true },
      { timestamp: '2026-11-24T09:00:00.000Z', status: 'error' },
      { timestamp: '2026-11-24T09:30:00.000Z', status: 'pending' },
    ])
    const result = await m.sync()
    expect(result.stdout).toBe(`witness sync: alpha: exported 3 rows; ${UP_TO_DATE}\n`)
    expect(result.code).toBe(0)

    const files = remoteFiles(remote)
    expect([...files.keys()]).toEqual(['alpha/2026/11/23.ndjson', 'alpha/2026/11/24.ndjson'])
    // The proof travels beside the rows, under other endings.
    const all = git(['--git-dir', remote, 'ls-tree', '-r', '--name-only', 'main']).split('\n')
    expect(all.some((f) => f.startsWith('alpha/chain/') && f.endsWith('.jsonl'))).toBe(true)
    const lines = [...files.values()].flat()
    for (const line of lines) expect(Object.keys(line)).toEqual(COLUMNS)
    const rows = readRows(m.livePath)
    expect(lines).toEqual([
      { ...rows[0]!, request_id: 'req-0' },
      { ...rows[1]!, request_id: null },
      { ...rows[2]!, request_id: 'req-2' },
    ])
    expect(ids(lines)).toEqual(seeded.slice(0, 3))
    // The clone is the machine's own; the commit says what it holds and nothing else.
    expect(git(['--git-dir', remote, 'log', '--format=%s', 'main'])).toBe('witness sync: alpha: 3 rows, 2 day files, 3 chain entries, 0 checkpoints\n')
  })

  test('running it twice exports nothing twice; a row still pending at the last export goes out once it is finished', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    const [, pendingId] = await m.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }, { timestamp: '2026-11-24T09:30:00.000Z', status: 'pending' }])
    await m.sync()
    const again = await m.sync()
    expect(again.stdout).toBe(`witness sync: alpha: nothing new to export; ${UP_TO_DATE}\n`)
    expect(commitCount(remote)).toBe(1)

    await finishRows(m.livePath, [pendingId!])
    const [later] = await m.seed([{ timestamp: '2026-11-25T01:00:00.000Z' }])
    expect((await m.sync()).stdout).toContain('exported 2 rows')
    const lines = remoteLines(remote)
    expect(ids(lines)).toEqual([1, pendingId!, later!])
    expect(lines.find((l) => l.id === pendingId)).toMatchObject({ status: 'success', timestamp: '2026-11-24T09:30:00.000Z' })
    expect((await m.sync()).stdout).toContain('nothing new to export')
    expect(commitCount(remote)).toBe(2)
  })

  test('a run killed after its commit but before saving its high-water mark, or while writing a file, writes nothing twice', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    await m.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }, { timestamp: '2026-11-24T08:01:00.000Z' }])
    await m.sync()
    // As if the state was never saved: the same rows are looked at again.
    const db = new Database(m.livePath)
    const saved = readSyncState(db)
    writeSyncState(db, { ...saved, watermark: 0 }, new Date().toISOString())
    db.close()
    // And as if a run died while appending: a half line and a stray file in the clone.
    const dayFile = join(m.workDir, 'alpha/2026/11/24.ndjson')
    appendFileSync(dayFile, '{"id":2,"timest')
    writeFileSync(join(m.workDir, 'alpha/stray.tmp'), 'x')

    const rerun = await m.sync()
    expect(rerun.stdout).toContain('nothing new to export')
    expect(ids(remoteLines(remote))).toEqual([1, 2])
    expect(commitCount(remote)).toBe(1)
    expect(readFileSync(dayFile, 'utf8').split('\n').filter(Boolean)).toHaveLength(2)
    expect(existsSync(join(m.workDir, 'alpha/stray.tmp'))).toBe(false)
  })

  test('rows archived before they were exported are exported from their archive, including a pending row finished and archived in between', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    const now = Date.now()
    const [old1, oldPending] = await m.seed([
      { timestamp: daysAgo(now, 60) },
      { timestamp: daysAgo(now, 45), status: 'pending' },
      { timestamp: daysAgo(now, 1) },
    ])
    expect((await m.sync()).stdout).toContain('exported 2 rows')
    const [old2] = await m.seed([{ timestamp: daysAgo(now, 50) }])
    await finishRows(m.livePath, [oldPending!])
    const archived = await m.archive()
    expect(archived.moved).toBe(3) // old1, old2 and the finished oldPending
    expect(readRows(m.livePath).map((r) => r.id)).not.toContain(old2)

    expect((await m.sync()).stdout).toContain('exported 2 rows')
    const lines = remoteLines(remote)
    expect(ids(lines)).toEqual([old1!, oldPending!, 3, old2!].sort((a, b) => a - b))
    const fromArchive = everyRow(m.livePath, m.archiveDir).find((r) => r.row.id === old2)!
    expect(lines.find((l) => l.id === old2)).toEqual({ ...fromArchive.row, request_id: fromArchive.meta!.request_id })
    expect(lines.find((l) => l.id === oldPending)!.status).toBe('success')
  })

  test('a push turned down by the remote is retried after pull --rebase, and lands', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    // The remote refuses the first push (as when another machine's push won the race).
    const marker = join(remote, 'refused-once')
    writeFileSync(join(remote, 'hooks', 'pre-receive'), `#!/bin/sh\nif [ ! -e "${marker}" ]; then touch "${marker}"; echo "busy, try again" >&2; exit 1; fi\n`)
    chmodSync(join(remote, 'hooks', 'pre-receive'), 0o755)
    const m = machine('alpha', remote)
    await m.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }])
    const result = await m.sync()
    expect(existsSync(marker)).toBe(true)
    expect(result.stdout).toContain(UP_TO_DATE)
    expect(ids(remoteLines(remote))).toEqual([1])
  })

  test('without a sync: section the command says so and exits 2', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'witness.yaml'), 'providers: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\n')
    const result = await runWitness(['sync', '--config', join(dir, 'witness.yaml')])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('has no sync: section')
  })
})

describe.skipIf(!HAVE_GIT)('exports that are not this database\'s', () => {
  test('a second machine syncing under the same name stops, exports nothing and says why, instead of skipping its rows as exported', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const a = machine('twin', remote)
    const b = machine('twin', remote)
    await a.seed([{ timestamp: '2026-11-23T10:00:00.000Z', agent: 'on-a' }, { timestamp: '2026-11-23T11:00:00.000Z', agent: 'on-a' }])
    await b.seed([{ timestamp: '2026-11-23T12:00:00.000Z', agent: 'on-b' }, { timestamp: '2026-11-23T13:00:00.000Z', agent: 'on-b' }])
    expect((await a.sync()).code).toBe(0)
    const second = await b.sync()
    expect(second.code).not.toBe(0)
    expect(second.stderr).toContain('already holds row 1 with other content: another machine syncs as "twin", or this database replaced the one exported before')
    expect(remoteLines(remote).map((l) => l.agent_name)).toEqual(['on-a', 'on-a'])
    // Its rows are still owed: nothing was marked exported.
    expect((await b.sync()).code).not.toBe(0)
  })

  test('a second machine under the same name whose rows fall on other days is stopped by its key, not let in to fork the folder', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const a = machine('twin', remote)
    const b = machine('twin', remote)
    await ensureSigningKey(a.keyPath)
    await ensureSigningKey(b.keyPath)
    await a.seed([{ timestamp: '2026-11-23T10:00:00.000Z', agent: 'on-a' }])
    await b.seed([{ timestamp: '2026-11-20T12:00:00.000Z', agent: 'on-b' }])
    expect((await a.sync()).code).toBe(0)
    const published = readFileSync(join(a.workDir, 'twin', 'public-key.json'), 'utf8')
    const second = await b.sync()
    expect(second.code).not.toBe(0)
    expect(second.stderr).toMatch(/twin\/public-key\.json in the remote is key \w+, not this machine's key \w+: another machine syncs as "twin"/)
    expect(remoteLines(remote).map((l) => l.agent_name)).toEqual(['on-a'])
    expect(git(['--git-dir', remote, 'show', 'main:twin/public-key.json'])).toBe(published)
    await a.seed([{ timestamp: '2026-11-24T10:00:00.000Z', agent: 'on-a' }])
    expect((await a.sync()).code).toBe(0)
    await expectRepoVerified(remote, a.keyPath, 'twin')
  })

  test('a remote that refuses (no such repository, a hook declining) fails the run (exit 1); offline does not; no database is exit 2', async () => {
    const base = tempDir()
    const missing = machine('alpha', join(base, 'no-such.git'))
    await missing.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }])
    const none = await missing.sync()
    expect(none.stdout).toMatch(/remote not updated \(.*does not appear to be a git repository/)
    expect(none.code).toBe(1)

    const guarded = bareRepo(join(base, 'guarded.git'))
    const m = machine('beta', guarded)
    await m.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    writeFileSync(join(guarded, 'hooks', 'pre-receive'), '#!/bin/sh\necho "main is protected" >&2\nexit 1\n')
    chmodSync(join(guarded, 'hooks', 'pre-receive'), 0o755)
    await m.seed([{ timestamp: '2026-11-24T09:00:00.000Z' }])
    const declined = await m.sync()
    expect(declined.stdout).toMatch(/remote not updated \(.*main is protected.*\); 1 commit\(s\) with 1 rows wait to be pushed/)
    expect(declined.code).toBe(1)

    const gone = machine('gamma', guarded)
    writeFileSync(gone.configPath, readFileSync(gone.configPath, 'utf8').replace('database: ./w.db', 'database: ./typo.db'))
    const noDb = await gone.sync()
    expect(noDb.stderr).toContain(`no database at ${join(gone.dir, 'typo.db')}`)
    expect(noDb.code).toBe(2)

    // Over HTTP, a server down behind its proxy or overloaded is offline; one that refuses is not.
    const http = (status: number) => `fatal: unable to access 'https://git.example/t.git/': The requested URL returned error: ${status}`
    // A 500 is the server's own failure, which waiting will not mend: said, exit 1.
    expect([502, 503, 504, 429, 500, 501, 403, 404].map((status) => unreachable(http(status)))).toEqual([true, true, true, true, false, false, false, false])
  })

  test('a machine renamed in its config stops the sync and says how to rename; done that way, the new folder holds every row and verifies', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('beta', remote)
    await ensureSigningKey(m.keyPath)
    await m.seed([{ timestamp: '2026-11-23T10:00:00.000Z' }, { timestamp: '2026-11-23T11:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    writeFileSync(m.configPath, readFileSync(m.configPath, 'utf8').replace('machine: beta', 'machine: beta2'))
    await m.seed([{ timestamp: '2026-11-24T10:00:00.000Z' }])
    const renamed = await m.sync()
    expect(renamed.code).toBe(1)
    expect(renamed.stderr).toContain('this database was exported as "beta", and machine is now "beta2"; nothing exported. To rename: delete "beta/" from the remote')
    expect(remoteLines(remote, 'beta2')).toEqual([])

    // Done as it says: the old folder out of the remote, work_dir aside, sync again.
    const edit = join(tempDir(), 'edit')
    git(['clone', '-q', remote, edit])
    git(['-c', 'user.name=op', '-c', 'user.email=op@example.com', 'rm', '-q', '-r', 'beta'], edit)
    git(['-c', 'user.name=op', '-c', 'user.email=op@example.com', 'commit', '-q', '-m', 'rename beta to beta2'], edit)
    git(['push', '-q', 'origin', 'main'], edit)
    renameSync(m.workDir, `${m.workDir}.old`)
    expect((await m.sync()).code).toBe(0)
    expect(remoteLines(remote, 'beta')).toEqual([])
    expect(ids(remoteLines(remote, 'beta2'))).toEqual([1, 2, 3])
    const verified = await verifyRemote(remote, '--machine', 'beta2', '--key', m.keyPath)
    expect(verified.stdout).toContain('beta2')
    expect(verified.code).toBe(0)
  })

  test('a rename is caught by the key too, when the sync state no longer knows the old name (a sync to another remote in between)', async () => {
    const base = tempDir()
    const remote = bareRepo(join(base, 'one.git'))
    const other = bareRepo(join(base, 'two.git'))
    const m = machine('gamma', remote)
    await ensureSigningKey(m.keyPath)
    await m.seed([{ timestamp: '2026-11-23T10:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    const config = readFileSync(m.configPath, 'utf8')
    writeFileSync(m.configPath, config.replace(remote, other).replace('work_dir: ./clone', 'work_dir: ./clone-two'))
    expect((await m.sync()).code).toBe(0)
    writeFileSync(m.configPath, config.replace('machine: gamma', 'machine: gamma2'))
    const renamed = await m.sync()
    expect(renamed.code).toBe(1)
    expect(renamed.stderr).toContain('this database was exported as "gamma", and machine is now "gamma2"')
    expect(remoteLines(remote, 'gamma2')).toEqual([])
  })

  test('exported anew under a new name after archive_keep_days deleted months: verify --repo names the entries deleted (it cannot tell them from entries removed by hand), and verify --archives on the machine links across them', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('beta', remote)
    await ensureSigningKey(m.keyPath)
    const now = Date.now()
    await m.seed([{ timestamp: daysAgo(now, 200) }, { timestamp: daysAgo(now, 150) }, { timestamp: daysAgo(now, 1) }])
    expect((await m.sync()).code).toBe(0)
    await runArchive({ livePath: m.livePath, retention: { keepDays: 30, archiveDir: m.archiveDir, archiveKeepDays: 60, maxDbMb: 512 }, syncConfigured: true, now: () => now, signer: { keyPath: m.keyPath, machine: 'beta' } })
    // The README's rename: the old folder removed from the remote, work_dir moved aside, synced under the new name.
    const work = join(tempDir(), 'work')
    git(['clone', '-q', '-b', 'main', remote, work])
    git(['rm', '-rq', 'beta'], work)
    git(['-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '-qm', 'rename beta'], work)
    git(['push', '-q', 'origin', 'main'], work)
    renameSync(m.workDir, `${m.workDir}.old`)
    writeFileSync(m.configPath, readFileSync(m.configPath, 'utf8').replace('machine: beta', 'machine: beta2'))
    expect((await m.sync()).code).toBe(0)
    const verified = await verifyRemote(remote, '--machine', 'beta2', '--key', m.keyPath)
    expect(verified.stdout).toContain('chain entries 1-2 are missing')
    expect(verified.code).toBe(1)
    const local = await runWitness(['verify', '--config', m.configPath, '--archives'])
    expect(local.stdout).toContain('were deleted with their archives (retention.archive_keep_days); the chain links across them')
    expect(local.code).toBe(0)
  })

  test('a database upgraded from before the chain existed: its export verifies, the rows from before noted, as verify --db notes them', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    await ensureSigningKey(m.keyPath)
    const old = new Database(m.livePath, { create: true })
    old.exec('PRAGMA auto_vacuum = INCREMENTAL')
    old.exec('PRAGMA journal_mode = WAL')
    old.exec(REQUEST_LOG_DDL)
    for (const migration of MIGRATIONS.slice(0, 2)) old.exec(migration)
    old.exec('PRAGMA user_version = 2')
    for (const hour of ['01', '02', '03']) {
      old.query(`INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status, latency_ms) VALUES ('2026-11-20T${hour}:00:00.000Z', 'ezra', 'kimi', 'k', 'e', 'success', 5)`).run()
    }
    old.close()
    // Verified as it is, before anything migrates it: nothing in it is proved, and verify says what to do.
    const asItIs = await runWitness(['verify', '--db', m.livePath])
    expect(asItIs.stdout + asItIs.stderr).toContain('has no hash chain (schema version 2): nothing in it is proved. If it predates the chain, open it once with witness init')
    expect(asItIs.code).toBe(1)
    await m.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }]) // migrates it: the chain starts at row 4
    expect((await m.sync()).code).toBe(0)
    const verified = await verifyRemote(remote, '--key', m.keyPath)
    expect(verified.stdout).toContain('3 row(s) were finished before the chain existed and are not covered by it')
    expect(verified.code).toBe(0)
  })

  test('a row stamped beyond year 9999, or not in ISO-8601, goes to 0000/00/00.ndjson; the rows after it still go out', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    // And one with no zone (SQLite's datetime()), which a time zone would otherwise put on one day or the next.
    await m.seed([{ timestamp: '2026-11-23T10:00:00.000Z' }, { timestamp: new Date(Date.UTC(10000, 0, 1)).toISOString() }, { timestamp: '2026-11-23 23:30:00' }, { timestamp: '2026-11-23T11:00:00.000Z' }])
    const result = await m.sync()
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const files = remoteFiles(remote)
    expect([...files.keys()].sort()).toEqual(['alpha/0000/00/00.ndjson', 'alpha/2026/11/23.ndjson'])
    expect(ids(files.get('alpha/0000/00/00.ndjson')!)).toEqual([2, 3])
    expect(ids(remoteLines(remote))).toEqual([1, 2, 3, 4])
  })
})

describe.skipIf(!HAVE_GIT)('an export edited by hand', () => {
  async function exported() {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    expect((await runWitness(['init', '--config', m.configPath])).code).toBe(0)
    await m.seed([{ timestamp: '2026-11-23T10:00:00.000Z' }, { timestamp: '2026-11-23T11:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    const clone = join(tempDir(), 'clone')
    git(['clone', '-q', '-b', 'main', remote, clone])
    return { m, remote, clone, day: join(clone, 'alpha/2026/11/23.ndjson') }
  }

  test('a forged copy of a row put before the real line: verify --repo names both and fails, fleet leaves the row out and says so', async () => {
    const { clone, day } = await exported()
    const text = readFileSync(day, 'utf8')
    const first = JSON.parse(text.split('\n')[0]!)
    writeFileSync(day, `${JSON.stringify({ ...first, provider: 'forged', tokens_out: 999999 })}\n${text}`)
    const verified = await runWitness(['verify', '--repo', clone])
    expect(verified.code).toBe(1)
    expect(verified.stdout).toContain('row 1 is on two lines that differ (alpha/2026/11/23.ndjson:1 and alpha/2026/11/23.ndjson:2): neither is taken')
    const out = join(tempDir(), 'fleet.db')
    const fleet = await runWitness(['fleet', '--repo', clone, '--out', out])
    expect(fleet.stderr).toContain('left out 1 row(s) whose id is on two lines that differ (check them with verify --repo): alpha/1')
    const db = new Database(out, { readonly: true })
    expect(db.query('SELECT origin_id, provider FROM fleet_log').all()).toEqual([{ origin_id: 2, provider: 'kimi' }])
    db.close()
  })

  test('lines that are not JSON, in a day file or a chain file: verify --repo names them, and sync goes on', async () => {
    const { m, remote, clone, day } = await exported()
    appendFileSync(day, '{"id":7, cut short\n')
    const verified = await runWitness(['verify', '--repo', clone])
    expect(verified.code).toBe(1)
    expect(verified.stdout).toContain('alpha/2026/11/23.ndjson:3 is not a JSON line')

    // The machine's own clone gets a broken chain line; its next sync still exports.
    const chainDir = join(m.workDir, 'alpha', 'chain')
    const chainFile = readdirSync(chainDir, { recursive: true }).map(String).find((f) => f.endsWith('.jsonl'))!
    appendFileSync(join(chainDir, chainFile), 'not json\n')
    await m.seed([{ timestamp: '2026-11-23T12:00:00.000Z' }])
    const again = await m.sync()
    expect(again.stderr).toBe('')
    expect(again.code).toBe(0)
    expect(ids(remoteLines(remote))).toEqual([1, 2, 3])
  })

  test('a chain line whose record or prev_hash is no text (put there by hand) is an altered entry, not a crash', async () => {
    const { clone } = await exported()
    const chainFile = (readdirSync(join(clone, 'alpha/chain'), { recursive: true }) as string[]).find((f) => f.endsWith('.jsonl'))!
    const path = join(clone, 'alpha/chain', chainFile)
    const [first, ...rest] = readFileSync(path, 'utf8').trimEnd().split('\n')
    const entry = JSON.parse(first!) as Record<string, unknown>
    writeFileSync(path, `${[JSON.stringify({ ...entry, record: { forged: true }, prev_hash: ['x'] }), ...rest].join('\n')}\n`)
    const verified = await runWitness(['verify', '--repo', clone])
    expect(verified.stderr).toBe('')
    expect(verified.stdout).toContain(`chain entry ${String(entry.seq)} (row ${String(entry.log_id)}) was altered`)
    expect(verified.code).toBe(1)
  })
})

/** Machine alpha synced three times, two rows each (chain entries 1-6, checkpoints 1-3), to a new bare remote. */
async function syncedThrice() {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    expect((await runWitness(['init', '--config', m.configPath])).code).toBe(0)
    for (const hour of ['08', '09', '10']) {
      await m.seed([{ timestamp: `2026-11-24T${hour}:00:00.000Z` }, { timestamp: `2026-11-24T${hour}:30:00.000Z` }])
      expect((await m.sync()).code).toBe(0)
    }
  return { remote, m }
}

describe.skipIf(!HAVE_GIT)('an export rewritten in a later commit', () => {
  const who = ['-c', 'user.name=x', '-c', 'user.email=x@x']

  /** Three syncs of two rows each (chain entries 1-6, checkpoints 1-3), and a clone of the remote to rewrite. */
  async function synced() {
    const { remote, m } = await syncedThrice()
    const clone = join(tempDir(), 'clone')
    git(['clone', '-q', '-b', 'main', remote, clone])
    expect((await runWitness(['verify', '--repo', clone, '--key', m.keyPath])).code).toBe(0)
    return { remote, m, clone }
  }

  /** The folder's chain entries (with their files) and rows, as they are in `clone`. */
  function exported(clone: string) {
    const chainFiles = (readdirSync(join(clone, 'alpha/chain'), { recursive: true }) as string[]).filter((f) => f.endsWith('.jsonl')).map((f) => join(clone, 'alpha/chain', f))
    const entries = chainFiles.flatMap((file) => readFileSync(file, 'utf8').split('\n').filter(Boolean).map((line) => ({ file, entry: JSON.parse(line) })))
    entries.sort((a, b) => a.entry.seq - b.entry.seq)
    const day = join(clone, 'alpha/2026/11/24.ndjson')
    const rows = readFileSync(day, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))
    return { chainFiles, entries, day, rows }
  }

  /** The entries after `seq` as groq's, chained anew from the entry at `seq`. */
  function forgedAfter(entries: { entry: { seq: number; hash: string; record: string; prev_hash: string; log_id: number } }[], seq: number) {
    let prev = entries.find((e) => e.entry.seq === seq)!.entry.hash
    return entries
      .filter((e) => e.entry.seq > seq)
      .map(({ entry }) => {
        const record = decodeRecord(entry.record)!
        const forged = { ...entry, prev_hash: prev, record: encodeRecord({ ...record.row, provider: 'groq' }, record.facts) }
        forged.hash = chainHash(prev, forged.record)
        prev = forged.hash
        return forged
      })
  }

  /** Commits everything in `clone` as a push would carry it, then verifies it with the machine's key pinned. */
  async function commitAndVerify(clone: string, keyPath: string, message: string) {
    git(['add', '-A'], clone)
    git([...who, 'commit', '-qm', message], clone)
    return runWitness(['verify', '--repo', clone, '--key', keyPath])
  }

  /** The attack: the checkpoints after the first removed, the rows after it made groq's, the chain recomputed over them (uncommitted). */
  function rewriteAfterFirstCheckpoint(clone: string) {
    const checkpoints = checkpointFilesIn(clone)
    const first = JSON.parse(readFileSync(join(clone, checkpoints[0]!), 'utf8')) as { seq: number }
    for (const path of checkpoints.slice(1)) rmSync(join(clone, path))
    const { chainFiles, entries, day, rows } = exported(clone)
    const forged = new Map(forgedAfter(entries, first.seq).map((e) => [e.seq, e]))
    for (const file of chainFiles) writeFileSync(file, `${entries.filter((e) => e.file === file).map((e) => JSON.stringify(forged.get(e.entry.seq) ?? e.entry)).join('\n')}\n`)
    const rewritten = new Set([...forged.values()].map((e) => e.log_id))
    writeFileSync(day, `${rows.map((row) => JSON.stringify(rewritten.has(row.id) ? { ...row, provider: 'groq' } : row)).join('\n')}\n`)
    return checkpoints
  }

  test('the checkpoints after the first removed and every row after it rewritten, chain recomputed: verify --repo --key names the commit and checks the removed checkpoints, read back from the history', async () => {
    const { m, clone } = await synced()
    const checkpoints = rewriteAfterFirstCheckpoint(clone)
    git([...who, 'commit', '-qam', 'tidy'], clone)
    const sha = git(['rev-parse', 'HEAD'], clone).trim().slice(0, 12)

    const verified = await runWitness(['verify', '--repo', clone, '--key', m.keyPath])
    expect(verified.code).toBe(1)
    expect(checkpoints[1]).toMatch(/^alpha\/checkpoints-by-day\/\d{4}\/\d{2}\/\d{2}\/00000002\.json$/)
    expect(verified.stdout).toContain(`checkpoint 2 (${checkpoints[1]}, entry 4) was removed or changed in commit ${sha}: sync never removes or changes a checkpoint`)
    expect(verified.stdout).toContain('checkpoint 2 does not match the chain: entry 4 (row 4) has another hash than the one signed')
    expect(verified.stdout).toContain('checkpoint 3 does not match the chain: entry 6 (row 6) has another hash than the one signed')
    // git's environment cannot change what the history check reads: with glob pathspecs `*` would stop at a `/`.
    for (const env of [{ GIT_GLOB_PATHSPECS: '1' }, { GIT_LITERAL_PATHSPECS: '1' }, { GIT_ICASE_PATHSPECS: '1' }] as Record<string, string>[]) {
      const again = await runWitness(['verify', '--repo', clone, '--key', m.keyPath], env)
      expect({ env, code: again.code }).toEqual({ env, code: 1 })
      expect(again.stdout).toContain(`checkpoint 2 (${checkpoints[1]}, entry 4) was removed or changed in commit ${sha}`)
    }
  })

  test('the same rewrite only appended on a side branch and merged with -s ours (a fast-forward push, no force): found all the same', async () => {
    const { remote, m, clone } = await synced()
    const { entries, chainFiles, day, rows } = exported(clone)
    git(['checkout', '-q', '-b', 'side', git(['rev-list', '--reverse', 'HEAD'], clone).split('\n')[0]!], clone)
    const first = JSON.parse(readFileSync(join(clone, checkpointFilesIn(clone)[0]!), 'utf8')) as { seq: number }
    const forged = forgedAfter(entries, first.seq)
    appendFileSync(chainFiles[0]!, forged.map((e) => `${JSON.stringify(e)}\n`).join(''))
    appendFileSync(day, forged.map((e) => `${JSON.stringify({ ...rows.find((row) => row.id === e.log_id), provider: 'groq' })}\n`).join(''))
    git([...who, 'commit', '-qam', 'side'], clone)
    git([...who, 'merge', '-q', '-s', 'ours', 'main', '-m', 'merge main'], clone)
    git(['checkout', '-q', 'main'], clone)
    git(['merge', '-q', '--ff-only', 'side'], clone)
    git(['push', '-q', 'origin', 'main'], clone)
    const fresh = join(tempDir(), 'fresh')
    git(['clone', '-q', '-b', 'main', remote, fresh])
    expect(checkpointFilesIn(fresh)).toHaveLength(1)
    const verified = await runWitness(['verify', '--repo', fresh, '--key', m.keyPath])
    expect(verified.code).toBe(1)
    expect(verified.stdout).toMatch(/checkpoint 2 \(alpha\/checkpoints-by-day\/\d{4}\/\d{2}\/\d{2}\/00000002\.json, entry 4\) was removed or changed in commit [0-9a-f]{12}/)
    expect(verified.stdout).toContain('checkpoint 3 does not match the chain')
  })

  test('a chain-start.json or chain-pruned.jsonl added by hand cannot pass forged rows off as older than the chain, or excuse entries', async () => {
    const { m, clone } = await synced()
    const { day, rows, chainFiles, entries } = exported(clone)
    appendFileSync(day, `${JSON.stringify({ ...rows[0], id: 1000, provider: 'groq', request_id: 'forged' })}\n`)
    writeFileSync(join(clone, 'alpha/chain-start.json'), `${JSON.stringify({ first_log_id: 1_000_000 })}\n`)
    const forgedRow = await commitAndVerify(clone, m.keyPath, 'add')
    expect(forgedRow.code).toBe(1)
    expect(forgedRow.stdout).toContain('row 1000 is not in the chain')
    // Every chain file gone, the rows rewritten, and the deleted entries claimed as retention's.
    for (const file of chainFiles) rmSync(file)
    writeFileSync(day, `${rows.map((row) => JSON.stringify({ ...row, provider: 'groq' })).join('\n')}\n`)
    const last = entries.at(-1)!.entry
    writeFileSync(join(clone, 'alpha/chain-pruned.jsonl'), `${JSON.stringify({ from_seq: 1, to_seq: last.seq, prev_hash: '0'.repeat(64), hash: last.hash })}\n`)
    const rewritten = await commitAndVerify(clone, m.keyPath, 'tidy')
    expect(rewritten.code).toBe(1)
    expect(rewritten.stdout).toContain('rows 1-6 are not in the chain')
    expect(rewritten.stdout).toContain('the log ends before checkpoint 1')
  })

  test('the rewrite in a folder renamed in the same commit (the checkpoints gone with the old folder) is found by the key that signed them', async () => {
    const { m, clone } = await synced()
    const checkpoints = rewriteAfterFirstCheckpoint(clone)
    renameSync(join(clone, 'alpha'), join(clone, 'alpha-01'))
    const verified = await commitAndVerify(clone, m.keyPath, 'rename')
    expect(verified.code).toBe(1)
    expect(verified.stdout).toContain(`checkpoint 2 (${checkpoints[1]}, entry 4), signed by this machine's key in a folder gone since, was removed or changed in commit`)
    expect(verified.stdout).toContain('checkpoint 2 does not match the chain')
  })

  test('replace refs fetched into the clone do not hide the commit that removed checkpoints; a checkpoint replaced by a link is named, not a crash', async () => {
    const { m, clone } = await synced()
    for (const path of checkpointFilesIn(clone).slice(1)) rmSync(join(clone, path))
    git(['add', '-A'], clone)
    git([...who, 'commit', '-qm', 'drop'], clone)
    const dropped = git(['rev-parse', 'HEAD'], clone).trim()
    const orphan = git([...who, 'commit-tree', `${dropped}^{tree}`, '-m', 'clean'], clone).trim()
    git(['replace', dropped, orphan], clone)
    const replaced = await runWitness(['verify', '--repo', clone, '--key', m.keyPath])
    expect(replaced.code).toBe(1)
    expect(replaced.stdout).toContain(`was removed or changed in commit ${dropped.slice(0, 12)}`)
    const firstPath = checkpointFilesIn(clone)[0]!
    const first = join(clone, firstPath)
    rmSync(first)
    symlinkSync(first, first)
    const looped = await runWitness(['verify', '--repo', clone, '--key', m.keyPath])
    expect(looped.code).toBe(1)
    expect(looped.stdout).toContain(`checkpoint 1 (${firstPath}, entry 2) is in the clone`)
  })

  test("a clone whose checkout turned the line ends into CRLF (core.autocrlf, Git for Windows' default) verifies", async () => {
    const { remote, m } = await synced()
    const crlf = join(tempDir(), 'crlf')
    git(['-c', 'core.autocrlf=true', 'clone', '-q', '-b', 'main', remote, crlf])
    expect(readFileSync(join(crlf, checkpointFilesIn(crlf)[0]!), 'utf8')).toContain('\r\n')
    const verified = await runWitness(['verify', '--repo', crlf, '--key', m.keyPath])
    expect(verified.stdout).toContain('verified')
    expect(verified.code).toBe(0)
  })

  test('a shallow clone, or a folder copied into another repository, says what of the history it could not check', async () => {
    const { remote, m } = await synced()
    const shallow = join(tempDir(), 'shallow')
    git(['clone', '-q', '--depth', '1', '-b', 'main', `file://${remote}`, shallow])
    const fromShallow = await runWitness(['verify', '--repo', shallow, '--key', m.keyPath])
    expect(fromShallow.code).toBe(0)
    expect(fromShallow.stdout).toContain('note: the clone is shallow: a checkpoint removed before its oldest commit cannot be found (verify a full clone)')
    const outer = join(tempDir(), 'outer')
    git(['init', '-q', '-b', 'main', outer])
    writeFileSync(join(outer, 'README'), 'other things\n')
    git(['add', '-A'], outer)
    git([...who, 'commit', '-qm', 'other'], outer)
    const inner = join(outer, 'copy')
    git(['clone', '-q', '-b', 'main', remote, inner])
    rmSync(join(inner, '.git'), { recursive: true })
    const fromCopy = await runWitness(['verify', '--repo', inner, '--key', m.keyPath])
    expect(fromCopy.stdout).toContain(`note: its git history was not checked: ${inner} is inside the git repository ${outer}, not a clone of the export`)
  })
})

describe.skipIf(!HAVE_GIT)('a remote whose history was rewritten', () => {
  test('sync says so and how to recover; moving work_dir aside and syncing again puts every row back', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    await m.seed([{ timestamp: '2026-12-01T10:00:00.000Z' }, { timestamp: '2026-12-01T11:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    // Someone drops row 2 from the day file, amends the commit and force-pushes.
    const other = join(tempDir(), 'other')
    git(['clone', '-q', '-b', 'main', remote, other])
    const day = join(other, 'alpha/2026/12/01.ndjson')
    writeFileSync(day, `${readFileSync(day, 'utf8').split('\n')[0]}\n`)
    git(['-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '-qam', 'rewritten', '--amend'], other)
    git(['push', '-qf', 'origin', 'main'], other)
    await m.seed([{ timestamp: '2026-12-01T12:00:00.000Z' }])
    for (let run = 0; run < 2; run++) {
      const wedged = await m.sync()
      expect(wedged.code).not.toBe(0)
      expect(wedged.stderr).toContain('the remote branch main was rewritten (force-pushed)')
      expect(wedged.stderr).toContain('move sync.work_dir aside and run witness sync again')
    }
    renameSync(m.workDir, `${m.workDir}.old`)
    expect((await m.sync()).code).toBe(0)
    expect(ids(remoteLines(remote))).toEqual([1, 2, 3])
  })
})

describe.skipIf(!HAVE_GIT)('a push whose outcome this clone never learned (it timed out, and landed)', () => {
  test('the next fetch finds it in the remote and remembers it as pushed, so a later force-push dropping it is told as a rewrite', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    await m.seed([{ timestamp: '2026-12-01T10:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    const first = git(['rev-parse', 'HEAD'], m.workDir).trim()
    await m.seed([{ timestamp: '2026-12-01T11:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    const landed = git(['rev-parse', 'HEAD'], m.workDir).trim()
    // As after a push that timed out here: the clone still takes the first commit for its last pushed.
    git(['update-ref', 'refs/witness/pushed', first], m.workDir)
    expect((await m.sync()).code).toBe(0)
    expect(git(['rev-parse', 'refs/witness/pushed'], m.workDir).trim()).toBe(landed)
    // Someone drops the landed commit and rewrites a line of the first, then force-pushes.
    const other = join(tempDir(), 'other')
    git(['clone', '-q', '-b', 'main', remote, other])
    git(['reset', '-q', '--hard', 'HEAD~1'], other)
    const day = join(other, 'alpha/2026/12/01.ndjson')
    writeFileSync(day, readFileSync(day, 'utf8').replace('"kimi"', '"groq"'))
    git(['-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '-qam', 'rewritten'], other)
    git(['push', '-qf', 'origin', 'main'], other)
    await m.seed([{ timestamp: '2026-12-01T12:00:00.000Z' }])
    const wedged = await m.sync()
    expect(wedged.code).not.toBe(0)
    expect(wedged.stderr).toContain('the remote branch main was rewritten (force-pushed)')
  })
})

describe.skipIf(!HAVE_GIT)('a remote whose branch is gone, and git killed mid-update', () => {
  test('a branch deleted on the remote, or the repository made anew and empty: the next sync pushes everything again', async () => {
    for (const reset of ['branch', 'repository'] as const) {
      const remote = bareRepo(join(tempDir(), 'telemetry.git'))
      const m = machine('alpha', remote)
      await m.seed([{ timestamp: '2026-12-01T10:00:00.000Z' }])
      expect((await m.sync()).code).toBe(0)
      if (reset === 'branch') git(['--git-dir', remote, 'update-ref', '-d', 'refs/heads/main'])
      else {
        rmSync(remote, { recursive: true })
        bareRepo(remote)
      }
      const again = await m.sync()
      expect(again.code).toBe(0)
      expect(ids(remoteLines(remote))).toEqual([1])
    }
  })

  test("a lock file left by a git killed mid-update (the sync kills git past its time limit) does not stop the runs after it", async () => {
    for (const lock of ['refs/remotes/origin/main.lock', 'refs/heads/main.lock', 'HEAD.lock', 'index.lock']) {
      const remote = bareRepo(join(tempDir(), 'telemetry.git'))
      const m = machine('alpha', remote)
      await m.seed([{ timestamp: '2026-12-01T10:00:00.000Z' }])
      expect((await m.sync()).code).toBe(0)
      writeFileSync(join(m.workDir, '.git', lock), '')
      await m.seed([{ timestamp: '2026-12-01T11:00:00.000Z' }])
      const next = await m.sync()
      expect([lock, next.code, next.stderr]).toEqual([lock, 0, ''])
      expect(ids(remoteLines(remote))).toEqual([1, 2])
    }
  })
})

describe.skipIf(!HAVE_GIT)('an archive that cannot be read, or is not there', () => {
  /** A machine with two rows in two archive months (120 and 60 days back) and one live (2 days back). */
  async function archivedMachine() {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    expect((await runWitness(['init', '--config', m.configPath])).code).toBe(0)
    const now = Date.now()
    await m.seed([{ timestamp: daysAgo(now, 120) }, { timestamp: daysAgo(now, 60) }, { timestamp: daysAgo(now, 2) }])
    await m.archive()
    return { remote, m, now }
  }

  test('does not hold back the live rows: they go out, the file is named, the run exits 1, and its rows go out once it is repaired', async () => {
    const { remote, m, now } = await archivedMachine()
    const file = readdirSync(m.archiveDir).filter((f) => f.startsWith('request_log-')).sort()[0]!
    const good = readFileSync(join(m.archiveDir, file))
    writeFileSync(join(m.archiveDir, file), 'garbage')
    await m.seed([{ timestamp: daysAgo(now, 1) }])
    const broken = await m.sync()
    expect(broken.code).toBe(1)
    expect(broken.stdout).toContain(`ARCHIVES UNREADABLE, their rows still owed: ${file}`)
    expect(ids(remoteLines(remote))).toEqual([2, 3, 4])
    writeFileSync(join(m.archiveDir, file), good)
    const repaired = await m.sync()
    expect(repaired.code).toBe(0)
    expect(ids(remoteLines(remote))).toEqual([1, 2, 3, 4])
    await expectRepoVerified(remote, m.keyPath, 'verified')
  })

  test('the directory gone (a disk not mounted) or a month file deleted: the run exits 1 naming it, the mark stays, and those rows go out once it is back', async () => {
    const { remote, m } = await archivedMachine()
    const aside = `${m.archiveDir}.unmounted`
    renameSync(m.archiveDir, aside)
    const gone = await m.sync()
    expect(gone.code).toBe(1)
    expect(gone.stdout).toContain(`ARCHIVES UNREADABLE, their rows still owed: ${m.archiveDir}: the archive directory does not exist`)
    expect(ids(remoteLines(remote))).toEqual([3])
    renameSync(aside, m.archiveDir)

    const file = readdirSync(m.archiveDir).filter((f) => f.startsWith('request_log-')).sort()[0]!
    const month = file.slice('request_log-'.length, 'request_log-'.length + 7)
    const away = join(tempDir(), file)
    renameSync(join(m.archiveDir, file), away)
    const deleted = await m.sync()
    expect(deleted.code).toBe(1)
    expect(deleted.stdout).toContain(`request_log-${month}.db: not in ${m.archiveDir}`)
    expect(ids(remoteLines(remote))).toEqual([2, 3])
    renameSync(away, join(m.archiveDir, file))
    expect((await m.sync()).code).toBe(0)
    expect(ids(remoteLines(remote))).toEqual([1, 2, 3])
    await expectRepoVerified(remote, m.keyPath, 'verified')
  })
})

describe.skipIf(!HAVE_GIT_DAEMON)('witness sync to a git daemon on loopback', () => {
  test('two machines syncing into one remote at the same time all land, each in its own folder, none lost', async () => {
    const base = tempDir()
    const remote = bareRepo(join(base, 'telemetry.git'))
    const daemon = await startGitDaemon(base)
    try {
      const machines = [machine('alpha', daemon.url('telemetry.git')), machine('beta', daemon.url('telemetry.git'))]
      const seeded = new Map<string, number[]>(machines.map((m) => [m.name, []]))
      for (let round = 0; round < 3; round++) {
        for (const m of machines) {
          seeded.get(m.name)!.push(...(await m.seed(Array.from({ length: 4 }, (_, i) => ({ timestamp: daysAgo(Date.now(), 0, (round * 4 + i) * 60_000) })))))
        }
        const results = await Promise.all(machines.map((m) => m.sync()))
        for (const [i, r] of results.entries()) expect(r.stdout).toBe(`witness sync: ${machines[i]!.name}: exported 4 rows; ${UP_TO_DATE}\n`)
      }
      for (const m of machines) expect(ids(remoteLines(remote, m.name))).toEqual(seeded.get(m.name)!)
      expect([...remoteFiles(remote).keys()].every((p) => p.startsWith('alpha/') || p.startsWith('beta/'))).toBe(true)
      expect(commitCount(remote)).toBe(6)
    } finally {
      await daemon.stop()
    }
  })

  test('with the remote down, commits stay local and sync says how many commits and rows wait; once it is back they are pushed', async () => {
    const base = tempDir()
    const remote = bareRepo(join(base, 'telemetry.git'))
    const daemon = await startGitDaemon(base)
    try {
      const m = machine('alpha', daemon.url('telemetry.git'))
      await m.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }])
      expect((await m.sync()).stdout).toContain(UP_TO_DATE)

      await daemon.stop()
      await m.seed([{ timestamp: '2026-11-24T09:00:00.000Z' }, { timestamp: '2026-11-24T09:01:00.000Z' }, { timestamp: '2026-11-25T09:00:00.000Z' }])
      const down = await m.sync()
      expect(down.code).toBe(0)
      expect(down.stdout).toMatch(/exported 3 rows; remote not updated \(.+\); 1 commit\(s\) with 3 rows wait to be pushed/)
      await m.seed([{ timestamp: '2026-11-25T10:00:00.000Z' }, { timestamp: '2026-11-25T10:01:00.000Z' }])
      expect((await m.sync()).stdout).toMatch(/exported 2 rows; remote not updated \(.+\); 2 commit\(s\) with 5 rows wait to be pushed/)
      expect(ids(remoteLines(remote))).toEqual([1])
      // Committed is not pushed: archive_keep_days may delete an archive only for rows the remote holds.
      const state = () => {
        const db = new Database(m.livePath, { readonly: true })
        try {
          return readSyncState(db)
        } finally {
          db.close()
        }
      }
      expect(state()).toMatchObject({ watermark: 6, pushed: { watermark: 1, pending: [] } })

      await daemon.start()
      expect((await m.sync()).stdout).toBe(`witness sync: alpha: nothing new to export; pushed 2 earlier commit(s) with 5 rows; ${UP_TO_DATE}\n`)
      expect(ids(remoteLines(remote))).toEqual([1, 2, 3, 4, 5, 6])
      expect(commitCount(remote)).toBe(3)
      expect(state()).toMatchObject({ watermark: 6, pushed: { watermark: 6, pending: [] } })
    } finally {
      await daemon.stop()
    }
  })
})

describe.skipIf(!HAVE_GIT_HTTP_BACKEND)('witness sync over HTTP with a token', () => {
  test('the token goes through git credentials only, and never appears in git log, the clone, output, rows or a credential store', async () => {
    const base = tempDir()
    const remote = bareRepo(join(base, 'telemetry.git'))
    const token = `wst_${crypto.randomUUID().replaceAll('-', '')}`
    const wrong = `wst_${crypto.randomUUID().replaceAll('-', '')}`
    const http = startGitHttp(base, token)
    // A user whose git config would save any credential it sees.
    const home = tempDir('witness-home-')
    writeFileSync(join(home, '.gitconfig'), '[credential]\n\thelper = store\n')
    try {
      const m = machine('alpha', http.url('telemetry.git'))
      await m.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }, { timestamp: '2026-11-24T09:00:00.000Z', status: 'error' }])
      const outputs: string[] = []
      const run = async (env: Record<string, string>) => {
        const r = await m.sync({ HOME: home, ...env })
        outputs.push(r.stdout, r.stderr)
        return r
      }

      // Refused without the token and with a wrong one: nothing leaves, the rows wait in the database.
      const refused = /nothing exported yet \(a new clone waits until it has reached the remote once\); remote not updated \(.+\)\n$/
      const without = await run({})
      expect(without.stdout).toMatch(refused)
      expect(without.code).toBe(1) // refused, not offline: a timer shows it
      expect((await run({ WITNESS_SYNC_TOKEN: wrong })).stdout).toMatch(refused)
      expect(git(['--git-dir', remote, 'branch', '--list'])).toBe('')
      const good = await run({ WITNESS_SYNC_TOKEN: token })
      expect(good.stdout).toBe(`witness sync: alpha: exported 2 rows; ${UP_TO_DATE}\n`)
      expect(ids(remoteLines(remote))).toEqual([1, 2])
      // Later pushes (fetch, then push) use it the same way.
      await m.seed([{ timestamp: '2026-11-24T10:00:00.000Z' }])
      expect((await run({ WITNESS_SYNC_TOKEN: token })).stdout).toBe(`witness sync: alpha: exported 1 rows; ${UP_TO_DATE}\n`)
      expect((await run({})).stdout).toMatch(/nothing new to export; remote not updated \(.+terminal prompts disabled\)/)
      expect(http.credentials).toContain(`witness:${token}`)

      const everywhere = [
        ...outputs,
        git(['log', '--all', '-p', '--format=%H %an %ae %s %b'], m.workDir),
        git(['--git-dir', remote, 'log', '--all', '-p', '--format=%H %an %ae %s %b']),
        ...filesUnder(m.dir),
        ...filesUnder(home),
        JSON.stringify(dumpDatabase(m.livePath)),
        ...http.requests,
      ].join('\n')
      for (const secret of [token, wrong]) expect(everywhere).not.toContain(secret)
      expect(readFileSync(join(m.workDir, '.git/config'), 'utf8')).toContain(`url = ${http.url('telemetry.git')}\n`)
      expect(existsSync(join(home, '.git-credentials'))).toBe(false)
    } finally {
      await http.stop()
    }
  })
})

describe.skipIf(!HAVE_GIT)('the proof goes out with the rows', () => {
  test('each sync with new rows signs a checkpoint of the chain head and publishes it under <machine>/checkpoints-by-day/, in the folder of the day it was signed', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const alpha = machine('alpha', remote)
    await ensureSigningKey(join(alpha.dir, 'witness-key.json'))
    const now = Date.now()
    await alpha.seed([{ timestamp: daysAgo(now, 1) }, { timestamp: daysAgo(now, 1, 1) }])
    expect((await alpha.sync()).code).toBe(0)
    await alpha.seed([{ timestamp: daysAgo(now, 0) }])
    expect((await alpha.sync()).code).toBe(0)
    expect((await alpha.sync()).code).toBe(0) // nothing new: nothing signed, nothing committed

    expect(git(['--git-dir', remote, 'log', '--format=%s', 'main']).trim().split('\n')).toEqual([
      'witness sync: alpha: 1 rows, 1 day files, 1 chain entries, 1 checkpoints',
      'witness sync: alpha: 2 rows, 1 day files, 2 chain entries, 1 checkpoints',
    ])
    const names = git(['--git-dir', remote, 'ls-tree', '-r', '--name-only', 'main']).split('\n').filter((n) => n.includes('/checkpoints'))
    expect(names).toHaveLength(2)
    const published = names.map((n) => JSON.parse(git(['--git-dir', remote, 'show', `main:${n}`])) as { id: number; machine: string; seq: number; head_hash: string; time: string; signature: string })
    expect(published.map((c) => [c.machine, c.seq])).toEqual([['alpha', 2], ['alpha', 3]])
    expect(names).toEqual(published.map((c) => `alpha/checkpoints-by-day/${c.time.slice(0, 4)}/${c.time.slice(5, 7)}/${c.time.slice(8, 10)}/0000000${c.id}.json`))
    const db = new Database(alpha.livePath, { readonly: true })
    const head = db.query('SELECT seq, hash FROM log_chain ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string }
    db.close()
    expect(published[1]!.head_hash).toBe(head.hash)

    await expectRepoVerified(remote, alpha.keyPath, 'chain entries 1-3, 3 rows checked, 2 signed checkpoint(s)')
  })

  test('a row finished, and a checkpoint signed, while a sync exports goes out with its chain entry on the next sync, never its entry alone; verify --repo passes after each', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const alpha = machine('alpha', remote)
    const { key } = await ensureSigningKey(alpha.keyPath)
    const now = Date.now()
    const [, late] = await alpha.seed([{ timestamp: daysAgo(now, 0, 2000) }, { timestamp: daysAgo(now, 0, 1000), status: 'pending' }])
    const sync = (afterRowExport?: () => Promise<void>) =>
      runSync({ livePath: alpha.livePath, archiveDir: alpha.archiveDir, sync: { remote, branch: 'main', workDir: alpha.workDir, everyMs: 0 }, machine: 'alpha', keyPath: alpha.keyPath, now: Date.now, afterRowExport })

    // The rows are read with `late` still pending; before the proof is read, it is finished (chained) and the server signs its checkpoint.
    const first = await sync(async () => {
      await finishRows(alpha.livePath, [late!])
      const live = await openLiveForJob(alpha.livePath, 'test')
      expect((await checkpointNow(live, key, 'alpha', Date.now))!.seq).toBe(2)
      live.close()
    })
    expect(first.exported).toBe(1)
    expect(ids(remoteLines(remote))).toEqual([1])
    const afterFirst = await expectRepoVerified(remote, alpha.keyPath, 'chain entries 1-1, 1 rows checked, 1 signed checkpoint(s)')
    expect(afterFirst.stdout).toContain('verified')

    const second = await sync()
    expect(second.exported).toBe(1)
    expect(ids(remoteLines(remote))).toEqual([1, late!])
    await expectRepoVerified(remote, alpha.keyPath, 'chain entries 1-2, 2 rows checked, 2 signed checkpoint(s)')
  })

  test('a row the run saw pending, finished and archived while it reads the archives, goes out next time with its chain entry, not now without it', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const alpha = machine('alpha', remote)
    await ensureSigningKey(alpha.keyPath)
    const now = Date.now()
    const retention = { keepDays: 30, archiveDir: alpha.archiveDir, archiveKeepDays: 0, maxDbMb: 512 }
    const archive = () => runArchive({ livePath: alpha.livePath, retention, syncConfigured: true, now: () => now })
    const sync = (beforeArchiveScan?: () => Promise<void>) =>
      runSync({ livePath: alpha.livePath, archiveDir: alpha.archiveDir, sync: { remote, branch: 'main', workDir: alpha.workDir, everyMs: 0 }, machine: 'alpha', keyPath: alpha.keyPath, now: Date.now, beforeArchiveScan })
    const [, late] = await alpha.seed([{ timestamp: daysAgo(now, 60) }, { timestamp: daysAgo(now, 45), status: 'pending' }, { timestamp: daysAgo(now, 1) }])
    expect((await sync()).exported).toBe(2)
    await alpha.seed([{ timestamp: daysAgo(now, 50) }])
    await archive() // so the next run reads the archives
    const second = await sync(async () => {
      await finishRows(alpha.livePath, [late!]) // the request finishes, and the day's archive run takes it
      await archive()
    })
    expect(second.exported).toBe(1)
    await expectRepoVerified(remote, alpha.keyPath, 'verified')
    expect((await sync()).exported).toBe(1)
    expect(ids(remoteLines(remote))).toEqual([1, late!, 3, 4])
    await expectRepoVerified(remote, alpha.keyPath, 'chain entries 1-4, 4 rows checked')
  })

  test('rows archived before and after they were exported: after the sync, verify --repo and verify --archives both pass', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const alpha = machine('alpha', remote)
    await ensureSigningKey(alpha.keyPath)
    const now = Date.now()
    const [, oldPending] = await alpha.seed([
      { timestamp: daysAgo(now, 60) },
      { timestamp: daysAgo(now, 45), status: 'pending' },
      { timestamp: daysAgo(now, 1) },
    ])
    expect((await alpha.sync()).stdout).toContain('exported 2 rows')
    await alpha.seed([{ timestamp: daysAgo(now, 50) }, { timestamp: daysAgo(now, 40), status: 'error' }, { timestamp: daysAgo(now, 0) }])
    await finishRows(alpha.livePath, [oldPending!])
    expect((await alpha.archive()).moved).toBe(4) // older than keep_days (30): two exported, two not yet
    expect((await alpha.sync()).stdout).toContain('exported 4 rows')

    await expectRepoVerified(remote, alpha.keyPath, 'chain entries 1-6, 6 rows checked, 2 signed checkpoint(s)')
    const archives = await runWitness(['verify', '--config', alpha.configPath, '--archives'])
    expect(archives.stdout).toContain('chain entries 1-6, 6 rows checked, 2 signed checkpoint(s)')
    expect(archives.code).toBe(0)
    // With --live-only the live log alone still verifies, and says where the rest is.
    const liveOnly = await runWitness(['verify', '--config', alpha.configPath, '--live-only'])
    expect(liveOnly.stdout).toContain('(verify with the config that names the archives, without --live-only)')
    expect(liveOnly.code).toBe(0)
  })
})

describe.skipIf(!HAVE_GIT)('checkpoint files by day, beside the flat folder of clones from before', () => {
  const who = ['-c', 'user.name=x', '-c', 'user.email=x@x']
  /** Moves a commit's checkpoint files from their days' folders into the flat folder, as the build before wrote them. */
  const FLATTEN =
    "if [ -d alpha/checkpoints-by-day ]; then mkdir -p alpha/checkpoints && find alpha/checkpoints-by-day -name '*.json' -exec mv {} alpha/checkpoints/ ';' && rm -r alpha/checkpoints-by-day; fi"

  /**
   * Three syncs (checkpoints 1-3), then the machine's clone and the remote made what the build before
   * left: each checkpoint in `checkpoints/<id>.json`, added by the commit that added it, the clone's
   * marks and its record of what it pushed as they were.
   */
  async function syncedByBuildBefore() {
    const { remote, m } = await syncedThrice()
    const filtered = Bun.spawnSync(['git', 'filter-branch', '-f', '--tree-filter', FLATTEN, 'main'], { cwd: m.workDir, env: { ...process.env, FILTER_BRANCH_SQUELCH_WARNING: '1' }, stderr: 'pipe' })
    expect(filtered.stderr.toString()).not.toContain('fatal')
    git(['update-ref', '-d', 'refs/original/refs/heads/main'], m.workDir)
    git(['push', '-qf', 'origin', 'main'], m.workDir)
    git(['update-ref', 'refs/witness/pushed', 'HEAD'], m.workDir)
    const flat = ['alpha/checkpoints/00000001.json', 'alpha/checkpoints/00000002.json', 'alpha/checkpoints/00000003.json']
    expect(checkpointFilesIn(m.workDir)).toEqual(flat)
    // Each added by its own sync's commit, as the build before did.
    expect(git(['--git-dir', remote, 'log', '--format=', '--name-only', '--diff-filter=A', 'main', '--', 'alpha/checkpoints']).split('\n').filter(Boolean)).toEqual([...flat].reverse())
    await expectRepoVerified(remote, m.keyPath, 'chain entries 1-6, 6 rows checked, 3 signed checkpoint(s)')
    return { remote, m, flat }
  }

  /** The checkpoint files on the remote's main branch, in the order of their ids. */
  const remoteCheckpoints = (remote: string) =>
    git(['--git-dir', remote, 'ls-tree', '-r', '--name-only', 'main'])
      .split('\n')
      .filter((n) => n.includes('/checkpoints'))
      .sort((a, b) => basename(a).localeCompare(basename(b)))

  test("a clone the build before filled: sync adds each new checkpoint by day and leaves checkpoints/ as it is (its tree is not rewritten); verify --repo reads both, each checkpoint once, also after the clone is made anew", async () => {
    const { remote, m, flat } = await syncedByBuildBefore()
    const flatTree = git(['--git-dir', remote, 'rev-parse', 'main:alpha/checkpoints'])
    await m.seed([{ timestamp: '2026-11-24T11:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    expect(git(['--git-dir', remote, 'rev-parse', 'main:alpha/checkpoints'])).toBe(flatTree)
    const afterOne = remoteCheckpoints(remote)
    expect(afterOne.slice(0, 3)).toEqual(flat)
    expect(afterOne.slice(3)).toEqual([expect.stringMatching(/^alpha\/checkpoints-by-day\/\d{4}\/\d{2}\/\d{2}\/00000004\.json$/)])
    await expectRepoVerified(remote, m.keyPath, 'chain entries 1-7, 7 rows checked, 4 signed checkpoint(s)')

    // A new clone starts the export over: what the remote holds, flat or by day, is not written again.
    renameSync(m.workDir, `${m.workDir}-aside`)
    await m.seed([{ timestamp: '2026-11-24T12:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    const afterAnew = remoteCheckpoints(remote)
    expect(afterAnew.slice(0, 4)).toEqual(afterOne)
    expect(afterAnew.slice(4)).toEqual([expect.stringMatching(/^alpha\/checkpoints-by-day\/\d{4}\/\d{2}\/\d{2}\/00000005\.json$/)])
    expect(git(['--git-dir', remote, 'rev-parse', 'main:alpha/checkpoints'])).toBe(flatTree)
    await expectRepoVerified(remote, m.keyPath, 'chain entries 1-8, 8 rows checked, 5 signed checkpoint(s)')
  })

  test('a checkpoint removed from either folder is named with its commit, across the change of layout; one moved from one folder to the other, bytes unchanged, is not removed', async () => {
    const { remote, m, flat } = await syncedByBuildBefore()
    await m.seed([{ timestamp: '2026-11-24T11:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    const clone = join(tempDir(), 'clone')
    git(['clone', '-q', '-b', 'main', remote, clone])
    const daily = checkpointFilesIn(clone)[3]!
    // Checkpoint 1 moved into the folder of its day, as sync writes new ones.
    const moved = join(daily.slice(0, daily.lastIndexOf('/')), '00000001.json')
    git(['mv', flat[0]!, moved], clone)
    git([...who, 'commit', '-qm', 'move'], clone)
    const afterMove = await runWitness(['verify', '--repo', clone, '--key', m.keyPath])
    expect(afterMove.stdout).toContain('chain entries 1-7, 7 rows checked, 4 signed checkpoint(s)')
    expect(afterMove.code).toBe(0)

    git(['rm', '-q', flat[1]!, daily], clone)
    git([...who, 'commit', '-qm', 'tidy'], clone)
    const sha = git(['rev-parse', 'HEAD'], clone).trim().slice(0, 12)
    const removed = await runWitness(['verify', '--repo', clone, '--key', m.keyPath])
    expect(removed.code).toBe(1)
    expect(removed.stdout).toContain(`checkpoint 2 (${flat[1]}, entry 4) was removed or changed in commit ${sha}`)
    expect(removed.stdout).toContain(`checkpoint 4 (${daily}, entry 7) was removed or changed in commit ${sha}`)
  })

  test('a checkpoint in both folders is one checkpoint; two files of one id with other contents are named, though each is signed', async () => {
    const { remote, m, flat } = await syncedByBuildBefore()
    const clone = join(tempDir(), 'clone')
    git(['clone', '-q', '-b', 'main', remote, clone])
    const copy = join(clone, 'alpha/checkpoints-by-day/2026/11/24/00000001.json')
    mkdirSync(dirname(copy), { recursive: true })
    copyFileSync(join(clone, flat[0]!), copy)
    git(['add', '-A'], clone)
    git([...who, 'commit', '-qm', 'copy'], clone)
    const once = await runWitness(['verify', '--repo', clone, '--key', m.keyPath])
    expect(once.stdout).toContain('chain entries 1-6, 6 rows checked, 3 signed checkpoint(s)')
    expect(once.code).toBe(0)

    // Checkpoint 2 under the id 1: its signature holds (the id is not signed), and it signs a head of the chain.
    writeFileSync(copy, `${JSON.stringify({ ...JSON.parse(readFileSync(join(clone, flat[1]!), 'utf8')), id: 1 }, null, 2)}\n`)
    git([...who, 'commit', '-qam', 'relabel'], clone)
    const twice = await runWitness(['verify', '--repo', clone, '--key', m.keyPath])
    expect(twice.code).toBe(1)
    expect(twice.stdout).toContain(`checkpoint 1 is in two copies with different contents (${flat[0]} and alpha/checkpoints-by-day/2026/11/24/00000001.json): one of them was put there by hand`)
  })
})

describe.skipIf(!HAVE_GIT)('witness fleet --out', () => {
  test('replaces only a fleet database: a live database or any other file named by mistake is left alone (exit 2)', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    await m.seed([{ timestamp: '2026-11-23T10:00:00.000Z' }])
    expect((await m.sync()).code).toBe(0)
    const clone = join(tempDir(), 'clone')
    git(['clone', '-q', '-b', 'main', remote, clone])
    const before = readFileSync(m.livePath)
    const refused = await runWitness(['fleet', '--repo', clone, '--out', m.livePath])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain(`refusing to replace ${m.livePath}: it is not a fleet database`)
    expect(readFileSync(m.livePath)).toEqual(before)
    const other = join(tempDir(), 'notes.txt')
    writeFileSync(other, 'keep me')
    expect((await runWitness(['fleet', '--repo', clone, '--out', other])).code).toBe(2)
    expect(readFileSync(other, 'utf8')).toBe('keep me')
    // A fleet database is rebuilt in place.
    const out = join(tempDir(), 'fleet.db')
    expect((await runWitness(['fleet', '--repo', clone, '--out', out])).code).toBe(0)
    expect((await runWitness(['fleet', '--repo', clone, '--out', out])).code).toBe(0)
  })

  test('a clone with no machine folder (one that checked nothing out) is exit 1 with the likely reason, not an empty fleet', async () => {
    const empty = join(tempDir(), 'empty')
    git(['init', '-q', empty])
    const result = await runWitness(['fleet', '--repo', empty, '--out', join(tempDir(), 'fleet.db')])
    expect(result.code).toBe(1)
    expect(result.stderr).toContain('holds no machine folders; a clone of the sync remote that checked nothing out? clone it with git clone -b <sync.branch>')
  })
})

describe.skipIf(!HAVE_GIT)('witness fleet', () => {
  test("builds one database with the exact schema whose rows are the union of every machine's rows, with new ids mapped to machine and original id", async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const alpha = machine('alpha', remote)
    const beta = machine('beta', remote)
    const now = Date.now()
    await alpha.seed([
      { timestamp: daysAgo(now, 70), agent: 'ezra' },
      { timestamp: daysAgo(now, 2), status: 'fallback', noMeta: true },
      { timestamp: daysAgo(now, 1), status: 'pending' },
    ])
    await alpha.archive() // the oldest is exported from its archive
    await beta.seed([{ timestamp: daysAgo(now, 3), agent: 'allegro' }, { timestamp: daysAgo(now, 1), status: 'timeout' }])
    for (const m of [alpha, beta]) expect((await m.sync()).code).toBe(0)

    const clone = join(tempDir(), 'clone')
    git(['clone', '-q', '-b', 'main', remote, clone])
    // A line exported twice (as by a machine whose clone was lost) is taken once.
    const [first] = readdirSync(join(clone, 'beta'), { recursive: true }).filter((p) => String(p).endsWith('.ndjson'))
    appendFileSync(join(clone, 'beta', String(first)), readFileSync(join(clone, 'beta', String(first)), 'utf8'))
    const out = join(tempDir(), 'out', 'fleet.db')
    const result = await runWitness(['fleet', '--repo', clone, '--out', out])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`witness fleet: 4 rows from 2 machine(s) (alpha: 2, beta: 2) -> ${out}\n`)

    const fleet = new Database(out, { readonly: true })
    expect((fleet.query("SELECT sql FROM sqlite_master WHERE name = 'request_log'").get() as { sql: string }).sql).toBe(REQUEST_LOG_DDL)
    const merged = fleet.query('SELECT * FROM fleet_log ORDER BY id').all() as (ExportLine & { machine: string; origin_id: number })[]
    fleet.close()
    expect(merged.map((r) => r.id)).toEqual([1, 2, 3, 4])
    expect(merged.map((r) => r.timestamp)).toEqual(merged.map((r) => r.timestamp).sort())

    const union = [alpha, beta].flatMap((m) =>
      everyRow(m.livePath, m.archiveDir)
        .filter((r) => r.row.status !== 'pending')
        .map(({ row, meta }) => ({ ...row, id: undefined, machine: m.name, origin_id: row.id, request_id: meta?.request_id ?? null })),
    )
    const key = (r: { machine: string; origin_id: number }) => `${r.machine}/${r.origin_id}`
    expect(merged.map((r) => ({ ...r, id: undefined })).sort((a, b) => key(a).localeCompare(key(b)))).toEqual(union.sort((a, b) => key(a).localeCompare(key(b))))

    // Built again over the old file: the same result.
    expect((await runWitness(['fleet', '--repo', clone, '--out', out])).stdout).toBe(result.stdout)
    expect(FLEET_DDL).toContain('CREATE VIEW fleet_log')
  })

  test('query and stats work on fleet.db: a request is found by its id, and an error then a fallback success counts as one request', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const alpha = machine('alpha', remote)
    const beta = machine('beta', remote)
    const now = Date.now()
    const at = (ms: number) => new Date(now - 60_000 + ms).toISOString()
    await alpha.seed([
      { timestamp: at(0), status: 'error', provider: 'kimi', requestId: 'req-a', seq: 1 },
      { timestamp: at(1), status: 'fallback', provider: 'kimi', requestId: 'req-a', seq: 2 },
      { timestamp: at(2), status: 'success', provider: 'groq', requestId: 'req-a', seq: 3 },
    ])
    // Another machine has the same row ids: its request stays its own.
    await beta.seed([{ timestamp: at(3), status: 'error', provider: 'kimi', requestId: 'req-b', seq: 1 }])
    for (const m of [alpha, beta]) expect((await m.sync()).code).toBe(0)
    const clone = join(tempDir(), 'clone')
    git(['clone', '-q', '-b', 'main', remote, clone])
    const out = join(tempDir(), 'fleet.db')
    expect((await runWitness(['fleet', '--repo', clone, '--out', out])).code).toBe(0)

    const found = await runWitness(['query', '--db', out, '--json', '--request-id', 'req-a'])
    expect(found.code).toBe(0)
    const lines = found.stdout.trim().split('\n').map((l) => JSON.parse(l) as { status: string; provider: string })
    expect(lines.map((r) => [r.provider, r.status])).toEqual([['groq', 'success'], ['kimi', 'fallback'], ['kimi', 'error']])
    const stats = await runWitness(['stats', '--db', out, '--since', '1h', '--by', 'provider', '--json'])
    expect(stats.code).toBe(0)
    const groups = JSON.parse(stats.stdout).groups as { provider: string; requests: number; request_success_rate: number | null }[]
    expect(groups.find((g) => g.provider === 'groq')).toMatchObject({ requests: 1, request_success_rate: 1 })
    // alpha's kimi error was not its request's end (groq served it); beta's was.
    expect(groups.find((g) => g.provider === 'kimi')).toMatchObject({ requests: 1, request_success_rate: 0 })
  })
})

/** The text of every file under a directory (bytes as latin1, so any text in them shows). */
function filesUnder(dir: string): string[] {
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((e) => e.isFile())
    .map((e) => readFileSync(join(e.parentPath, e.name)).toString('latin1'))
}

/** Every row of every table in a database. */
function dumpDatabase(path: string): unknown[] {
  const db = new Database(path, { readonly: true })
  const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name)
  const rows = tables.flatMap((t) => db.query(`SELECT * FROM "${t}"`).all())
  db.close()
  return rows
}
