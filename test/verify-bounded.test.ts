/**
 * verify in bounded memory: what it reads goes to a work file on disk
 * (src/proof/work-store.ts) and the checks are queries over it, so a log
 * bigger than memory verifies. The work directory goes away afterwards, and
 * on SIGTERM; --work-dir puts it elsewhere. Lists of row ids in messages
 * stay short however many rows they name. Years of signed checkpoints are
 * checked one at a time from the work file too.
 */
import { Database } from 'bun:sqlite'
import { beforeAll, describe, expect, test } from 'bun:test'
import { copyFileSync, mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { INSERT_CHECKPOINT_SQL, signCheckpoint } from '../src/proof/checkpoint.ts'
import { ensureSigningKey } from '../src/proof/keys.ts'
import { BUN, ROOT } from './support/process.ts'
import { seedRows } from './support/seed.ts'
import { tempDir } from './support/temp.ts'

/** Rows of the big log, and the bytes of upstream error text each one holds. */
const BIG_ROWS = 8000
const ROW_TEXT_BYTES = 32_000

function verifyArgs(args: string[], preload: string[] = []): string[] {
  return [BUN, ...preload, join(ROOT, 'src/cli.ts'), 'verify', ...args]
}

async function verify(args: string[], preload: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn(verifyArgs(args, preload), { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdout: 'pipe', stderr: 'pipe' })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { code, stdout, stderr }
}

/** `count` finished rows written by the real store (which chains them), each with `textBytes` of error text. */
async function logOf(count: number, textBytes = 0): Promise<string> {
  const dbPath = join(tempDir(), 'witness.db')
  const padding = 'x'.repeat(textBytes)
  const start = Date.now() - count * 1000
  await seedRows(dbPath, Array.from({ length: count }, (_, i) => ({ timestamp: new Date(start + i * 1000).toISOString(), status: 'error' as const, errorMessage: `HTTP 500 (${i}) ${padding}` })))
  return dbPath
}

describe('a log bigger than what verify may hold', () => {
  let bigDb: string
  beforeAll(async () => {
    bigDb = await logOf(BIG_ROWS, ROW_TEXT_BYTES)
  }, 120_000)

  test(`verify checks ${BIG_ROWS} rows holding 256 MB of text with a peak RSS under 200 MB (holding every row and its record, it took 1.1 GB)`, async () => {
    const work = tempDir()
    const { code, stdout, stderr } = await verify(['--db', bigDb, '--work-dir', work], ['--preload', join(ROOT, 'test/support/max-rss.ts')])
    expect(stdout).toStartWith(`verified ${bigDb}: chain entries 1-${BIG_ROWS}, ${BIG_ROWS} rows checked`)
    expect(code).toBe(0)
    const peakKb = Number(/max-rss-kb (\d+)/.exec(stderr)?.[1])
    expect(peakKb * 1024).toBeLessThan(200 * 1024 * 1024)
    expect(BIG_ROWS * ROW_TEXT_BYTES).toBeGreaterThan(250 * 1000 * 1000)
    // The work file went with its directory.
    expect(readdirSync(work)).toEqual([])
  }, 120_000)

  test.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
    ['SIGHUP', 129],
  ] as const)('%s while verify reads removes its work directory (exit %d)', async (signal, exit) => {
    const work = tempDir()
    const proc = Bun.spawn(verifyArgs(['--db', bigDb, '--work-dir', work]), { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdout: 'pipe', stderr: 'pipe' })
    let seen: string[] = []
    for (let waited = 0; seen.length === 0 && waited < 30_000; waited += 5) {
      await Bun.sleep(5)
      seen = readdirSync(work)
    }
    expect(seen).toHaveLength(1)
    expect(seen[0]).toStartWith(`witness-verify-${proc.pid}-`)
    proc.kill(signal)
    expect(await proc.exited).toBe(exit)
    expect(readdirSync(work)).toEqual([])
  }, 60_000)
})

