/**
 * Retention: finished rows older than keep_days move to monthly archive
 * files with their ids and side rows, nothing is lost or duplicated (also
 * when the job is killed), the live file shrinks, max_db_mb archives early,
 * old archives are deleted, and the archives can be queried.
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { RetentionSettings } from '../src/config.ts'
import { ArchiveDamagedError, ArchiveError, JobBusyError } from '../src/errors.ts'
import { sha256 } from '../src/hash.ts'
import { ensureSigningKey } from '../src/proof/keys.ts'
import { archiveLockPath, runArchive, type ArchiveJobOptions } from '../src/retention/archive-job.ts'
import { prunedArchiveMonths, recordedArchiveMonths } from '../src/retention/archive-months.ts'
import { listArchives, openArchiveReadonly, prepareReadable, readablePath } from '../src/retention/archive-files.ts'
import { archiveDatabasesFor, closeArchives, openArchivesFor } from '../src/retention/archive-query.ts'
import { archiveDirFor } from '../src/retention/read-sources.ts'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { writeSyncState } from '../src/sync/sync-state.ts'
import { REQUEST_LOG_DDL } from '../src/telemetry/schema.ts'
import { BUN, ROOT, holdJobLock, runWitness } from './support/process.ts'
import { readRows } from './support/rows.ts'
import { checkpoint, daysAgo, everyRow, seedRows } from './support/seed.ts'
import { readOnlyBeforeOpen } from './support/read-only.ts'
import { tempDir } from './support/temp.ts'
import { simConfig, startWitness } from './support/witness.ts'

/** Reads a stream until `word` has appeared `count` times. */
async function waitForCount(stream: ReadableStream<Uint8Array>, word: string, count: number): Promise<void> {
  const decoder = new TextDecoder()
  let seen = 0
  let tail = ''
  for await (const chunk of stream) {
    const text = tail + decoder.decode(chunk, { stream: true })
    seen += text.split(word).length - 1
    tail = text.slice(-word.length + 1)
    if (seen >= count) return
  }
  throw new Error(`the stream ended after ${seen} of ${count} "${word}"`)
}

const NOW = Date.parse('2026-11-25T12:00:00.000Z')
const DAY = 86_400_000

function setup(over: Partial<RetentionSettings> = {}) {
  const dir = tempDir()
  const livePath = join(dir, 'w.db')
  const retention: RetentionSettings = { keepDays: 30, archiveDir: join(dir, 'archive'), archiveKeepDays: 0, maxDbMb: 512, ...over }
  const archive = (extra: Partial<ArchiveJobOptions> = {}) => runArchive({ livePath, retention, syncConfigured: false, now: () => NOW, ...extra })
  const files = () => (existsSync(retention.archiveDir) ? readdirSync(retention.archiveDir).filter((n) => n.startsWith('request_log-') && !n.endsWith('-journal')).sort() : [])
  const rows = () => everyRow(livePath, retention.archiveDir)
  return { dir, livePath, retention, archive, files, rows }
}

/** Rows and their meta, without where they were found. */
const content = (rows: ReturnType<typeof everyRow>) => rows.map(({ row, meta }) => ({ row, meta }))

