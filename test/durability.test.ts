/**
 * No row, no call; no row left pending: the write protocol under a lock
 * held by another process, a read-only database, a SIGKILL mid-call, and
 * 200 concurrent requests; and what `database_sync` does to each commit.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'bun:test'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { BUN, ROOT, eventually, holdWriteLock, runWitness, spawnWitness } from './support/process.ts'
import { readOnlyBeforeOpen, readOnlyWhileOpen } from './support/read-only.ts'
import { readMeta, readRows } from './support/rows.ts'
import { tempDir } from './support/temp.ts'
import { simConfig, startWitness, type TestWitness } from './support/witness.ts'

let sim: Simulator
const running: TestWitness[] = []
beforeAll(() => {
  sim = startSimulator()
})
afterAll(async () => {
  for (const w of running) await w.stop(0)
  await sim.stop()
})
beforeEach(() => sim.reset())

describe('no row, no call', () => {
  test('while another process holds the write lock: 503 telemetry_unavailable and nothing goes upstream; then service resumes', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_busy_timeout_ms: 300 }))
    running.push(w)
    const lock = await holdWriteLock(w.dbPath)
    const res = await w.infer({})
    expect(res.status).toBe(503)
    const { error } = await res.json()
    expect(error.type).toBe('telemetry_unavailable')
    expect(error.message).toContain('locked')
    expect(sim.count()).toBe(0)
    // No row, so none of the X-Witness headers (the body names the request id).
    expect(res.headers.get('x-witness-request-id')).toBeNull()
    expect(res.headers.get('x-witness-log-ids')).toBeNull()
    const heartbeat = await fetch(`${w.url}/heartbeat`)
    expect(heartbeat.status).toBe(503)

    // Other requests are not frozen while the lock is held: the event loop keeps serving.
    const started = performance.now()
    expect((await fetch(`${w.url}/nope`)).status).toBe(404)
    expect(performance.now() - started).toBeLessThan(250)

    await lock.release()
    expect((await w.infer({})).status).toBe(200)
    expect(sim.count()).toBe(1)
    expect(readRows(w.dbPath).map((r) => r.status)).toEqual(['success'])
    // The log says when health changed, and why: once each way, not on every check.
    expect((await fetch(`${w.url}/heartbeat`)).status).toBe(200)
    expect((await fetch(`${w.url}/heartbeat`)).status).toBe(200)
    const health = w.logs.filter((l) => l.startsWith('witness: health:'))
    expect(health).toEqual([expect.stringMatching(/^witness: health: unhealthy: .*locked/), 'witness: health: ok again'])
  })

  test('a fallback row that cannot be written (locked while step 1 was called): 503, nothing sent to step 2, the headers list only rows written', async () => {
    let lock: { release(): Promise<void> } | null = null
    let dbPath = ''
    const own = startSimulator({ onRequest: async (r) => void (r.model.startsWith('first') && !lock && (lock = await holdWriteLock(dbPath))) })
    const w = await startWitness(simConfig(own.url, { default: [{ provider: 'sim', model: 'first+status-500', retries: 0 }, { provider: 'sim2', model: 'second' }] }, { database_busy_timeout_ms: 300 }))
    running.push(w)
    dbPath = w.dbPath
    try {
      const res = await w.infer({})
      expect(res.status).toBe(503)
      expect(res.headers.get('x-witness-log-ids')).toBe('1')
      expect(res.headers.get('x-witness-attempts')).toBe('1')
      await lock!.release()
      expect(own.requests.map((r) => r.model)).toEqual(['first+status-500'])
      // Its finish was refused too, and is retried by the store once the lock is gone; the log says when it lands.
      while (readRows(w.dbPath)[0]!.status === 'pending') await Bun.sleep(50)
      expect(readRows(w.dbPath).map((r) => [r.id, r.status])).toEqual([[1, 'error']])
      // The commit is seen by readers before its fsync ends; the line is logged after it.
      await eventually(() => w.logs.includes('witness: row 1 is finished at last'))
      expect(w.logs.filter((l) => l.includes('row 1 '))).toEqual([expect.stringMatching(/^witness: row 1 could not be finished yet: /), 'witness: row 1 is finished at last'])
    } finally {
      await own.stop()
    }
  })

  test('a fallback row refused while the next pending row commits: that row is finished uncalled, and listed', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'first+status-500', retries: 0 }, { provider: 'sim2', model: 'second' }] }))
    running.push(w)
    // A real refusal of fallback rows only: group commit retries the batch one write at a time.
    const { Database } = await import('bun:sqlite')
    const db = new Database(w.dbPath)
    db.exec("CREATE TRIGGER no_fallback BEFORE INSERT ON request_log WHEN NEW.status = 'fallback' BEGIN SELECT RAISE(ABORT, 'no fallback rows'); END")
    db.close()
    const res = await w.infer({})
    expect(res.status).toBe(503)
    const rows = readRows(w.dbPath)
    // The uncalled row names its provider, as a fallback row does, and is no call: not counted as one.
    expect(rows.map((r) => [r.id, r.status])).toEqual([[1, 'error'], [2, 'fallback']])
    expect(rows[1]!.error_message).toStartWith('not called: the fallback row before it could not be written')
    expect(res.headers.get('x-witness-log-ids')).toBe('1,2')
    expect(res.headers.get('x-witness-attempts')).toBe('1')
    const didCall = await runWitness(['did-call', '--db', w.dbPath, '--agent', rows[1]!.agent_name, '--provider', 'sim2', '--json'])
    expect(JSON.parse(didCall.stdout)).toMatchObject({ called: false, calls: 0, fallback_rows: 1 })
    expect(didCall.code).toBe(1)
    expect(sim.requests.map((r) => r.model)).toEqual(['first+status-500'])
    // Both rows are chained, and the receipt names both.
    const receipt = JSON.parse(Buffer.from(res.headers.get('x-witness-receipt')!, 'base64url').toString()) as { r: [number, string][] }
    expect(receipt.r.map(([id]) => id)).toEqual([1, 2])
  })

  test('a database over its size budget refuses the call, and resumes when space is given', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_max_mb: 1 }))
    running.push(w)
    // Fill the budget from another connection (as data would, over time).
    const { Database } = await import('bun:sqlite')
    const filler = new Database(w.dbPath)
    filler.exec('CREATE TABLE ballast (b BLOB)')
    filler.exec('PRAGMA max_page_count = 1000000')
    filler.exec('INSERT INTO ballast VALUES (randomblob(1100000))')
    filler.close()
    // The rows' pages still have some room; keep calling until the budget bites.
    let refused: Response | null = null
    let served = 0
    for (let i = 0; i < 500 && !refused; i++) {
      const res = await w.infer({})
      if (res.status === 200) served++
      else refused = res
    }
    expect(refused?.status).toBe(503)
    expect((await refused!.json()).error.message).toContain('full')
    expect(sim.count()).toBe(served) // the refused call never went upstream
    // Health says so too, though updates of existing rows (and state writes) may still succeed.
    const unhealthy = await fetch(`${w.url}/heartbeat`)
    expect(unhealthy.status).toBe(503)
    expect((await unhealthy.json()).reasons[0]).toContain('database not writable')

    const cleaner = new Database(w.dbPath)
    cleaner.exec('DROP TABLE ballast')
    cleaner.close()
    expect((await w.infer({})).status).toBe(200)
    expect(sim.count()).toBe(served + 1)
    expect((await fetch(`${w.url}/heartbeat`)).status).toBe(200)
  })

  test('a database near its size budget keeps room to finish the calls in flight: new calls are refused first, and every call made is finished', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm+latency-300' }] }, { database_max_mb: 2 }))
    running.push(w)
    // Another connection fills the file to `free` pages under the budget (as data would, over time).
    const { Database } = await import('bun:sqlite')
    const filler = new Database(w.dbPath)
    const pageSize = (filler.query('PRAGMA page_size').get() as { page_size: number }).page_size
    const maxPages = (2 * 1024 * 1024) / pageSize
    const used = () => (filler.query('SELECT (SELECT page_count FROM pragma_page_count) - (SELECT freelist_count FROM pragma_freelist_count) AS n').get() as { n: number }).n
    filler.exec('CREATE TABLE ballast (b BLOB)')
    const fillTo = (free: number) => {
      while (used() < maxPages - free) filler.exec(`INSERT INTO ballast VALUES (randomblob(${pageSize - 200}))`)
      while (used() > maxPages - free) filler.exec('DELETE FROM ballast WHERE rowid = (SELECT max(rowid) FROM ballast)')
    }
    const burst = async () => {
      const before = sim.count()
      const answers = await Promise.all(Array.from({ length: 150 }, () => w.infer({})))
      const served = answers.filter((r) => r.status === 200).length
      const refused = answers.filter((r) => r.status === 503)
      expect(served + refused.length).toBe(150)
      // Every call made has its row finished, and a refused one made no call.
      const rows = readRows(w.dbPath)
      expect(rows.filter((r) => r.status !== 'success')).toEqual([])
      expect(sim.count() - before).toBe(served)
      expect(rows.length).toBe(sim.count())
      if (refused.length) expect((await refused[0]!.json()).error.message).toContain('kept for finishing')
      return { served, refused: refused.length }
    }
    try {
      // A few pages left: more calls at once than they could hold with their finishes.
      fillTo(4)
      expect(await burst()).toEqual({ served: 0, refused: 150 })
      // A few dozen: some calls go, the rest are refused before the room their finishes need is taken.
      fillTo(40)
      const { served, refused } = await burst()
      expect(served).toBeGreaterThan(0)
      expect(refused).toBeGreaterThan(0)
      expect(w.logs.filter((l) => l.includes('could not be finished'))).toEqual([])
    } finally {
      filler.close()
    }
  })

  test('a finish refused behind a lock: the client has its answer, /heartbeat names the held row, and a stop keeps trying it through its grace', async () => {
    let lock: { release(): Promise<void> } | null = null
    let dbPath = ''
    // The lock is taken once the pending row is committed and the call made, so only its finish meets it.
    const own = startSimulator({ onRequest: async () => void (!lock && (lock = await holdWriteLock(dbPath))) })
    const w = await startWitness(simConfig(own.url, { default: [{ provider: 'sim', model: 'm', retries: 0 }] }, { database_busy_timeout_ms: 300 }))
    dbPath = w.dbPath
    try {
      const res = await w.infer({})
      expect(res.status).toBe(200)
      expect(readRows(w.dbPath).map((r) => r.status)).toEqual(['pending'])
      const heartbeat = await fetch(`${w.url}/heartbeat`)
      expect(heartbeat.status).toBe(503)
      const { reasons, rollback_may_help } = await heartbeat.json()
      expect(reasons).toContain('1 call(s) made whose row could not be finished yet (its finishing write was refused; tried again each second)')
      expect(rollback_may_help).toBe(false)
      // The lock goes a second and a half into the stop, whose grace is longer: the row lands before it ends.
      setTimeout(() => void lock!.release(), 1500)
      await w.stop(5000)
      expect(readRows(w.dbPath).map((r) => r.status)).toEqual(['success'])
      expect(w.logs).toContain('witness: row 1 is finished at last')
    } finally {
      // Released already, unless the test failed before that.
      await (lock as { release(): Promise<void> } | null)?.release()
      await own.stop()
    }
  })

  test('a heartbeat right after a refused write is unhealthy, though a row was committed less than a second before', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_busy_timeout_ms: 200 }))
    running.push(w)
    expect((await w.infer({})).status).toBe(200)
    const lock = await holdWriteLock(w.dbPath)
    expect((await w.infer({})).status).toBe(503)
    expect((await fetch(`${w.url}/heartbeat`)).status).toBe(503)
    await lock.release()
    expect((await fetch(`${w.url}/heartbeat`)).status).toBe(200)
  })
})

describe('a read-only database', () => {
  if (readOnlyWhileOpen.reason) console.warn(`skipping "made read-only while witness runs": ${readOnlyWhileOpen.reason}`)
  test.skipIf(readOnlyWhileOpen.readOnly === null)('made read-only while witness runs: 503 telemetry_unavailable, nothing upstream; service resumes once writable', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_busy_timeout_ms: 300 }))
    running.push(w)
    expect((await w.infer({})).status).toBe(200)
    sim.reset()
    // The file and its WAL (where commits go). Not the -shm: SQLite maps it into memory, and a mapping
    // that cannot grow kills the process (SIGBUS) instead of failing a write.
    const undo = readOnlyWhileOpen.readOnly!.apply([w.dbPath, `${w.dbPath}-wal`].filter(existsSync))
    try {
      const res = await w.infer({})
      expect(res.status).toBe(503)
      expect((await res.json()).error.type).toBe('telemetry_unavailable')
      expect(sim.count()).toBe(0)
      expect((await fetch(`${w.url}/heartbeat`)).status).toBe(503)
    } finally {
      undo()
    }
    expect((await w.infer({})).status).toBe(200)
    expect(sim.count()).toBe(1)
    expect(readRows(w.dbPath).map((r) => r.status)).toEqual(['success', 'success'])
  })

  if (readOnlyBeforeOpen.reason) console.warn(`skipping "read-only before witness opened it": ${readOnlyBeforeOpen.reason}`)
  test.skipIf(readOnlyBeforeOpen.readOnly === null)('read-only before witness opened it: every call is 503 telemetry_unavailable and nothing goes upstream; with its directory read-only too, witness does not start', async () => {
    const dir = tempDir()
    const config = simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_busy_timeout_ms: 300 })
    const first = await startWitness(config, { dir })
    expect((await first.infer({})).status).toBe(200)
    await first.stop(0)
    sim.reset()
    const dbPath = join(dir, 'witness.db')
    const rows = readRows(dbPath)
    const readOnly = readOnlyBeforeOpen.readOnly!
    let undo = readOnly.apply([dbPath])
    try {
      const w = await startWitness(config, { dir })
      try {
        for (const res of [await w.infer({}), await w.post('/v1/chat/completions', { model: 'default', messages: [{ role: 'user', content: 'hi' }] }, { 'x-agent-name': 'a' })]) {
          expect(res.status).toBe(503)
          expect((await res.json()).error.type).toBe('telemetry_unavailable')
        }
        expect(sim.count()).toBe(0)
      } finally {
        await w.stop(0)
      }
    } finally {
      undo()
    }
    // The database and its directory: SQLite cannot create the WAL beside it, and start-up fails.
    undo = readOnly.apply([dbPath, dir])
    try {
      await expect(startWitness(config, { dir })).rejects.toThrow('unable to open database file')
    } finally {
      undo()
    }
    expect(sim.count()).toBe(0)
    expect(readRows(dbPath)).toEqual(rows)
  })
})

describe('database_sync', () => {
  /** fsync calls made by a process that opens the store from `config` and commits `rows` rows one by one. */
  async function fsyncsFor(config: Record<string, unknown>, rows: number): Promise<number> {
    const dir = tempDir()
    const configPath = join(dir, 'witness.yaml')
    writeFileSync(configPath, JSON.stringify({ database: './w.db', providers: { p: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' } }, chains: { default: [{ provider: 'p', model: 'm' }] }, ...config }))
    const trace = join(dir, 'trace')
    const run = Bun.spawn(['strace', '-f', '-qq', '-e', 'trace=fsync,fdatasync', '-o', trace, BUN, join(ROOT, 'test/support/write-rows.ts'), configPath, String(rows)], { stdout: 'ignore', stderr: 'pipe' })
    expect(await run.exited).toBe(0)
    return (await Bun.file(trace).text()).split('\n').filter((line) => /\bf(data)?sync\(/.test(line)).length
  }

  const strace = Bun.which('strace') ? Bun.spawnSync(['strace', '-qq', '-e', 'trace=none', 'true']).exitCode === 0 : false
  if (!strace) console.warn('skipping the database_sync tests: strace is not installed or may not trace here')
  // PRAGMA synchronous is per connection and the writer's is not visible from outside its process:
  // what is visible is its effect. FULL syncs the WAL at every commit; NORMAL leaves that to checkpoints.
  test.skipIf(!strace)('by default (FULL) every commit is synced to disk, whichever thread waits for it; with database_sync: normal, commits add no sync', async () => {
    const writers: Record<string, unknown>[] = [{ database_writer: 'inline' }, { database_writer: 'inline', database_fsync: 'event_loop' }, { database_writer: 'thread' }]
    for (const writer of writers) {
      expect((await fsyncsFor(writer, 12)) - (await fsyncsFor(writer, 2)), `FULL, ${JSON.stringify(writer)}`).toBe(10)
      const normal = { ...writer, database_sync: 'normal' }
      expect((await fsyncsFor(normal, 12)) - (await fsyncsFor(normal, 2)), `NORMAL, ${JSON.stringify(writer)}`).toBe(0)
    }
  }, 90_000)
})

describe('a failed fsync (Linux forgets what it failed to write, and the next fsync succeeds)', () => {
  const strace = Bun.which('strace') ? Bun.spawnSync(['strace', '-qq', '-e', 'trace=none', 'true']).exitCode === 0 : false
  if (!strace) console.warn('skipping the failed-fsync tests: strace is not installed or may not trace here')

  /**
   * Waits for a traced server to end (killed by itself), killing it after 5 s: strace killed alone
   * leaves its tracee running (and holding the pipe), so the server is killed by the pid it printed.
   */
  async function stopTraced(proc: ReturnType<typeof Bun.spawn>, said: () => string): Promise<void> {
    const timer = setTimeout(() => {
      const pid = /\(pid (\d+)/.exec(said())?.[1]
      if (pid) process.kill(Number(pid), 'SIGKILL')
      proc.kill('SIGKILL')
    }, 5_000)
    await proc.exited
    clearTimeout(timer)
  }

  /**
   * Serves under strace failing the syscalls `inject` says (strace's own fault injection, per thread),
   * sends calls one at a time until one is refused, then a few more; then starts witness again on the
   * same files. The rows of every call answered 200 must be there, finished; nothing answered after
   * the failure; the process killed, saying why.
   */
  async function failingSync(extra: (db: string) => string[], init: boolean, settings: Record<string, unknown> = {}) {
    const dir = tempDir()
    const configPath = join(dir, 'witness.yaml')
    writeFileSync(configPath, JSON.stringify({ ...simConfig(sim.url, { default: [{ provider: 'sim', model: 'm', retries: 0 }] }), database: './w.db', ...settings }))
    if (init) expect((await runWitness(['init', '--config', configPath])).code).toBe(0)
    const proc = Bun.spawn(['strace', '-f', '-qq', '-o', '/dev/null', ...extra(join(dir, 'w.db')), BUN, join(ROOT, 'src/cli.ts'), 'serve', '--config', configPath, '--port', '0'], {
      cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe',
    })
    let said = ''
    const heard = (async () => {
      for await (const chunk of proc.stderr) said += new TextDecoder().decode(chunk)
    })()
    const served: number[] = []
    try {
      await eventually(() => /listening on http/.test(said), 15_000)
      const url = /listening on (http:\/\/[\d.]+:\d+)/.exec(said)![1]!
      const call = () => fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'ezra', messages: [{ role: 'user', content: 'hi' }] }) }).catch(() => null)
      let refused = 0
      for (let i = 0; i < 600 && refused === 0; i++) {
        const res = await call()
        if (res?.status === 200) served.push(Number(res.headers.get('x-witness-log-ids')))
        else refused++
      }
      expect(refused).toBe(1)
      // Nothing is acknowledged after it: each call is refused until the process is gone.
      for (let i = 0; i < 5; i++) expect((await call())?.status ?? 0).not.toBe(200)
    } finally {
      // Killed by itself, or (a failed expectation above) by the test.
      await stopTraced(proc, () => said)
      await heard
    }
    expect(proc.signalCode ?? proc.exitCode).toBeOneOf(['SIGKILL', 137])
    expect(said).toContain('witness: FATAL: the database can no longer be made durable')
    // The next start reads the WAL the killed process left back in.
    const again = await spawnWitness(configPath)
    again.proc.kill('SIGTERM')
    await again.proc.exited
    const rows = readRows(join(dir, 'w.db'))
    expect(rows.filter((r) => r.status === 'pending')).toEqual([])
    // Every call answered has its row: a success, but for one whose finish was the commit that failed
    // (answered all the same, as a held finish is), which the next start finishes as cut short.
    for (const id of served) expect(rows.find((r) => r.id === id)).toBeDefined()
    expect(served.filter((id) => rows.find((r) => r.id === id)?.status !== 'success').length).toBeLessThanOrEqual(1)
    expect(rows.filter((r) => r.status === 'success').every((r) => served.includes(r.id))).toBe(true)
    return { said, rows, served }
  }

  test.skipIf(!strace)("of the WAL, for a commit: nothing is acknowledged after it, and witness stops at once, leaving the WAL for its next start", async () => {
    // Each thread's 8th fdatasync and every one after it fail: the thread pool's, where the commits' fsyncs run.
    const { said, rows, served } = await failingSync(() => ['-e', 'trace=fdatasync', '-e', 'inject=fdatasync:error=EIO:when=8+'], false)
    expect(said).toContain('an fsync of the WAL failed (EIO')
    expect(served.length).toBeGreaterThan(0)
    // The fsync that failed was a pending row's (committed, though not durably: its call was not made,
    // and its row says so) or a finish's (its call answered, as a held finish is): no other row.
    const others = rows.filter((r) => !served.includes(r.id))
    expect(others.length).toBeLessThanOrEqual(1)
    for (const row of others) expect(row).toMatchObject({ status: 'fallback', error_message: 'not called: its pending row could not be made durable' })
  }, 60_000)

  test.skipIf(!strace)("of the WAL, inside SQLite's COMMIT (database_fsync: event_loop, the writer thread): the same, and the refused call leaves no row for the next start to take for a call cut short", async () => {
    for (const settings of [{ database_fsync: 'event_loop' }, { database_writer: 'thread' }]) {
      // The WAL's fsyncs in COMMIT: from the eighth on, each fails.
      const { said, rows, served } = await failingSync((db) => ['-P', `${db}-wal`, '-e', 'trace=fsync,fdatasync', '-e', 'inject=fsync,fdatasync:error=EIO:when=8+'], true, settings)
      expect(said).toContain("a commit's fsync failed")
      expect(served.length).toBeGreaterThan(0)
      // Its COMMIT failed, so its row was never written: SQLite's recovery at the next start does not bring it back.
      expect(rows.map((r) => r.id)).toEqual(served)
    }
  }, 90_000)

  test.skipIf(!strace)("of the database file, in a checkpoint: the checkpoint thread stops, and so does witness (no checkpoint may start the WAL over past pages the kernel dropped)", async () => {
    // Only the database file's fsyncs (-P): those of the checkpoints, the thread's second one failing.
    // With the checkpoint thread (the default), and the writer's own checkpoints (SQLite's automatic
    // ones ignore a failed fsync, so the writer runs them itself and hears of it).
    for (const settings of [{}, { database_sync: 'normal' }, { database_writer: 'thread' }]) {
      const { said, served } = await failingSync((db) => ['-P', db, '-e', 'trace=fsync', '-e', 'inject=fsync:error=EIO:when=2+'], true, settings)
      expect(said).toContain("a checkpoint's fsync failed")
      // The first checkpoint comes after 64 commits: more than 32 calls were served before the second failed.
      expect(served.length).toBeGreaterThan(32)
    }
  }, 90_000)
})

