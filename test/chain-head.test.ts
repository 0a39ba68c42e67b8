/**
 * The writer reuses the chain head it left after each commit instead of
 * reading it again, unless another connection wrote in between: then it
 * reads it again, so a watchdog or start-up recovery appending to the chain
 * between two of the server's batches makes no fork.
 */
import { describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { join } from 'node:path'
import { chainAppender, chainHead } from '../src/proof/append.ts'
import { GENESIS_HASH } from '../src/proof/record.ts'
import { runArchive } from '../src/retention/archive-job.ts'
import { openStore } from '../src/telemetry/store.ts'
import { tempDir } from './support/temp.ts'

const head = () => ({ timestamp: new Date().toISOString(), agentName: 'a', provider: 'p', model: 'm', endpoint: 'http://upstream/v1/chat/completions' })
const meta = () => ({ requestId: Bun.randomUUIDv7(), chain: 'default', api: 'infer' as const, seq: 1, step: 0, try: 1, stream: false })
const ok = { status: 'success' as const, tokensIn: 1, tokensOut: 2, latencyMs: 3, errorMessage: null }

/** Every entry links to the one before it, with no gap in seq. */
function expectOneChain(path: string, entries: number): void {
  const db = new Database(path, { readonly: true })
  const rows = db.query('SELECT seq, prev_hash, hash FROM log_chain ORDER BY seq').all() as { seq: number; prev_hash: string; hash: string }[]
  db.close()
  expect(rows.length).toBe(entries)
  rows.forEach((row, i) => {
    expect(row.seq).toBe(i + 1)
    expect(row.prev_hash).toBe(i === 0 ? GENESIS_HASH : rows[i - 1]!.hash)
  })
}

describe('the chain head across writers', () => {
  test("another connection's append between two of the writer's batches is built on, not forked from", async () => {
    const path = join(tempDir(), 'w.db')
    const store = openStore(path, { sync: 'normal', busyTimeoutMs: 1000 })
    try {
      const first = await store.begin(head(), meta())
      await store.finish(first, ok)

      // What the watchdog does when the router is down: a final row and its chain entry, straight into the file.
      const other = new Database(path, { strict: true })
      const id = Number(
        other
          .query(`INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status, error_message) VALUES (?, 'witness', 'deadman', 'h', 'cfg', 'rollback', 'rolled back')`)
          .run(new Date().toISOString()).lastInsertRowid,
      )
      const appender = chainAppender(other)
      other.transaction(() => {
        appender.start()
        appender.append(id, { requestSha256: null, responseSha256: null })
      }).immediate()
      other.close()

      const second = await store.begin(head(), meta())
      await store.finish(second, ok)
      const third = await store.insert({ ...head(), status: 'fallback', errorMessage: 'fallback from p/m: timeout' }, meta())
      expect(third.hash).toMatch(/^[0-9a-f]{64}$/)
    } finally {
      store.close()
    }
    expectOneChain(path, 4)
  })

  test('the head stays known when archiving has moved every chain entry out', async () => {
    const path = join(tempDir(), 'w.db')
    const store = openStore(path, { sync: 'normal', busyTimeoutMs: 1000 })
    store.close()
    const db = new Database(path, { strict: true })
    const appender = chainAppender(db)
    for (let i = 0; i < 3; i++) {
      const id = Number(
        db.query(`INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status) VALUES (?, 'a', 'p', 'm', 'e', 'success')`).run(new Date().toISOString())
          .lastInsertRowid,
      )
      db.transaction(() => {
        appender.start()
        appender.append(id, { requestSha256: null, responseSha256: null })
      }).immediate()
      appender.committed()
    }
    const before = chainHead(db)
    expect(before?.seq).toBe(3)
    db.close()
    // Archive everything (a day from now, keep_days 0): the mover saves the head before the entries leave.
    const report = await runArchive({
      livePath: path,
      retention: { keepDays: 0, archiveDir: join(tempDir(), 'archive'), archiveKeepDays: 0, maxDbMb: 512 },
      syncConfigured: false,
      now: () => Date.now() + 86_400_000,
    })
    expect(report.moved).toBe(3)
    const after = new Database(path, { readonly: true })
    const left = (after.query('SELECT count(*) AS n FROM log_chain').get() as { n: number }).n
    const head = chainHead(after)
    after.close()
    expect(left).toBe(0)
    expect(head).toEqual(before)
  })
})