describe('archiving by age', () => {
  test("finished rows older than exactly keep_days move to their UTC month's file with the same ids and side rows; pending and younger rows stay", async () => {
    const t = setup()
    const cutoff = NOW - 30 * DAY
    const ids = await seedRows(t.livePath, [
      { timestamp: '2026-08-31T23:59:59.999Z' },
      { timestamp: '2026-09-01T00:00:00.000Z', status: 'error' },
      { timestamp: '2026-09-15T00:00:00.000Z', status: 'pending' },
      { timestamp: '2026-09-16T00:00:00.000Z', status: 'fallback', noMeta: true },
      { timestamp: new Date(cutoff - 1).toISOString(), status: 'timeout' },
      { timestamp: new Date(cutoff).toISOString() },
      { timestamp: '2026-11-20T00:00:00.000Z' },
    ])
    const before = t.rows()
    const report = await t.archive()

    expect(report.moved).toBe(4)
    expect(report.months).toEqual({ '2026-08': 1, '2026-09': 2, '2026-10': 1 })
    expect(readRows(t.livePath).map((r) => r.id)).toEqual([ids[2]!, ids[5]!, ids[6]!])
    const after = t.rows()
    expect(after.map((r) => r.row.id)).toEqual(ids)
    expect(after.map((r) => r.where)).toEqual(['2026-08', '2026-09', 'live', '2026-09', '2026-10', 'live', 'live'])
    expect(content(after)).toEqual(content(before))
    expect(after.find((r) => r.row.id === ids[1])!.meta).toMatchObject({ request_id: 'req-1', http_status: 503, cost_usd: 0.00125 })

    // August is closed (no row of it left live): compressed. September keeps a pending row live, October a young one.
    expect(t.files()).toEqual(['request_log-2026-08.db.zst', 'request_log-2026-09.db', 'request_log-2026-10.db'])
    expect(report.compressed).toEqual(['2026-08'])
    const archives = archiveDatabasesFor(t.retention.archiveDir)
    for (const { db } of archives) {
      expect((db.query("SELECT sql FROM sqlite_master WHERE name = 'request_log'").get() as { sql: string }).sql).toBe(REQUEST_LOG_DDL)
      expect(db.query("SELECT name FROM sqlite_master WHERE name IN ('request_log_meta', 'request_log_timestamp')").all()).toHaveLength(2)
    }
    closeArchives(archives)
  })

  test("a rollback row takes what its command did (deadman_rollback) into the archive with it", async () => {
    const t = setup()
    const [old, young] = await seedRows(t.livePath, [
      { timestamp: '2026-09-02T00:00:00.000Z', status: 'rollback', agent: 'ezra', noMeta: true, errorMessage: 'rollback of agent ezra after 61 s of silence' },
      { timestamp: '2026-11-20T00:00:00.000Z', status: 'rollback', agent: 'ezra', noMeta: true, errorMessage: 'rollback of agent ezra after 62 s of silence' },
    ])
    const live = new Database(t.livePath)
    const facts = live.query(
      "INSERT INTO deadman_rollback (log_id, agent, old_config_hash, new_config_hash, reason, command, exit_status, timed_out, output, recorded_by) VALUES (?, 'ezra', 'aaa', 'bbb', 'silence', 'rollback_command', 0, 0, 'restored', 'router')",
    )
    facts.run(old!)
    facts.run(young!)
    live.close()

    expect((await t.archive()).moved).toBe(1)
    const left = new Database(t.livePath, { readonly: true })
    expect(left.query('SELECT log_id FROM deadman_rollback').all()).toEqual([{ log_id: young! }])
    left.close()
    const archives = archiveDatabasesFor(t.retention.archiveDir)
    expect(archives.flatMap(({ db }) => db.query('SELECT log_id, output, recorded_by FROM deadman_rollback').all())).toEqual([{ log_id: old!, output: 'restored', recorded_by: 'router' }])
    closeArchives(archives)
  })

  test('a second run moves nothing and changes nothing', async () => {
    const t = setup()
    await seedRows(t.livePath, [{ timestamp: '2026-08-01T00:00:00.000Z' }, { timestamp: '2026-10-01T00:00:00.000Z' }, { timestamp: '2026-11-24T00:00:00.000Z' }])
    await t.archive()
    const [rows, files] = [t.rows(), t.files()]
    const again = await t.archive()
    expect(again.moved + again.movedEarly).toBe(0)
    expect(t.rows()).toEqual(rows)
    expect(t.files()).toEqual(files)
  })

  test('a run that dies after copying a batch and before deleting it is finished by the next run, with no row twice', async () => {
    const t = setup()
    await seedRows(t.livePath, Array.from({ length: 10 }, (_, i) => ({ timestamp: daysAgo(NOW, 40 + i) })))
    const before = t.rows()
    let batches = 0
    const dying = t.archive({
      batchRows: 3,
      onBatch: (e) => {
        if (e.phase === 'copied' && ++batches === 2) throw new Error('killed')
      },
    })
    await expect(dying).rejects.toThrow('killed')
    const midway = t.rows()
    // The second batch is in its archive and still live: copied, not yet deleted. Nothing is missing.
    expect(midway.filter((r) => r.where === 'live').length).toBe(7)
    expect(new Set(midway.map((r) => r.row.id))).toEqual(new Set(before.map((r) => r.row.id)))
    expect(midway.length).toBe(13)

    const report = await t.archive({ batchRows: 3 })
    expect(report.moved).toBe(7)
    const after = t.rows()
    expect(after.every((r) => r.where !== 'live')).toBe(true)
    expect(content(after)).toEqual(content(before))
  })

  test('an archive holding another row under the same id stops the run, and nothing is deleted', async () => {
    const t = setup()
    await seedRows(t.livePath, [{ timestamp: '2026-09-10T00:00:00.000Z', agent: 'ezra' }])
    await t.archive()
    // The live database is replaced by a new one whose ids start again at 1.
    const other = join(t.dir, 'other.db')
    await seedRows(other, [{ timestamp: '2026-09-11T00:00:00.000Z', agent: 'allegro' }])
    const replaced = runArchive({ livePath: other, retention: t.retention, syncConfigured: false, now: () => NOW })
    await expect(replaced).rejects.toThrow(ArchiveError)
    await expect(replaced).rejects.toThrow(/request_log-2026-09\.db holds request_log id 1 with other content/)
    expect(readRows(other).map((r) => r.agent_name)).toEqual(['allegro'])
  })

  test('a late row for a month already compressed reopens it, and it is compressed again with every row', async () => {
    const t = setup()
    await seedRows(t.livePath, [{ timestamp: '2026-08-10T00:00:00.000Z' }])
    await t.archive()
    expect(t.files()).toEqual(['request_log-2026-08.db.zst'])
    await seedRows(t.livePath, [{ timestamp: '2026-08-11T00:00:00.000Z' }])
    await t.archive()
    expect(t.files()).toEqual(['request_log-2026-08.db.zst'])
    expect(t.rows().map((r) => [r.row.timestamp, r.where])).toEqual([
      ['2026-08-10T00:00:00.000Z', '2026-08'],
      ['2026-08-11T00:00:00.000Z', '2026-08'],
    ])
  })
})