describe('the work store', () => {
  test('a work directory a verify killed with SIGKILL left is removed by the next verify there; one of a live verify, or written in lately, stays', async () => {
    const dbPath = await logOf(2)
    const work = tempDir()
    const dead = Bun.spawnSync(['true']).pid // a pid that runs no more
    const hourAgo = new Date(Date.now() - 3_600_000)
    const leave = (name: string, at: Date | null) => {
      mkdirSync(join(work, name))
      writeFileSync(join(work, name, 'work.db'), 'x'.repeat(1000))
      if (at) for (const path of [join(work, name, 'work.db'), join(work, name)]) utimesSync(path, at, at)
    }
    leave(`witness-verify-${dead}-killed`, hourAgo)
    leave(`witness-verify-${dead}-lately`, null) // a verify in another pid namespace, say
    leave(`witness-verify-${process.pid}-running`, hourAgo)
    leave('not-witness-verify-1-x', hourAgo)
    const { code } = await verify(['--db', dbPath, '--work-dir', work])
    expect(code).toBe(0)
    expect(readdirSync(work).sort()).toEqual([`witness-verify-${dead}-lately`, `witness-verify-${process.pid}-running`, 'not-witness-verify-1-x'].sort())
  }, 60_000)

  test('--work-dir must name a directory: a usage error otherwise, before anything is read', async () => {
    const dbPath = await logOf(2)
    const missing = join(tempDir(), 'nowhere')
    const { code, stderr } = await verify(['--db', dbPath, '--work-dir', missing])
    expect(code).toBe(2)
    expect(stderr).toContain(`--work-dir: no directory at ${missing}`)
    expect((await verify(['--db', dbPath, '--work-dir', dbPath])).stderr).toContain(`--work-dir: no directory at ${dbPath}`)
  }, 60_000)

  test('a database whose path holds ?, #, % and spaces is attached as itself (read-only), not as a URI with a query', async () => {
    const dbPath = await logOf(3)
    const odd = join(tempDir(), 'we?ird #dir %41 x')
    mkdirSync(odd)
    const copy = join(odd, 'log?mode=rw#%20.db')
    copyFileSync(dbPath, copy)
    const { code, stdout } = await verify(['--db', copy])
    expect(stdout).toStartWith(`verified ${copy}: chain entries 1-3, 3 rows checked`)
    expect(code).toBe(0)
    // Nothing made under another name (`log`, `file:…`): only the database and its -shm and -wal.
    expect(readdirSync(odd).filter((name) => !name.startsWith('log?mode=rw#%20.db'))).toEqual([])
  }, 60_000)
})

describe('long lists in what verify prints', () => {
  test('missing rows by the hundred are named as ranges: the first 20, then how many more', async () => {
    const dbPath = await logOf(60)
    const db = new Database(dbPath)
    db.exec('DELETE FROM request_log WHERE id % 2 = 0')
    db.close()
    const { code, stdout } = await verify(['--db', dbPath])
    expect(code).toBe(1)
    const evens = Array.from({ length: 20 }, (_, i) => 2 * (i + 1)).join(', ')
    expect(stdout).toContain(`  - rows ${evens} and 10 more (in 10 ranges) are missing\n`)
  }, 60_000)

  test('gaps in the chain of a file without its archives are noted up to 20, then counted', async () => {
    const dbPath = await logOf(60)
    const db = new Database(dbPath)
    // As if every other row had gone to an archive with its entry (rows finished out of order, by month).
    db.exec('DELETE FROM request_log WHERE id % 2 = 0 AND id < 60; DELETE FROM log_chain WHERE log_id % 2 = 0 AND log_id < 60')
    db.query("INSERT INTO witness_state (key, value, updated_at) VALUES ('archive.max_id', '58', '2026-12-07T00:00:00.000Z')").run()
    db.close()
    const { code, stdout } = await verify(['--db', dbPath])
    expect(code).toBe(0)
    const notes = stdout.split('\n').filter((line) => line.includes('are not here; archived?'))
    expect(notes).toHaveLength(20)
    expect(notes[0]).toBe('  note: chain entries 2-2 are not here; archived? (verify with the config that names the archives, without --live-only)')
    expect(stdout).toContain('  note: and 9 more gap(s) in the chain like these\n')
  }, 60_000)
})

