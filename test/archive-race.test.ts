/**
 * Reads across the live file and the monthly archives while the archive job moves rows between
 * them. A read lists the month files, then reads the live file; the job copies a batch into its
 * month's file, then deletes it from the live file. Each test runs the real job (or its mover) on
 * real files at the worst moment of a real read: after the read listed the archives and before it
 * read the rows. Rows moved then into a file the read did not list (a new month, a compressed
 * month decompressed for a late row) or did not look in (stats, by the files' spans) are in
 * neither place it read, unless it reads again. The last test runs `witness archive` as its own
 * process while reads loop over the month files: neither may fail.
 */
import { Database } from 'bun:sqlite'
import { afterEach, describe, expect, test } from 'bun:test'
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { RetentionSettings } from '../src/config.ts'
import { openLiveForJob } from '../src/jobs/job-db.ts'
import { runArchive } from '../src/retention/archive-job.ts'
import { closeArchives, openArchivesFor } from '../src/retention/archive-query.ts'
import { createMover } from '../src/retention/mover.ts'
import { type ReadSources, openReadSources, openSourcesFor, pagesAcross, withSources } from '../src/retention/read-sources.ts'
import { SIDE_TABLES } from '../src/retention/side-tables.ts'
import { listAcross, storyAcross } from '../src/telemetry/across.ts'
import { didCall } from '../src/telemetry/did-call.ts'
import { type LogRow, pageOf } from '../src/telemetry/queries.ts'
import { computeStats } from '../src/telemetry/stats-window.ts'
import { BUN, ROOT } from './support/process.ts'
import { type SeedRow, seedRows } from './support/seed.ts'
import { tempDir } from './support/temp.ts'
import { writeConfigFile } from './support/witness.ts'

const NOW = Date.parse('2026-11-25T12:00:00.000Z')
const SINCE = '2026-09-01T00:00:00.000Z'
const at = (day: string, i: number) => ({ timestamp: new Date(Date.parse(day) + i * 86_400_000).toISOString() })
const SEPTEMBER: SeedRow[] = Array.from({ length: 5 }, (_, i) => at('2026-09-10T10:00:00.000Z', i))
const OCTOBER: SeedRow[] = Array.from({ length: 5 }, (_, i) => at('2026-10-10T10:00:00.000Z', i))

const closers: (() => void)[] = []
afterEach(() => {
  for (const close of closers.splice(0)) close()
})

/**
 * A live file with September and October rows, September archived (by a run on October 15th):
 * the next run, on November 25th, makes October's file. `reader` is opened as the server's is.
 */
async function beforeOctoberIsArchived() {
  const dir = tempDir()
  const livePath = join(dir, 'witness.db')
  const retention: RetentionSettings = { keepDays: 30, archiveDir: join(dir, 'archive'), archiveKeepDays: 0, maxDbMb: 512 }
  const ids = await seedRows(livePath, [...SEPTEMBER, ...OCTOBER])
  const archive = (nowMs: number) => runArchive({ livePath, retention, syncConfigured: false, now: () => nowMs })
  await archive(Date.parse('2026-10-15T12:00:00.000Z'))
  const reader = new Database(livePath, { readonly: true, strict: true })
  reader.exec('PRAGMA busy_timeout = 5000')
  closers.push(() => reader.close())
  const open = () => openReadSources(reader, retention.archiveDir, { since: SINCE })
  return { livePath, archiveDir: retention.archiveDir, ids, reader, open, archive, files: () => readdirSync(retention.archiveDir).filter((n) => n.startsWith('request_log-') && !n.endsWith('-journal')).sort() }
}

/** `read`, through withSources, with the archive job run once between its first listing and its first read; how many times it read. */
async function readWhileArchiving<T>(t: Awaited<ReturnType<typeof beforeOctoberIsArchived>>, read: (sources: ReadSources) => T | Promise<T>, runAt = NOW): Promise<{ answer: T; reads: number }> {
  let reads = 0
  const answer = await withSources(t.open, async (sources) => {
    if (reads++ === 0) await t.archive(runAt)
    return read(sources)
  })
  return { answer, reads }
}