describe('space', () => {
  test('the live file shrinks: the freed pages are given back to the file system', async () => {
    const t = setup()
    await seedRows(t.livePath, [
      ...Array.from({ length: 3000 }, (_, i) => ({ timestamp: daysAgo(NOW, 60, i * 1000), status: 'error' as const, errorMessage: `upstream said: ${'x'.repeat(2000)} ${i}` })),
      { timestamp: daysAgo(NOW, 1) },
    ])
    checkpoint(t.livePath)
    const before = statSync(t.livePath).size
    expect(before).toBeGreaterThan(6 * 1024 * 1024)
    const report = await t.archive()
    expect(report.moved).toBe(3000)
    const after = statSync(t.livePath).size
    expect(after).toBeLessThan(before / 10)
    expect(report.liveBytesAfter).toBe(after)
    const db = new Database(t.livePath, { readonly: true })
    expect(db.query('PRAGMA freelist_count').get()).toEqual({ freelist_count: 0 })
    expect(db.query('SELECT count(*) AS n FROM request_log').get()).toEqual({ n: 1 })
    db.close()
  })

  test('a live file witness did not create (auto_vacuum off) cannot give space back: the report says so and how to fix it', async () => {
    const dir = tempDir()
    const livePath = join(dir, 'w.db')
    const made = new Database(livePath, { create: true })
    made.exec(REQUEST_LOG_DDL) // the operators' own table, made before witness was installed
    made.close()
    await seedRows(livePath, Array.from({ length: 2000 }, (_, i) => ({ timestamp: daysAgo(NOW, 60, i * 1000), errorMessage: 'x'.repeat(2000) })))
    const config = join(dir, 'witness.yaml')
    writeFileSync(config, 'database: ./w.db\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\nretention: { keep_days: 30, archive_dir: ./arch }\n')
    const result = await runWitness(['archive', '--config', config])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/witness archive: the live file keeps [\d.]+ MB of free space it cannot give back: it was not created by witness, so auto_vacuum is off/)
    expect(result.stdout).toContain(`With the server stopped, run: sqlite3 '${livePath}' 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM;'`)
  })

  test('over max_db_mb the oldest finished rows are archived early until the file fits; pending rows never move', async () => {
    const t = setup({ keepDays: 3650, maxDbMb: 1 })
    const ids = await seedRows(t.livePath, [
      { timestamp: daysAgo(NOW, 20), status: 'pending' },
      ...Array.from({ length: 1500 }, (_, i) => ({ timestamp: daysAgo(NOW, 10, -i * 1000), errorMessage: 'y'.repeat(2000) })),
    ])
    checkpoint(t.livePath)
    const before = t.rows()
    expect(statSync(t.livePath).size).toBeGreaterThan(3 * 1024 * 1024)
    const report = await t.archive()
    expect(report.moved).toBe(0)
    expect(report.movedEarly).toBeGreaterThan(0)
    expect(statSync(t.livePath).size).toBeLessThanOrEqual(1024 * 1024)
    const after = t.rows()
    expect(content(after)).toEqual(content(before))
    const live = after.filter((r) => r.where === 'live')
    expect(live[0]!.row.id).toBe(ids[0]!) // the pending row stayed
    const newestArchived = Math.max(...after.filter((r) => r.where !== 'live').map((r) => Date.parse(r.row.timestamp)))
    expect(live.slice(1).every((r) => Date.parse(r.row.timestamp) > newestArchived)).toBe(true)
  })

  test('over max_db_mb with the file mostly what never moves (years of checkpoints): rows still move early (writes must go on), and the run says why it cannot get under', async () => {
    const t = setup({ keepDays: 3650, maxDbMb: 1 })
    await seedRows(t.livePath, Array.from({ length: 200 }, (_, i) => ({ timestamp: daysAgo(NOW, 1, -i * 1000) })))
    const db = new Database(t.livePath)
    const add = db.query("INSERT INTO checkpoints (machine, seq, head_hash, time, key_id, signature) VALUES ('alpha', ?, ?, '2026-11-25T00:00:00.000Z', 'k1', ?)")
    db.transaction(() => {
      for (let i = 1; i <= 12_000; i++) add.run(i, 'a'.repeat(64), 's'.repeat(86))
    })()
    db.close()
    checkpoint(t.livePath)
    const report = await t.archive()
    expect([report.moved, report.movedEarly]).toEqual([0, 200])
    expect(report.notRows!.fixedBytes).toBeGreaterThan(1024 * 1024)
    expect(report.notRows!.largest[0]![0]).toBe('checkpoints')
    await seedRows(t.livePath, [{ timestamp: daysAgo(NOW, 1) }])
    const config = join(t.dir, 'witness.yaml')
    writeFileSync(config, `database: ${t.livePath}\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\nretention: { keep_days: 3650, max_db_mb: 1, archive_dir: ${t.retention.archiveDir} }\n`)
    const said = await runWitness(['archive', '--config', config])
    expect(said.stdout).toMatch(/witness archive: the live database uses [\d.]+ MB, over retention\.max_db_mb \(1 MB\), and [\d.]+ MB of it is not rows \(checkpoints [\d.]+ MB.*moving every row \(done all the same/)
  })

  test('archive_keep_days deletes archive files whose month ended longer ago, but not while they hold rows sync has not exported and pushed', async () => {
    const t = setup({ archiveKeepDays: 60 })
    const ids = await seedRows(t.livePath, [{ timestamp: '2026-06-10T00:00:00.000Z' }, { timestamp: '2026-09-10T00:00:00.000Z' }])
    const signer = { keyPath: join(t.dir, 'key.json'), machine: 'alpha' }
    // With sync configured and June not exported yet, June is kept.
    const kept = await t.archive({ syncConfigured: true })
    expect(kept.keptUnexported).toEqual(['2026-06'])
    expect(t.files()).toEqual(['request_log-2026-06.db.zst', 'request_log-2026-09.db.zst'])

    // Exported and committed in sync.work_dir, but not pushed (the remote was down): still kept.
    const db = new Database(t.livePath)
    writeSyncState(db, { watermark: ids[0]!, pending: [], repo: 'r', machine: null, pushed: null }, new Date(NOW).toISOString())
    expect((await t.archive({ syncConfigured: true })).keptUnexported).toEqual(['2026-06'])
    writeSyncState(db, { watermark: ids[0]!, pending: [], repo: 'r', machine: null, pushed: { watermark: ids[0]!, pending: [] } }, new Date(NOW).toISOString())
    db.close()
    // Exported and pushed, but with no key to sign the record of the chain entries it takes with it: kept.
    const unsigned = await t.archive({ syncConfigured: true, signer })
    expect([unsigned.deleted, unsigned.keptUnsigned]).toEqual([[], ['2026-06']])
    await ensureSigningKey(signer.keyPath)
    const pruned = await t.archive({ syncConfigured: true, signer })
    // June ended on 2026-07-01, more than 60 days ago; September ended on 2026-10-01, less.
    expect(pruned.deleted).toEqual(['2026-06'])
    expect(t.files()).toEqual(['request_log-2026-09.db.zst'])
    // June is marked deleted, so a read over it is answered without its file, even where no chain
    // entries were recorded with it (rows from before the chain) and it held the newest row moved.
    const live = new Database(t.livePath)
    expect([recordedArchiveMonths(live), prunedArchiveMonths(live)]).toEqual([['2026-09'], ['2026-06']])
    const read = { asked: true, answer: true, period: { since: '2026-06-01T00:00:00.000Z' } }
    expect(archiveDirFor(live, t.retention.archiveDir, read)).toBe(t.retention.archiveDir)
    live.exec("DELETE FROM chain_pruned; UPDATE witness_state SET value = '2026-06-10T00:00:00.000Z' WHERE key = 'archive.through'")
    expect(archiveDirFor(live, t.retention.archiveDir, read)).toBe(t.retention.archiveDir)
    // Months archived before they were recorded (an older witness) are recorded from their files by the next run.
    live.exec('DELETE FROM archive_months')
    live.close()
    await t.archive({ syncConfigured: true, signer })
    const again = new Database(t.livePath, { readonly: true })
    expect([recordedArchiveMonths(again), prunedArchiveMonths(again)]).toEqual([['2026-09'], []])
    again.close()
  })
})

describe('did-call over months retention deleted', () => {
  test('cannot say no (rows_deleted, exit 2): a call may have been among the deleted rows; a yes, or a no after them, still stands', async () => {
    const t = setup({ archiveKeepDays: 60 })
    await seedRows(t.livePath, [
      { timestamp: '2026-06-10T00:00:00.000Z', agent: 'ezra', provider: 'kimi' },
      { timestamp: '2026-09-10T00:00:00.000Z', agent: 'ezra', provider: 'groq' },
    ])
    const signer = { keyPath: join(t.dir, 'key.json'), machine: 'alpha' }
    await ensureSigningKey(signer.keyPath)
    expect((await t.archive({ signer })).deleted).toEqual(['2026-06'])
    const ask = (provider: string, since: string) =>
      runWitness(['did-call', '--db', t.livePath, '--archives', '--archive-dir', t.retention.archiveDir, '--agent', 'ezra', '--provider', provider, '--since', since, '--until', '2026-11-01T00:00:00Z'])
    // June's row (a kimi call) is gone: "no" would be a guess.
    const gone = await ask('kimi', '2026-05-01T00:00:00Z')
    expect(gone.code).toBe(2)
    expect(gone.stderr).toContain('no call found, but the rows of 2026-06 in this window (since 2026-05-01T00:00:00.000Z) were deleted by retention')
    // A call found in what is left is still a yes; a window after the deleted months still a no.
    expect((await ask('groq', '2026-05-01T00:00:00Z')).code).toBe(0)
    expect((await ask('kimi', '2026-07-01T00:00:00Z')).code).toBe(1)
  })
})

describe('archive_keep_days signs only what retention deletes', () => {
  test("a month file holding chain entries of other months' rows (put there by hand, to have their deletion signed) is kept, not signed", async () => {
    const t = setup({ archiveKeepDays: 60 })
    await seedRows(t.livePath, [{ timestamp: '2026-06-10T00:00:00.000Z' }, { timestamp: '2026-11-20T00:00:00.000Z' }])
    const signer = { keyPath: join(t.dir, 'key.json'), machine: 'alpha' }
    await ensureSigningKey(signer.keyPath)
    // A copy of the live file (the recent row and its chain entry in it) named as an old month's archive.
    mkdirSync(t.retention.archiveDir, { recursive: true })
    const live = new Database(t.livePath)
    live.exec(`VACUUM INTO '${join(t.retention.archiveDir, 'request_log-2026-05.db')}'`)
    live.close()
    const report = await t.archive({ signer })
    expect([report.deleted, report.keptForeign]).toEqual([['2026-06'], ['2026-05']])
    const db = new Database(t.livePath, { readonly: true })
    expect((db.query('SELECT DISTINCT month FROM chain_pruned').values() as [string][]).flat()).toEqual(['2026-06'])
    db.close()
  })
})

describe('a damaged archive', () => {
  /** Two closed months compressed; returns the September file. */
  async function compressedMonths() {
    const t = setup()
    await seedRows(t.livePath, [{ timestamp: '2026-08-05T00:00:00.000Z' }, { timestamp: '2026-09-05T00:00:00.000Z' }])
    await t.archive()
    expect(t.files()).toEqual(['request_log-2026-08.db.zst', 'request_log-2026-09.db.zst'])
    return { t, file: join(t.retention.archiveDir, 'request_log-2026-09.db.zst') }
  }

  test('a cut .db.zst is named (archives_unavailable), not a bare decompression error', async () => {
    const { t, file } = await compressedMonths()
    const bytes = readFileSync(file)
    writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)))
    expect(() => archiveDatabasesFor(t.retention.archiveDir)).toThrow(new ArchiveDamagedError(`archive ${file} cannot be decompressed (Decompression failed: InvalidZstdData): the file is cut or damaged; restore it from a copy`, [file]))
  })

  test('a month the archive job compressed carries a content checksum: a bit flipped anywhere in it fails the read that decompresses it (the server\'s too), naming the file, never giving wrong bytes', async () => {
    const { t, file } = await compressedMonths()
    const packed = readFileSync(file)
    // The frame header's descriptor (after the 4-byte magic): Content_Checksum_flag is bit 2.
    expect(packed[4]! & 0x04).toBe(0x04)
    for (let i = 0; i < 12; i++) {
      const bad = Buffer.from(packed)
      bad[8 + Math.floor(((bad.length - 12) * (i + 0.5)) / 12)]! ^= 0x10
      writeFileSync(file, bad)
      rmSync(join(t.retention.archiveDir, '.cache'), { recursive: true, force: true })
      let thrown: unknown
      try {
        closeArchives(await openArchivesFor(t.retention.archiveDir))
      } catch (error) {
        thrown = error
      }
      expect(thrown).toBeInstanceOf(ArchiveDamagedError)
      expect((thrown as Error).message).toStartWith(`archive ${file} cannot be decompressed`)
    }
  })

  test.skipIf(readOnlyBeforeOpen.readOnly === null)('a reader that cannot write beside the archives (a group member, a read-only mount) reads compressed months through a cache of its own', async () => {
    const { t } = await compressedMonths()
    const own = tempDir()
    const undo = readOnlyBeforeOpen.readOnly!.apply([t.retention.archiveDir])
    try {
      // The command line (synchronous), and the server's path (decompressing off the event loop).
      const asked = await runWitness(['did-call', '--db', t.livePath, '--archives', '--archive-dir', t.retention.archiveDir, '--agent', 'ezra', '--provider', 'kimi', '--since', '2026-09-01T00:00:00Z', '--until', '2026-10-01T00:00:00Z'], { XDG_CACHE_HOME: own })
      expect([asked.code, asked.stderr]).toEqual([0, ''])
      const copies = readdirSync(join(own, 'witness', 'archives'))
      expect(readdirSync(join(own, 'witness', 'archives', copies[0]!))).toEqual(['request_log-2026-09.db'])
      const before = process.env.XDG_CACHE_HOME
      process.env.XDG_CACHE_HOME = tempDir()
      try {
        const archives = await openArchivesFor(t.retention.archiveDir)
        expect(archives.map((a) => (a.db.query('SELECT count(*) AS n FROM request_log').get() as { n: number }).n)).toEqual([1, 1])
        closeArchives(archives)
      } finally {
        if (before === undefined) delete process.env.XDG_CACHE_HOME
        else process.env.XDG_CACHE_HOME = before
      }
      expect(existsSync(join(t.retention.archiveDir, '.cache'))).toBe(false)
    } finally {
      undo()
    }
  })

  test('a reader\'s own cache keeps no copy of a month retention deleted, nor one no read used for a day: every read of the archives prunes it', async () => {
    const { t } = await compressedMonths()
    const before = process.env.XDG_CACHE_HOME
    process.env.XDG_CACHE_HOME = tempDir()
    try {
      const own = join(process.env.XDG_CACHE_HOME, 'witness', 'archives', sha256(resolve(t.retention.archiveDir)).slice(0, 16))
      mkdirSync(own, { recursive: true })
      const put = (name: string, ageMs = 0) => {
        writeFileSync(join(own, name), 'copy')
        const at = (Date.now() - ageMs) / 1000
        utimesSync(join(own, name), at, at)
      }
      put('request_log-2026-08.db') // its archive is there, used just now
      put('request_log-2026-09.db', 2 * 86_400_000) // its archive is there, unused for two days
      put('request_log-2025-01.db') // its archive was deleted (archive_keep_days)
      put('.request_log-2026-08.db.4242.0a1b2c3d.tmp', 2 * 3_600_000) // left by a crash
      put('.request_log-2026-09.db.4242.1b2c3d4e.tmp') // being written by another read
      closeArchives(archiveDatabasesFor(t.retention.archiveDir, Date.parse('2026-10-01T00:00:00Z')))
      expect(readdirSync(own).sort()).toEqual(['.request_log-2026-09.db.4242.1b2c3d4e.tmp', 'request_log-2026-08.db'])
    } finally {
      if (before === undefined) delete process.env.XDG_CACHE_HOME
      else process.env.XDG_CACHE_HOME = before
    }
  })

  test('one that decompresses into a damaged database is named too, with what SQLite found', async () => {
    const { t, file } = await compressedMonths()
    const db = Buffer.from(Bun.zstdDecompressSync(readFileSync(file)))
    db.fill(0x5a, 4096 + 8, 4096 + 200) // garbage over the cells of the second page
    writeFileSync(file, Bun.zstdCompressSync(db))
    let thrown: unknown
    try {
      archiveDatabasesFor(t.retention.archiveDir)
    } catch (error) {
      thrown = error
    }
    expect(thrown).toBeInstanceOf(ArchiveDamagedError)
    expect((thrown as Error).message).toStartWith(`archive ${file} is damaged: the database it decompresses to fails SQLite's check (`)
    // Its damaged copy is not left in the cache for the next read to trust.
    expect(existsSync(join(t.retention.archiveDir, '.cache', 'request_log-2026-09.db'))).toBe(false)
  })
})

