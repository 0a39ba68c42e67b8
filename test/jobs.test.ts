/**
 * The background jobs inside `serve`: archive once a day and when the live
 * file passes max_db_mb, sync every sync.every; driven by the injected
 * clock, with the timer off (tests call tick()) or on.
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { JobBusyError } from '../src/errors.ts'
import { takeJobLock, waitToReadJobFiles } from '../src/jobs/job-lock.ts'
import { archiveLockPath } from '../src/retention/archive-job.ts'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { HAVE_GIT, bareRepo, git } from './support/git.ts'
import { holdJobLock } from './support/process.ts'
import { readRows } from './support/rows.ts'
import { checkpoint, daysAgo, seedRows } from './support/seed.ts'
import { tempDir } from './support/temp.ts'
import { serve } from '../src/main.ts'
import { type TestWitness, manualClock, simConfig, startWitness, writeConfigFile } from './support/witness.ts'

let sim: Simulator
beforeAll(() => {
  sim = startSimulator()
})
afterAll(() => sim.stop())

const MINUTE = 60_000

async function witnessWith(extra: Record<string, unknown>, options: { seed?: Parameters<typeof seedRows>[1]; tickMs?: number | null } = {}) {
  const dir = tempDir()
  const clock = manualClock()
  if (options.seed) await seedRows(join(dir, 'witness.db'), options.seed)
  const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { machine: 'alpha', ...extra }), {
    dir,
    clock,
    jobs: { tickMs: options.tickMs === undefined ? null : options.tickMs },
  })
  return { w, clock, dir }
}

function exportedIds(remote: string): number[] {
  const files = git(['--git-dir', remote, 'ls-tree', '-r', '--name-only', 'main']).split('\n').filter((f) => f.endsWith('.ndjson'))
  return files.flatMap((f) => git(['--git-dir', remote, 'show', `main:${f}`]).split('\n').filter(Boolean).map((l) => JSON.parse(l).id as number)).sort((a, b) => a - b)
}

const stopAll: TestWitness[] = []
afterAll(async () => {
  for (const w of stopAll) await w.stop(0)
})

describe('background jobs in serve', () => {
  test('a checkpoint of the chain head is signed every proof.checkpoint_every, and only when the chain grew', async () => {
    const { w, clock } = await witnessWith({ proof: { checkpoint_every: '5m' } })
    stopAll.push(w)
    const checkpoints = () => {
      const db = new Database(w.dbPath, { readonly: true })
      const rows = db.query('SELECT machine, seq, head_hash FROM checkpoints ORDER BY id').all() as { machine: string; seq: number; head_hash: string }[]
      db.close()
      return rows
    }
    const head = () => {
      const db = new Database(w.dbPath, { readonly: true })
      const row = db.query('SELECT seq, hash FROM log_chain ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string }
      db.close()
      return row
    }
    expect((await w.infer({})).status).toBe(200)
    await w.jobs!.tick()
    expect(checkpoints()).toEqual([{ machine: 'alpha', seq: 1, head_hash: head().hash }])
    expect((await w.infer({})).status).toBe(200)
    clock.advance(4 * MINUTE)
    await w.jobs!.tick() // not due yet
    expect(checkpoints()).toHaveLength(1)
    clock.advance(MINUTE)
    await w.jobs!.tick()
    expect(checkpoints().map((c) => c.seq)).toEqual([1, 2])
    clock.advance(5 * MINUTE)
    await w.jobs!.tick() // due, but nothing new to sign
    expect(checkpoints()).toHaveLength(2)
  })

  test('the jobs keep to the database the server opened: a reload naming another (restart required) or `serve --db` does not move them', async () => {
    const { w, dir } = await witnessWith({ proof: { checkpoint_every: '5m' } })
    stopAll.push(w)
    writeConfigFile(w.configPath, simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { machine: 'alpha', database: './moved.db', proof: { checkpoint_every: '5m', key_path: './other-key.json' } }))
    const reload = await (await w.post('/admin/reload', '')).json()
    expect(reload.restart_required).toEqual(['database', 'proof.key_path'])
    expect((await w.infer({})).status).toBe(200)
    await w.jobs!.tick()
    const signed = new Database(w.dbPath, { readonly: true })
    expect(signed.query('SELECT count(*) AS n FROM checkpoints').get()).toEqual({ n: 1 })
    signed.close()
    expect(existsSync(join(dir, 'moved.db'))).toBe(false)

    // `serve --db`: the jobs use the file given, not the config's.
    const other = join(tempDir(), 'other.db')
    const logs: string[] = []
    const served = await serve({ configPath: w.configPath, port: 0, db: other, env: {}, log: (l) => logs.push(l), background: false, jobs: { tickMs: null }, statsFill: false })
    try {
      await fetch(`${served.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'a', messages: [{ role: 'user', content: 'hi' }] }) })
      await served.jobs!.tick()
      expect(logs.filter((l) => l.includes('failed'))).toEqual([])
      const db = new Database(other, { readonly: true })
      expect(db.query('SELECT count(*) AS n FROM checkpoints').get()).toEqual({ n: 1 })
      db.close()
    } finally {
      await served.stop(0)
    }
  })

  test.skipIf(!HAVE_GIT)('the archive runs at the first check and then once a day, the sync every sync.every, by the injected clock', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const old = daysAgo(manualClock().now(), 60)
    const { w, clock } = await witnessWith(
      { retention: { keep_days: 30, archive_dir: './arch' }, sync: { remote, work_dir: './clone', every: '15m' } },
      { seed: [{ timestamp: old }] },
    )
    stopAll.push(w)
    await w.jobs!.tick()
    expect(readRows(w.dbPath)).toHaveLength(0) // archived...
    expect(exportedIds(remote)).toEqual([1]) // ...and exported from its archive
    expect(w.logs).toContain('witness: archive: moved 1 rows (0 early), compressed 1 and deleted 0 archive files')
    expect(w.logs).toContain('witness: sync: exported 1 rows; the remote branch main is up to date')

    expect((await w.infer({})).status).toBe(200)
    await w.jobs!.tick()
    expect(exportedIds(remote)).toEqual([1]) // not due yet
    clock.advance(15 * MINUTE)
    await w.jobs!.tick()
    expect(exportedIds(remote)).toEqual([1, 2])

    await seedRows(w.dbPath, [{ timestamp: old }])
    clock.advance(60 * MINUTE)
    await w.jobs!.tick()
    expect(readRows(w.dbPath).map((r) => r.id)).toEqual([2, 3]) // the archive is not due before a day has passed
    expect(exportedIds(remote)).toEqual([1, 2, 3])
    clock.advance(24 * 60 * MINUTE)
    await w.jobs!.tick()
    expect(readRows(w.dbPath).map((r) => r.id)).toEqual([2])
  })

  test('past max_db_mb the archive runs without waiting for the day (at most every 10 minutes)', async () => {
    const { w, clock } = await witnessWith({ retention: { keep_days: 3650, max_db_mb: 1, archive_dir: './arch' } })
    stopAll.push(w)
    await w.jobs!.tick()
    await seedRows(w.dbPath, Array.from({ length: 1500 }, (_, i) => ({ timestamp: daysAgo(clock.now(), 5, -i), errorMessage: 'z'.repeat(2000) })))
    checkpoint(w.dbPath)
    expect(statSync(w.dbPath).size).toBeGreaterThan(1024 * 1024)

    clock.advance(MINUTE)
    await w.jobs!.tick()
    expect(readRows(w.dbPath)).toHaveLength(1500)
    clock.advance(10 * MINUTE)
    await w.jobs!.tick()
    expect(readRows(w.dbPath).length).toBeLessThan(1500)
    expect(statSync(w.dbPath).size).toBeLessThanOrEqual(1024 * 1024)
    expect(w.logs.some((l) => /^witness: archive: moved (\d+) rows \(\1 early\)/.test(l))).toBe(true)
  })

  test('a job whose lock is held by `witness archive` is skipped and logged, and the archive job tried again 10 minutes later', async () => {
    const { w, clock, dir } = await witnessWith({ retention: { archive_dir: './arch' } }, { seed: [{ timestamp: daysAgo(manualClock().now(), 60) }] })
    stopAll.push(w)
    const holder = await holdJobLock('archive', archiveLockPath(join(dir, 'arch')))
    await w.jobs!.tick()
    await holder.release()
    expect(w.logs.find((l) => l.startsWith('witness: archive skipped: archive: another run holds the lock'))).toBeDefined()
    expect(readRows(w.dbPath)).toHaveLength(1)
    // The archive job, due once a day, is tried again 10 minutes later, not the next day.
    clock.advance(9 * MINUTE)
    await w.jobs!.tick()
    expect(readRows(w.dbPath)).toHaveLength(1)
    clock.advance(MINUTE)
    await w.jobs!.tick()
    expect(readRows(w.dbPath)).toHaveLength(0)
  })

  test('with a timer, the jobs run by themselves', async () => {
    const { w } = await witnessWith({ retention: { archive_dir: './arch' } }, { seed: [{ timestamp: daysAgo(manualClock().now(), 60) }], tickMs: 10 })
    stopAll.push(w)
    for (let i = 0; i < 200 && readRows(w.dbPath).length > 0; i++) await Bun.sleep(10)
    expect(readRows(w.dbPath)).toHaveLength(0)
  })
})

describe("a reader who may not write beside a job's lock (verify, as another user)", () => {
  test('holds the job off with a shared lock: it waits while a run holds the lock, and a run started while it reads finds the lock held', async () => {
    const lockPath = join(tempDir(), '.archive.lock')
    const run = await holdJobLock('archive', lockPath)
    await expect(waitToReadJobFiles('archive', lockPath, 300)).rejects.toThrow('archive: another run holds the lock')
    await run.release()
    const reading = await waitToReadJobFiles('archive', lockPath, 300)
    expect(() => takeJobLock('archive', lockPath)).toThrow(JobBusyError)
    reading.release()
    takeJobLock('archive', lockPath).release()
  })

  test('with no lock file (the job never ran there) holds nothing and writes nothing', async () => {
    const dir = tempDir()
    ;(await waitToReadJobFiles('archive', join(dir, '.archive.lock'), 300)).release()
    expect(existsSync(join(dir, '.archive.lock'))).toBe(false)
  })
})