describe('a read that listed the archives before the archive job made a new month file', () => {
  test('did-call reads again and counts the calls moved into it, where it answered without them', async () => {
    const t = await beforeOctoberIsArchived()
    const { answer, reads } = await readWhileArchiving(t, (s) => didCall(s.live, { agent: 'ezra', provider: 'kimi', since: SINCE }, s.archives))
    expect(t.files()).toEqual(['request_log-2026-09.db.zst', 'request_log-2026-10.db.zst'])
    expect(answer.calls).toBe(10)
    expect(reads).toBe(2)
  })

  test('a page of /requests reads again and lists the rows moved into it', async () => {
    const t = await beforeOctoberIsArchived()
    const { answer, reads } = await readWhileArchiving(t, (s) => pageOf(listAcross(s.sources, {}, 101), 100).rows.map((r) => r.id))
    expect(answer).toEqual([...t.ids].reverse())
    expect(reads).toBe(2)
  })

  test('the stats read again and count the attempts moved into it', async () => {
    const t = await beforeOctoberIsArchived()
    const { answer } = await readWhileArchiving(t, (s) => computeStats(s.dbs, { since: SINCE, until: new Date(NOW).toISOString(), by: 'provider' }, { pricing: {}, nowMs: NOW }))
    expect(answer.groups).toMatchObject([{ provider: 'kimi', attempts: 10, requests: 10 }])
  })

  test('the row lookup reads again and finds a row moved into it', async () => {
    const t = await beforeOctoberIsArchived()
    const id = t.ids.at(-1)!
    const { answer } = await readWhileArchiving(t, (s) => storyAcross(s.dbs, id)?.row.id ?? null)
    expect(answer).toBe(id)
  })

  test('a streamed export reads the page again over a fresh listing, and sends every row once', async () => {
    const t = await beforeOctoberIsArchived()
    const first = await t.open()
    await t.archive(NOW)
    const ids: number[] = []
    for await (const page of pagesAcross(first, t.open, {}, undefined, Infinity, 3)) ids.push(...page.map((r: LogRow) => r.id))
    expect(ids).toEqual([...t.ids].reverse())
  })
})

describe('what a read watches is its own period', () => {
  test('a read of September is not read again when the job begins October\'s file', async () => {
    const t = await beforeOctoberIsArchived()
    const period = { since: SINCE, until: '2026-10-01T00:00:00.000Z' }
    let reads = 0
    const answer = await withSources(
      () => openReadSources(t.reader, t.archiveDir, period),
      async (s) => {
        if (reads++ === 0) await t.archive(NOW)
        return didCall(s.live, { agent: 'ezra', provider: 'kimi', ...period }, s.archives).calls
      },
    )
    expect(t.files()).toEqual(['request_log-2026-09.db.zst', 'request_log-2026-10.db.zst'])
    expect([answer, reads]).toEqual([5, 1])
  })

  test('an answer from the live file alone (its window after the rows archived) is read again, with the archives, when an early move (past max_db_mb) takes rows of its window out', async () => {
    const dir = tempDir()
    const livePath = join(dir, 'witness.db')
    const archiveDir = join(dir, 'archive')
    const ids = await seedRows(livePath, Array.from({ length: 10 }, (_, i) => ({ timestamp: new Date(NOW - (10 - i) * 60_000).toISOString() })))
    const live = await openLiveForJob(livePath, 'test')
    const mover = createMover(live, { dir: archiveDir, sides: SIDE_TABLES, now: () => NOW })
    closers.push(() => live.close(), () => mover.close())
    const reader = new Database(livePath, { readonly: true, strict: true })
    closers.push(() => reader.close())
    const since = new Date(NOW - 3_600_000).toISOString()
    const read = { asked: false, answer: true, period: { since } }
    let reads = 0
    const answer = await withSources(
      () => openSourcesFor(reader, archiveDir, read),
      async (s) => {
        if (reads++ === 0) {
          expect(s.archives).toHaveLength(0)
          await mover.move(mover.oldest(new Date(NOW).toISOString(), 100).slice(0, 4))
        }
        return didCall(s.live, { agent: 'ezra', provider: 'kimi', since }, s.archives).calls
      },
    )
    expect(live.query('SELECT count(*) AS n FROM request_log').get()).toEqual({ n: ids.length - 4 })
    expect([answer, reads]).toEqual([10, 2])
  })
})