describe('queries across archives', () => {
  test('archiveDatabasesFor opens the archives of the months in a period, so live plus archives find every row of it', async () => {
    const t = setup()
    const stamps = ['2026-07-05T00:00:00.000Z', '2026-08-05T00:00:00.000Z', '2026-09-05T00:00:00.000Z', '2026-10-05T00:00:00.000Z', '2026-11-05T00:00:00.000Z', '2026-11-24T00:00:00.000Z']
    await seedRows(t.livePath, stamps.map((timestamp) => ({ timestamp })))
    await t.archive()
    expect(t.files()).toEqual(['request_log-2026-07.db.zst', 'request_log-2026-08.db.zst', 'request_log-2026-09.db.zst', 'request_log-2026-10.db.zst'])

    const since = Date.parse('2026-08-01T00:00:00.000Z')
    const until = Date.parse('2026-11-10T00:00:00.000Z')
    const archives = archiveDatabasesFor(t.retention.archiveDir, since, until)
    expect(archives.map((a) => a.month)).toEqual(['2026-08', '2026-09', '2026-10'])
    const inRange = 'SELECT id, timestamp FROM request_log WHERE timestamp >= ? AND timestamp < ?'
    const range = [new Date(since).toISOString(), new Date(until).toISOString()]
    const live = new Database(t.livePath, { readonly: true })
    const found = [live, ...archives.map((a) => a.db)].flatMap((db) => db.query(inRange).all(...range) as { timestamp: string }[])
    live.close()
    closeArchives(archives)
    expect(found.map((r) => r.timestamp).sort()).toEqual(stamps.slice(1, 5))
    // Compressed months were read through a decompressed copy; the archive files themselves are untouched.
    expect(readdirSync(join(t.retention.archiveDir, '.cache')).sort()).toEqual(['request_log-2026-08.db', 'request_log-2026-09.db', 'request_log-2026-10.db'])
  })
})