describe('the writer on its own thread (database_writer: thread)', () => {
  test('commits the rows of concurrent requests and refuses calls while the lock is held elsewhere', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_writer: 'thread', database_busy_timeout_ms: 300 }))
    running.push(w)
    const responses = await Promise.all(Array.from({ length: 50 }, () => w.infer({})))
    expect(responses.every((r) => r.status === 200)).toBe(true)
    expect(readRows(w.dbPath).filter((r) => r.status === 'success')).toHaveLength(50)
    const lock = await holdWriteLock(w.dbPath)
    const refused = await w.infer({})
    expect(refused.status).toBe(503)
    await lock.release()
    expect(sim.count()).toBe(50)
    expect((await w.infer({})).status).toBe(200)
  })
})

/** A witness in its own process, with one call hung at the upstream (its row pending). */
async function serverWithCallInFlight() {
  const dir = tempDir()
  const configPath = join(dir, 'witness.yaml')
  writeFileSync(configPath, JSON.stringify({ database: './witness.db', ...simConfig(sim.url, { default: [{ provider: 'sim', model: 'm+hang' }] }) }))
  const first = await spawnWitness(configPath)
  const call = fetch(`${first.url}/v1/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ agent: 'bezalel', messages: [{ role: 'user', content: 'hi' }] }),
  }).catch(() => null)
  while (sim.count() === 0) await Bun.sleep(5)
  return { dir, configPath, first, call }
}

describe('crash recovery', () => {
  test('a server killed with SIGKILL mid-call leaves a pending row that the next start finishes', async () => {
    const { dir, configPath, first, call } = await serverWithCallInFlight()
    first.proc.kill('SIGKILL')
    await first.proc.exited
    await call

    const dbPath = join(dir, 'witness.db')
    const [before] = readRows(dbPath)
    expect(before).toMatchObject({ status: 'pending', agent_name: 'bezalel', provider: 'sim', latency_ms: null })
    expect(String(before!.id)).toBe(sim.requests[0]!.headers['x-witness-log-id']!)

    const second = await spawnWitness(configPath)
    const [after] = readRows(dbPath)
    expect(after!.status).toBe('error')
    expect(after!.error_message).toStartWith('router stopped before the call finished (recovered at start-up ')
    second.proc.kill('SIGTERM')
    expect(await second.proc.exited).toBe(0)
  })

  test('a second server on the same database is refused, and leaves the first one\'s call in flight alone', async () => {
    const { dir, configPath, first, call } = await serverWithCallInFlight()

    const second = await runWitness(['serve', '--config', configPath, '--port', '0'])
    expect(second.code).not.toBe(0)
    expect(second.stderr).toContain('another run holds the lock')
    expect(second.stderr).toContain(`witness.db.serve.lock (pid ${first.proc.pid}`)
    // Recovery never ran: the first server's call is still pending, not "recovered".
    expect(readRows(join(dir, 'witness.db')).map((r) => r.status)).toEqual(['pending'])

    first.proc.kill('SIGKILL')
    await first.proc.exited
    await call
    const third = await spawnWitness(configPath)
    expect(readRows(join(dir, 'witness.db')).map((r) => r.status)).toEqual(['error'])
    third.proc.kill('SIGTERM')
    expect(await third.proc.exited).toBe(0)
  })
})

describe('a graceful stop', () => {
  test('one whose grace runs out finishes the rows of the calls it cuts off, as stopped by witness, not pending', async () => {
    const w = await startWitness(
      simConfig(sim.url, {
        long: [{ provider: 'sim', model: 's+chunks-200+chunk-delay-50', timeout_ms: 60_000 }],
        slow: [{ provider: 'sim', model: 'h+latency-3000' }],
        // A 503 asking for 5 s: the call is waiting to try again when the grace runs out.
        backoff: [{ provider: 'sim', model: 'b+status-503+retry-after-5', retries: 1 }, { provider: 'sim2', model: 'never-reached' }],
      }),
    )
    const post = (body: Record<string, unknown>) =>
      fetch(`${w.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'ezra', messages: [{ role: 'user', content: 'hi' }], ...body }) })
    const stream = await post({ chain: 'long', stream: true })
    const streamRead = stream.text().catch(() => 'cut')
    const answer = async (res: Response) => ({ status: res.status, headers: res.headers, body: await res.json() })
    const slow = post({ chain: 'slow' }).then(answer)
    while (sim.count() < 2) await Bun.sleep(10)
    const backingOff = post({ chain: 'backoff' }).then(answer)
    while (sim.count() < 3) await Bun.sleep(10)
    await Bun.sleep(200)
    await w.stop(300)
    const [streamed, answered, waited] = await Promise.all([streamRead, slow, backingOff])
    const rows = readRows(w.dbPath)
    expect(rows.map((r) => [r.status, r.error_message?.replace(/\d+ chunks/, 'N chunks')])).toEqual([
      ['error', 'witness stopped after N chunks'],
      ['error', 'aborted: witness stopped'],
      ['error', 'HTTP 503 service unavailable (retry-after 5 s): simulated HTTP 503'],
    ])
    // The last log line says what the stop cut.
    expect(w.logs.at(-1)).toBe('witness: stopped: 3 call(s) ended past the grace, each with its row')
    // The call waiting out its provider's Retry-After is answered as well, and neither tried again nor moved on.
    expect(sim.count()).toBe(3)
    expect(waited.status).toBe(503)
    expect(waited.body.error).toMatchObject({ type: 'witness_stopped' })
    expect(waited.headers.get('x-witness-log-ids')).toBe(String(rows[2]!.id))
    // The stream's client is told why it ended (an error event after the receipt), not left with a body cut short.
    const frames = streamed.split('\n\n').filter(Boolean)
    expect(frames.at(-2)).toStartWith(': witness-receipt ')
    expect(JSON.parse(frames.at(-1)!.slice('data: '.length)).error).toMatchObject({ type: 'witness_stopped', message: expect.stringMatching(/^witness stopped after \d+ chunks; retry the request$/) })
    // The call still waiting for its provider is answered too, with what to do and its row, not a connection cut short.
    expect(answered.status).toBe(503)
    expect(answered.body.error).toMatchObject({ type: 'witness_stopped', message: 'witness stopped before the answer was ready; retry the request' })
    expect(answered.headers.get('x-witness-log-ids')).toBe(String(rows[1]!.id))
  })
})