describe('a read that listed a compressed month before the archive job reopened it for a late row', () => {
  test('reads again, and finds the late row in the month compressed anew rather than in the stale decompressed copy', async () => {
    const t = await beforeOctoberIsArchived()
    await t.archive(NOW)
    // Read once: the decompressed copy of October's file is made, and fresh.
    const before = await withSources(t.open, (s) => didCall(s.live, { agent: 'ezra', provider: 'kimi', since: SINCE }, s.archives))
    expect(before.calls).toBe(10)
    // A row dated in October, written after October was compressed (another clock, a direct write).
    const [late] = await seedRows(t.livePath, [{ timestamp: '2026-10-20T10:00:00.000Z' }])
    const { answer, reads } = await readWhileArchiving(t, (s) => didCall(s.live, { agent: 'ezra', provider: 'kimi', since: SINCE }, s.archives), NOW + 86_400_000)
    expect(t.files()).toEqual(['request_log-2026-09.db.zst', 'request_log-2026-10.db.zst'])
    const live = new Database(t.livePath, { readonly: true })
    expect(live.query('SELECT id FROM request_log WHERE id = ?').get(late!)).toBeNull()
    live.close()
    expect(answer.calls).toBe(11)
    expect(reads).toBe(2)
  })
})

describe('a month file that existed when the read listed it', () => {
  test('filled, then compressed and deleted, while a read holds it open: the read finds every row moved into it at its first try', async () => {
    const t = await beforeOctoberIsArchived()
    // October 12th on are left in the live file (keep_days 30 on November 11th): October's file stays a .db.
    await t.archive(Date.parse('2026-11-11T12:00:00.000Z'))
    expect(t.files()).toEqual(['request_log-2026-09.db.zst', 'request_log-2026-10.db'])
    const answers: unknown[] = []
    await readWhileArchiving(t, (s) => {
      answers.push({ calls: didCall(s.live, { agent: 'ezra', provider: 'kimi', since: SINCE }, s.archives).calls, ids: listAcross(s.sources, {}, 100).map((r) => r.id) })
    })
    expect(t.files()).toEqual(['request_log-2026-09.db.zst', 'request_log-2026-10.db.zst'])
    // Read again all the same (the run began moving October's rows), though the first was whole.
    expect(answers).toHaveLength(2)
    expect(answers[0]).toEqual({ calls: 10, ids: [...t.ids].reverse() })
  })

  test('filled by the archive job while the stats fold it: the stats count the rows moved in after they read which files hold which days', async () => {
    const dir = tempDir()
    const livePath = join(dir, 'witness.db')
    const archiveDir = join(dir, 'archive')
    const rows: SeedRow[] = Array.from({ length: 20 }, (_, i) => at('2026-10-01T10:00:00.000Z', i))
    const ids = await seedRows(livePath, rows)
    const live = await openLiveForJob(livePath, 'test')
    const mover = createMover(live, { dir: archiveDir, sides: SIDE_TABLES, now: () => NOW })
    closers.push(() => live.close(), () => mover.close())
    const oldest = mover.oldest('2026-11-01T00:00:00.000Z', 100)
    expect(oldest.map((r) => r.id)).toEqual(ids)
    // The run has begun October's file (its first batch is moved) before the read starts.
    await mover.move(oldest.slice(0, 5))
    const reader = new Database(livePath, { readonly: true, strict: true })
    closers.push(() => reader.close())
    let moved = false
    const stats = await withSources(
      () => openReadSources(reader, archiveDir, { since: SINCE }),
      (s) =>
        computeStats(s.dbs, { since: SINCE, until: new Date(NOW).toISOString(), by: 'provider' }, {
          pricing: {},
          nowMs: NOW,
          // The next batches move while the stats are being folded, between two slices.
          pace: async () => {
            if (moved) return
            moved = true
            await mover.move(oldest.slice(5))
          },
        }),
    )
    expect(moved).toBe(true)
    expect(live.query('SELECT count(*) AS n FROM request_log').get()).toEqual({ n: 0 })
    expect(stats.groups).toMatchObject([{ provider: 'kimi', attempts: 20, requests: 20 }])
  })
})