describe('one run at a time', () => {
  test('while another process holds the lock, a run fails naming the holder and touches nothing; then it runs', async () => {
    const t = setup()
    await seedRows(t.livePath, [{ timestamp: '2026-08-01T00:00:00.000Z' }])
    const holder = await holdJobLock('archive', archiveLockPath(t.retention.archiveDir))
    const busy = t.archive()
    await expect(busy).rejects.toThrow(JobBusyError)
    await expect(busy).rejects.toThrow(/another run holds the lock .*\.archive\.lock \(pid \d+/)
    expect(readRows(t.livePath)).toHaveLength(1)
    await holder.release()
    expect((await t.archive()).moved).toBe(1)
  })

  test('a lock left behind by a killed run does not block the next one', async () => {
    const t = setup()
    await seedRows(t.livePath, [{ timestamp: '2026-08-01T00:00:00.000Z' }])
    const holder = await holdJobLock('archive', archiveLockPath(t.retention.archiveDir))
    await holder.kill()
    expect(existsSync(archiveLockPath(t.retention.archiveDir))).toBe(true)
    expect((await t.archive()).moved).toBe(1)
  })
})

describe('the cache of decompressed archives', () => {
  test('a run leaves a copy being written (a young temp file) alone, and removes a crash\'s old one, its own compressing included', async () => {
    const t = setup()
    const cache = join(t.retention.archiveDir, '.cache')
    mkdirSync(cache, { recursive: true })
    const writing = join(cache, '.request_log-2026-08.db.123.ab12cd34.tmp')
    const crashed = join(cache, '.request_log-2026-07.db.99.ef56ab78.tmp')
    // The server's copies are made beside the archives (prepareReadable), its crash's left there.
    const serverWriting = join(t.retention.archiveDir, '.request_log-2026-06.db.cache.7.aa11bb22.tmp')
    const serverCrashed = join(t.retention.archiveDir, '.request_log-2026-05.db.cache.8.cc33dd44.tmp')
    // And the job's own: a month being compressed (or decompressed for a late row) when it was killed.
    const packing = join(t.retention.archiveDir, '.request_log-2026-04.db.zst.5.aa99bb88.tmp')
    const packCrashed = join(t.retention.archiveDir, '.request_log-2026-03.db.zst.6.cc77dd66.tmp')
    const unpackCrashed = join(t.retention.archiveDir, '.request_log-2026-02.db.6.ee55ff44.tmp')
    const all = [writing, crashed, serverWriting, serverCrashed, packing, packCrashed, unpackCrashed]
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000)
    for (const path of all) writeFileSync(path, 'half a copy')
    for (const path of [crashed, serverCrashed, packCrashed, unpackCrashed]) utimesSync(path, twoHoursAgo, twoHoursAgo)
    await t.archive()
    expect(all.map(existsSync)).toEqual([true, false, true, false, true, false, false])
  })

  test('a copy no read has used for a day is removed by the next run, one read since stays, and the month reads the same after', async () => {
    const t = setup()
    await seedRows(t.livePath, [{ timestamp: '2026-08-05T00:00:00.000Z' }, { timestamp: '2026-09-05T00:00:00.000Z' }])
    await t.archive()
    const dir = t.retention.archiveDir
    const [august, september] = listArchives(dir)
    expect([august!.compressed, september!.compressed]).toEqual([true, true])
    const copyOf = (month: string) => join(dir, '.cache', `request_log-${month}.db`)
    // Both months read once (a sync catching up reads every archive so), then nothing reads them for two days...
    for (const file of [august!, september!]) openArchiveReadonly(dir, file).close()
    const twoDaysAgo = (Date.now() - 2 * DAY) / 1000
    for (const month of ['2026-08', '2026-09']) utimesSync(copyOf(month), twoDaysAgo, statSync(copyOf(month)).mtimeMs / 1000)
    // ...but September is asked for again now (every read goes through readablePath; on a file system
    // mounted noatime its reads do not date the copy, so this must): its copy is used, and stays.
    const version = statSync(copyOf('2026-09')).mtimeMs
    expect(readablePath(dir, september!)).toBe(copyOf('2026-09'))
    expect(statSync(copyOf('2026-09')).mtimeMs).toBe(version)

    await t.archive()
    expect([existsSync(copyOf('2026-08')), existsSync(copyOf('2026-09'))]).toEqual([false, true])
    expect(t.files()).toEqual(['request_log-2026-08.db.zst', 'request_log-2026-09.db.zst'])
    // The next read of August decompresses it again.
    const db = openArchiveReadonly(dir, august!)
    expect(db.query('SELECT timestamp FROM request_log').all()).toEqual([{ timestamp: '2026-08-05T00:00:00.000Z' }])
    db.close()
    expect(existsSync(copyOf('2026-08'))).toBe(true)
  })
})