describe('a graceful stop, and a row still being committed', () => {
  test('a call whose pending row commits only after the grace ran out (the database was locked) is not sent, and its row says so', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_busy_timeout_ms: 5000 }))
    const lock = await holdWriteLock(w.dbPath)
    const before = sim.count()
    const answered = fetch(`${w.url}/v1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'ezra', messages: [{ role: 'user', content: 'hi' }] }),
    }).then((res) => res.status, () => 'cut')
    await Bun.sleep(100)
    const stopped = w.stop(200)
    await Bun.sleep(500) // the grace has run out: witness is cutting what is left
    await lock.release()
    await stopped
    await answered
    expect(sim.count()).toBe(before)
    expect(readRows(w.dbPath).map((r) => [r.status, r.error_message])).toEqual([['fallback', 'not called: witness stopped']])
    // Nothing was sent, and the operator's answers say so: no call, no failed attempt.
    const didCall = await runWitness(['did-call', '--db', w.dbPath, '--agent', 'ezra', '--provider', 'sim', '--json'])
    expect(JSON.parse(didCall.stdout)).toMatchObject({ called: false, calls: 0, fallback_rows: 1 })
    const stats = JSON.parse((await runWitness(['stats', '--db', w.dbPath, '--since', '1h', '--by', 'provider', '--json'])).stdout)
    expect(stats.groups).toMatchObject([{ provider: 'sim', attempts: 0, error: 0, requests: 1, request_success_rate: 0 }])
  })
})

describe('a client that leaves while its row is being committed', () => {
  test('is not called: its row ends as fallback, "not called: client disconnected", and counts as no call', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_busy_timeout_ms: 5000 }))
    try {
      const lock = await holdWriteLock(w.dbPath)
      const before = sim.count()
      const leave = new AbortController()
      const answered = fetch(`${w.url}/v1/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ agent: 'ezra', messages: [{ role: 'user', content: 'hi' }] }),
        signal: leave.signal,
      }).catch(() => 'gone')
      await Bun.sleep(150) // the pending row waits for the lock
      leave.abort()
      expect(await answered).toBe('gone')
      await Bun.sleep(100)
      await lock.release()
      await eventually(() => readRows(w.dbPath).some((r) => r.status !== 'pending'))
      expect(sim.count()).toBe(before)
      expect(readRows(w.dbPath).map((r) => [r.status, r.error_message])).toEqual([['fallback', 'not called: client disconnected']])
      const didCall = await runWitness(['did-call', '--db', w.dbPath, '--agent', 'ezra', '--provider', 'sim', '--json'])
      expect(JSON.parse(didCall.stdout)).toMatchObject({ called: false, calls: 0, fallback_rows: 1 })
    } finally {
      await w.stop(0)
    }
  })
})