describe('reading the archives while `witness archive` runs in another process', () => {
  test('neither the reads nor the job fail: a new month file is never seen without its tables, a journal is never taken for a crash\'s, and a reader never makes the job busy', async () => {
    const dir = tempDir()
    const archiveDir = join(dir, 'archive')
    // 8 months of 300 rows, each keeping a pending row live (so none is compressed), moved 10 rows a batch.
    const months = Array.from({ length: 8 }, (_, m) => new Date(Date.UTC(2024, 10 + m, 1)).toISOString().slice(0, 7))
    const rows: SeedRow[] = months.flatMap((month) => [
      ...Array.from({ length: 300 }, (_, i): SeedRow => ({ timestamp: new Date(Date.parse(`${month}-01T00:00:00.000Z`) + i * 60_000).toISOString() })),
      { timestamp: `${month}-20T00:00:00.000Z`, status: 'pending' },
    ])
    await seedRows(join(dir, 'witness.db'), rows)
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), { providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] }, retention: { archive_dir: './archive' } })
    const job = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'archive', '--config', configPath, '--batch-rows', '10'], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe' })
    let running = true
    const exited = job.exited.finally(() => {
      running = false
    })
    const failures: string[] = []
    let reads = 0
    // As the server reads them: each read lists the month files, opens them read-only, and queries each.
    const readAll = async () => {
      while (running) {
        const opened = await openArchivesFor(archiveDir)
        try {
          for (const archive of opened) {
            try {
              // Each query reads anew (it looks for a journal as it begins), as a request's several queries do.
              for (let i = 0; i < 20; i++) archive.db.query('SELECT count(*) AS n FROM request_log').get()
            } catch (error) {
              failures.push(`${archive.month}: ${(error as Error).message}`)
            }
          }
        } finally {
          closeArchives(opened)
        }
        reads++
        await Bun.sleep(0)
      }
    }
    await Promise.all([readAll(), readAll(), readAll()])
    expect({ code: await exited, stderr: await new Response(job.stderr).text() }).toEqual({ code: 0, stderr: '' })
    expect(await new Response(job.stdout).text()).toContain('moved 2400 rows')
    expect(reads).toBeGreaterThan(0)
    expect(failures).toEqual([])
    expect(readdirSync(archiveDir).filter((n) => n.startsWith('request_log-') && !n.endsWith('-journal')).sort()).toEqual(months.map((m) => `request_log-${m}.db`))
  })
})

describe('a month file whose writer was killed mid-batch (a hot journal)', () => {
  test('is rolled back by the first read, which finds the rows from before the batch, rather than failing until the next archive run', async () => {
    const { archiveDir, files } = await beforeOctoberIsArchived()
    // September's file as the job leaves a month it is filling: a .db.
    const packed = join(archiveDir, files()[0]!)
    const path = packed.replace(/\.zst$/, '')
    writeFileSync(path, Bun.zstdDecompressSync(readFileSync(packed)))
    rmSync(packed)
    const before = new Database(path, { readonly: true })
    const rows = (before.query('SELECT count(*) AS n FROM request_log').get() as { n: number }).n
    before.close()
    // A writer as the mover's (journal kept), killed -9 inside a transaction big enough to have
    // spilled pages into the file: its journal is hot.
    const script = `
      const { Database } = require('bun:sqlite')
      const db = new Database(${JSON.stringify(path)})
      db.exec('PRAGMA journal_mode = TRUNCATE; PRAGMA cache_size = 2; BEGIN')
      const insert = db.query("INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status) VALUES ('2026-09-20T00:00:00.000Z', 'ezra', 'kimi', 'm', 'e', 'success')")
      for (let i = 0; i < 3000; i++) insert.run()
      console.log('inside')
      await Bun.sleep(60_000)`
    const writer = Bun.spawn([BUN, '-e', script], { stdout: 'pipe', stderr: 'inherit' })
    const reader = writer.stdout.getReader()
    await reader.read()
    writer.kill('SIGKILL')
    await writer.exited
    const readonly = new Database(path, { readonly: true })
    expect(() => readonly.query('SELECT count(*) FROM request_log').get()).toThrow('readonly')
    readonly.close()

    const [archive] = await openArchivesFor(archiveDir, Date.parse('2026-09-01T00:00:00.000Z'), Date.parse('2026-09-30T00:00:00.000Z'))
    closers.push(() => closeArchives([archive!]))
    expect((archive!.db.query('SELECT count(*) AS n FROM request_log').get() as { n: number }).n).toBe(rows)
  })
})