describe('what a file holds twice, or past 2^53, is read as the old verify read it', () => {
  test('a row or a chain entry twice in one file (its table made again without its key) is named', async () => {
    for (const table of ['request_log', 'log_chain'] as const) {
      const dbPath = await logOf(5)
      const db = new Database(dbPath)
      const key = table === 'request_log' ? 'id' : 'seq'
      // The table made again without its primary key, a forged second copy of row (entry) 3 in it.
      db.exec(`CREATE TABLE copy AS SELECT * FROM ${table}; DROP TABLE ${table}; ALTER TABLE copy RENAME TO ${table}`)
      if (table === 'request_log') db.exec("INSERT INTO request_log SELECT id, timestamp, 'FORGED', provider, model, endpoint, 999999, tokens_out, latency_ms, status, error_message FROM request_log WHERE id = 3")
      else db.exec("INSERT INTO log_chain (seq, log_id, prev_hash, hash, record, chained_at) SELECT seq, log_id, prev_hash, 'f0rged', record, chained_at FROM log_chain WHERE seq = 3")
      expect((db.query(`SELECT count(*) AS n FROM ${table} WHERE ${key} = 3`).get() as { n: number }).n).toBe(2)
      db.close()
      const { code, stdout } = await verify(['--db', dbPath])
      expect(stdout).toContain(table === 'request_log' ? 'row 3 is in two copies with different contents' : 'chain entry 3 exists twice with different contents')
      expect(code).toBe(1)
    }
  }, 60_000)

  test('a made-up row with an id past 2^53 is not in the chain', async () => {
    const dbPath = await logOf(3)
    const db = new Database(dbPath)
    db.exec("INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, status) VALUES (9007199254740993, '2026-12-01T00:00:00.000Z', 'ezra', 'kimi', 'm', 'e', 'success')")
    db.close()
    const { code, stdout } = await verify(['--db', dbPath])
    expect(stdout).toMatch(/row 900719925474099\d is not in the chain/)
    expect(code).toBe(1)
  }, 60_000)
})

describe('years of signed checkpoints', () => {
  /** A copy of `base` with `count` more checkpoints of its chain head, each signed by `keyPath`'s key, five minutes apart (the first `after` slots taken). */
  async function withCheckpoints(base: string, keyPath: string, count: number, after = 0): Promise<string> {
    const dbPath = join(tempDir(), 'witness.db')
    copyFileSync(base, dbPath)
    const { key } = await ensureSigningKey(keyPath)
    const db = new Database(dbPath)
    const head = db.query('SELECT seq, hash FROM log_chain ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string }
    const insert = db.query(INSERT_CHECKPOINT_SQL)
    const start = Date.now() - 1_000_000 * 300_000
    for (let from = 0; from < count; from += 5000) {
      const signed = await Promise.all(
        Array.from({ length: Math.min(5000, count - from) }, (_, i) => signCheckpoint(key, { machine: 'alpha', seq: head.seq, head_hash: head.hash, time: new Date(start + (after + from + i) * 300_000).toISOString() })),
      )
      db.transaction(() => {
        for (const c of signed) insert.run({ $machine: c.machine, $seq: c.seq, $head_hash: c.head_hash, $time: c.time, $key_id: c.key_id, $signature: c.signature })
      })()
    }
    db.close()
    return dbPath
  }

  test('verify holds one checkpoint at a time: 200,000 signed checkpoints take no more memory than 100,000 (held in memory, each took about 0.6 KB more)', async () => {
    const base = await logOf(10)
    const keyPath = join(tempDir(), 'witness-key.json')
    const peaks: number[] = []
    // The second file is the first with 100,000 more: 200,000 signed, not 300,000.
    let previous = base
    for (const count of [100_000, 200_000]) {
      const dbPath = await withCheckpoints(previous, keyPath, 100_000, count - 100_000)
      const { code, stdout, stderr } = await verify(['--db', dbPath, '--key', keyPath], ['--preload', join(ROOT, 'test/support/max-rss.ts')])
      expect(stdout).toStartWith(`verified ${dbPath}: chain entries 1-10, 10 rows checked, ${count} signed checkpoint(s)`)
      expect(code).toBe(0)
      peaks.push(Number(/max-rss-kb (\d+)/.exec(stderr)?.[1]) * 1024)
      if (previous !== base) rmSync(previous)
      previous = dbPath
    }
    rmSync(previous)
    // SQLite's page cache for the work file (32 MB) is full by 100,000: past it, what grows is what verify holds.
    expect(peaks[1]! - peaks[0]!).toBeLessThan(30 * 1024 * 1024)
  }, 240_000)
})