describe('a graceful stop, and a try failing as the grace runs out', () => {
  test('a call whose failed try is still being recorded when the grace runs out is answered 503, not left waiting out its Retry-After', async () => {
    let calls = 0
    let answer!: () => void
    const upstream = Bun.serve({
      hostname: '127.0.0.1',
      port: 0,
      async fetch() {
        calls++
        await new Promise<void>((resolve) => (answer = resolve))
        return Response.json({ error: { message: 'busy' } }, { status: 503, headers: { 'retry-after': '5' } })
      },
    })
    try {
      const w = await startWitness({
        providers: { up: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1` } },
        chains: { default: [{ provider: 'up', model: 'm', retries: 1 }] },
        database_busy_timeout_ms: 5000,
      })
      const answered = fetch(`${w.url}/v1/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ agent: 'ezra', messages: [{ role: 'user', content: 'hi' }] }),
      }).then(async (res) => ({ status: res.status, body: await res.json() }), () => 'cut')
      while (calls < 1) await Bun.sleep(5)
      const lock = await holdWriteLock(w.dbPath) // the try's row is finished behind this lock
      answer() // a 503 asking for 5 s
      await Bun.sleep(50)
      const stopped = w.stop(200)
      await Bun.sleep(400) // the grace has run out while the row waited
      await lock.release()
      await stopped
      expect(await answered).toMatchObject({ status: 503, body: { error: { type: 'witness_stopped' } } })
      expect(calls).toBe(1)
    } finally {
      upstream.stop(true)
    }
  })
})