describe('the cache of decompressed archives, dated', () => {
  test('a copy is dated by the version of the .db.zst it was made from, not when it was written: one recompressed while the copy was being made is not taken for fresh', async () => {
    const t = setup()
    await seedRows(t.livePath, [{ timestamp: '2026-08-05T00:00:00.000Z' }])
    await t.archive()
    const dir = t.retention.archiveDir
    const file = listArchives(dir).find((f) => f.month === '2026-08')!
    expect(file.compressed).toBe(true)
    const source = statSync(file.path)
    await Bun.sleep(20) // the copy is written measurably later than the .db.zst changed
    await prepareReadable(dir, file)
    const cached = join(dir, '.cache', 'request_log-2026-08.db')
    expect(statSync(cached).mtimeMs).toBe(Math.max(source.mtimeMs, source.ctimeMs))
    rmSync(cached)
    readablePath(dir, file)
    expect(statSync(cached).mtimeMs).toBe(Math.max(source.mtimeMs, source.ctimeMs))
    // Still fresh for the version it was made from: read from the copy, not decompressed again.
    const before = statSync(cached).ino
    readablePath(dir, file)
    expect(statSync(cached).ino).toBe(before)
  })
})

describe('witness archive (the command)', () => {
  function writeConfig(dir: string, extra = ''): string {
    const path = join(dir, 'witness.yaml')
    writeFileSync(path, `database: ./w.db\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\nretention: { keep_days: 30, archive_dir: ./arch }\n${extra}`)
    return path
  }

  test('prints what it moved where, and exits 1 without touching anything while another run holds the lock', async () => {
    const dir = tempDir()
    const config = writeConfig(dir)
    await seedRows(join(dir, 'w.db'), [{ timestamp: daysAgo(Date.now(), 45) }, { timestamp: daysAgo(Date.now(), 1) }])
    const holder = await holdJobLock('archive', archiveLockPath(join(dir, 'arch')))
    const busy = await runWitness(['archive', '--config', config])
    expect(busy.code).toBe(1)
    expect(busy.stderr).toContain('archive: another run holds the lock')
    await holder.release()

    const result = await runWitness(['archive', '--config', config])
    expect(result.code).toBe(0)
    const month = daysAgo(Date.now(), 45).slice(0, 7)
    expect(result.stdout).toContain(`witness archive: moved 1 rows to ${join(dir, 'arch')} (${month}: 1)`)
    expect(result.stdout).toMatch(/live database [\d.]+ MB -> [\d.]+ MB/)
    expect(readRows(join(dir, 'w.db'))).toHaveLength(1)
  })

  test('a disk that cannot take the archive (a file size limit, as a full disk does): it fails naming the file, nothing is lost, and no temp file is left', async () => {
    const dir = tempDir()
    const config = writeConfig(dir)
    const livePath = join(dir, 'w.db')
    await seedRows(livePath, Array.from({ length: 3000 }, (_, i) => ({ timestamp: daysAgo(Date.now(), 40 + (i % 3)) })))
    const before = everyRow(livePath, join(dir, 'arch'))
    // ulimit -f stands for a full disk without root: a write past 512 KB fails (EFBIG; SIGXFSZ ignored).
    const limited = Bun.spawn(['sh', '-c', `trap '' XFSZ; ulimit -f 512; exec "${BUN}" "${join(ROOT, 'src/cli.ts')}" archive --config "${config}"`], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' })
    const [stderr, code] = await Promise.all([new Response(limited.stderr).text(), limited.exited])
    expect(code).toBe(1)
    expect(stderr).toMatch(new RegExp(`cannot write ${join(dir, 'arch')}/request_log-\\d{4}-\\d{2}\\.db: `))
    expect(content(everyRow(livePath, join(dir, 'arch')))).toEqual(content(before))
    // The compressed copy's writer cleans up after itself too.
    const script = join(dir, 'durable.ts')
    writeFileSync(script, `import { writeFileDurably } from '${join(ROOT, 'src/jobs/durable-file.ts')}'\ntry { writeFileDurably('${join(dir, 'big.bin')}', new Uint8Array(1 << 20)) } catch (e) { console.log((e as Error).message) }\n`)
    const durable = Bun.spawnSync(['sh', '-c', `trap '' XFSZ; ulimit -f 64; exec "${BUN}" "${script}"`], { cwd: ROOT })
    expect(durable.stdout.toString().trim()).toBe(`cannot write ${join(dir, 'big.bin')}: EFBIG: file too large, write`)
    expect(readdirSync(dir).filter((name) => name.endsWith('.tmp'))).toEqual([])
  })

  test('killed with SIGKILL mid-way, again and again, then re-run: no row lost, none duplicated', async () => {
    const dir = tempDir()
    const config = writeConfig(dir)
    const livePath = join(dir, 'w.db')
    const now = Date.now()
    await seedRows(livePath, [
      ...Array.from({ length: 1200 }, (_, i) => ({ timestamp: daysAgo(now, 31 + (i % 70), i), status: (['success', 'error', 'timeout', 'fallback'] as const)[i % 4] })),
      { timestamp: daysAgo(now, 50), status: 'pending' as const },
      ...Array.from({ length: 20 }, (_, i) => ({ timestamp: daysAgo(now, i % 29) })),
    ])
    const before = everyRow(livePath, join(dir, 'arch'))
    const ids = before.map((r) => r.row.id)

    for (const batchesBeforeKill of [3, 40, 90]) {
      const proc = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'archive', '--config', config, '--verbose', '--batch-rows', '4'], {
        cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe',
      })
      await waitForCount(proc.stderr, 'copied', batchesBeforeKill)
      proc.kill('SIGKILL')
      await proc.exited
      expect(proc.signalCode).toBe('SIGKILL') // it was killed mid-way, not finished
      const midway = everyRow(livePath, join(dir, 'arch'))
      expect([...new Set(midway.map((r) => r.row.id))].sort((a, b) => a - b)).toEqual(ids)
    }

    const finish = await runWitness(['archive', '--config', config])
    expect(finish.code).toBe(0)
    const after = everyRow(livePath, join(dir, 'arch'))
    expect(after.map((r) => r.row.id)).toEqual(ids) // each id exactly once
    expect(content(after)).toEqual(content(before))
    expect(after.filter((r) => r.where === 'live').map((r) => r.row.status).sort()).toEqual([...Array(20).fill('success'), 'pending'].sort())
  })
})

describe('a busy router is not stalled', () => {
  let sim: Simulator
  beforeAll(() => {
    sim = startSimulator()
  })
  afterAll(() => sim.stop())

  test('requests keep being served, none refused, while `witness archive` moves thousands of rows in another process', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { retention: { keep_days: 30, archive_dir: './arch' } }))
    try {
      await seedRows(w.dbPath, Array.from({ length: 2000 }, (_, i) => ({ timestamp: daysAgo(Date.now(), 40, i) })))
      const job = runWitness(['archive', '--config', w.configPath, '--batch-rows', '20'])
      const statuses: number[] = []
      let done = false
      void job.then(() => (done = true))
      while ((!done || statuses.length < 20) && statuses.length < 2000) {
        const batch = await Promise.all(Array.from({ length: 5 }, () => w.infer({})))
        statuses.push(...batch.map((r) => r.status))
      }
      expect((await job).code).toBe(0)
      expect(new Set(statuses)).toEqual(new Set([200]))
      const rows = readRows(w.dbPath)
      expect(rows).toHaveLength(statuses.length)
      expect(rows.every((r) => r.status === 'success')).toBe(true)
    } finally {
      await w.stop(0)
    }
  })
})