describe('a graceful stop, and an answer still being written', () => {
  test("a call that finished within the grace gets its whole answer, even to a client reading slowly", async () => {
    const big = JSON.stringify({
      id: 'c1', object: 'chat.completion', model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'x'.repeat(8 * 1024 * 1024) }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    })
    const provider = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: async () => (await Bun.sleep(300), new Response(big, { headers: { 'content-type': 'application/json' } })) })
    try {
      const w = await startWitness({ providers: { big: { type: 'openai', base_url: `http://127.0.0.1:${provider.port}/v1` } }, chains: { default: [{ provider: 'big', model: 'm' }] } })
      const { connect } = await import('node:net')
      const socket = connect(Number(new URL(w.url).port), '127.0.0.1')
      const chunks: Buffer[] = []
      socket.on('data', (d: Buffer) => chunks.push(d))
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
      socket.on('error', () => {})
      await new Promise<void>((resolve) => socket.on('connect', () => resolve()))
      const body = JSON.stringify({ agent: 'ezra', messages: [{ role: 'user', content: 'hi' }] })
      socket.write(`POST /v1/infer HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
      socket.pause() // a client slow to read
      await Bun.sleep(100) // the call is under way
      const stopped = w.stop(5000)
      await Bun.sleep(1000) // the call finished at 300 ms; its answer waits in the socket
      socket.resume()
      await Promise.all([stopped, closed])
      const all = Buffer.concat(chunks)
      const headEnd = all.indexOf('\r\n\r\n')
      const length = Number(/content-length: (\d+)/i.exec(all.subarray(0, headEnd).toString('latin1'))?.[1])
      expect(all.length - headEnd - 4).toBe(length)
    } finally {
      provider.stop(true)
    }
  })
})

describe('a graceful stop, within its grace', () => {
  test('a client that leaves on its own while the stop waits is recorded as leaving, not as stopped by witness', async () => {
    const w = await startWitness(simConfig(sim.url, { long: [{ provider: 'sim', model: 's+chunks-200+chunk-delay-50', timeout_ms: 60_000 }] }))
    const client = new AbortController()
    const res = await fetch(`${w.url}/v1/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ agent: 'ezra', chain: 'long', stream: true, messages: [{ role: 'user', content: 'hi' }] }),
      signal: client.signal,
    })
    const read = res.text().catch(() => 'left')
    await Bun.sleep(200)
    const stopped = w.stop(20_000)
    await Bun.sleep(200)
    client.abort()
    await read
    await stopped
    expect(readRows(w.dbPath).map((r) => [r.status, r.error_message?.replace(/\d+ chunks/, 'N chunks')])).toEqual([['error', 'client disconnected after N chunks']])
  })
})

describe('a port already taken', () => {
  // Bun turns SO_REUSEPORT on for development: false; with it, a second server bound the same port
  // and the kernel split the calls between two databases, with nothing said.
  test('a second server (another database) on a port in use fails at start-up instead of sharing it', async () => {
    const write = (name: string) => {
      const path = join(tempDir(), 'witness.yaml')
      writeFileSync(path, JSON.stringify({ database: `./${name}.db`, ...simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }) }))
      return path
    }
    const first = await spawnWitness(write('first'))
    const port = new URL(first.url).port
    const second = await runWitness(['serve', '--config', write('second'), '--port', port])
    first.proc.kill('SIGTERM')
    expect(await first.proc.exited).toBe(0)
    expect(second.code).not.toBe(0)
    expect(second.stderr).toContain(`port ${port} in use`)
  })

  test('so does a second simulator', () => {
    expect(() => startSimulator({ port: sim.port })).toThrow('in use')
  })
})

describe('concurrency', () => {
  test('200 concurrent requests leave exactly their rows, none pending, ids distinct', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm+latency-5' }] }))
    running.push(w)
    const responses = await Promise.all(Array.from({ length: 200 }, (_, i) => w.infer({ agent: `agent-${i % 7}` })))
    expect(responses.every((r) => r.status === 200)).toBe(true)
    const logIds = responses.map((r) => Number(r.headers.get('x-witness-log-ids')))
    expect(new Set(logIds).size).toBe(200)
    const rows = readRows(w.dbPath)
    expect(rows).toHaveLength(200)
    expect(rows.every((r) => r.status === 'success')).toBe(true)
    expect(rows.map((r) => r.id).sort((a, b) => a - b)).toEqual([...logIds].sort((a, b) => a - b))
    expect(new Set(readMeta(w.dbPath).map((m) => m.request_id)).size).toBe(200)
    expect(sim.count()).toBe(200)
    // Group commit really grouped: fewer commits than writes.
    expect(w.store.counters.batches).toBeLessThan(w.store.counters.ops)
  })

  test('200 concurrent requests with failures and fallbacks: every row finished, each request ends once', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm+status-503', retries: 1 }, { provider: 'sim2', model: 'ok' }] }, { policy: { cooldown_failures: 1000 } }))
    running.push(w)
    const responses = await Promise.all(Array.from({ length: 200 }, () => w.infer({})))
    expect(responses.every((r) => r.status === 200)).toBe(true)
    const rows = readRows(w.dbPath)
    expect(rows).toHaveLength(800)
    const count = (s: string) => rows.filter((r) => r.status === s).length
    expect([count('error'), count('fallback'), count('success'), count('pending')]).toEqual([400, 200, 200, 0])
    expect(sim.count()).toBe(600)
  })
})
