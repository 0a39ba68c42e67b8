/**
 * WAL checkpoints off the event loop (src/telemetry/checkpointer.ts): the
 * server's writer never checkpoints in its COMMITs, a thread of its own
 * does, the WAL still starts over, a thread that cannot run hands the
 * checkpoints back to the writer, and a closed store leaves no WAL behind.
 */
import { Database } from 'bun:sqlite'
import { describe, expect, test } from 'bun:test'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { startCheckpointer } from '../src/telemetry/checkpointer.ts'
import type { WriteOp } from '../src/telemetry/rows.ts'
import { ensureSchema } from '../src/telemetry/schema.ts'
import { openStore } from '../src/telemetry/store.ts'
import { openWriter } from '../src/telemetry/writer.ts'
import { eventually } from './support/process.ts'
import { tempDir } from './support/temp.ts'

const head = () => ({ timestamp: new Date().toISOString(), agentName: 'ezra', provider: 'kimi', model: 'kimi-k2', endpoint: 'http://127.0.0.1:9/v1/chat/completions' })
const meta = () => ({ requestId: crypto.randomUUID(), chain: 'default', api: 'infer' as const, seq: 1, step: 0, try: 1, stream: false })
const done = { status: 'success' as const, tokensIn: 1, tokensOut: 2, latencyMs: 3, errorMessage: null }

const walBytes = (path: string) => (existsSync(`${path}-wal`) ? statSync(`${path}-wal`).size : 0)
function newDatabase(): string {
  const path = join(tempDir(), 'w.db')
  const db = new Database(path, { create: true })
  ensureSchema(db)
  db.close()
  return path
}

describe('the writer without checkpoints of its own', () => {
  test('lets the WAL grow past SQLite\'s 1000 frames until it is given them back', () => {
    const path = newDatabase()
    const writer = openWriter(path, { sync: 'normal', autocheckpoint: false })
    const commitBatches = (n: number) => {
      for (let i = 0; i < n; i++) {
        const ops: WriteOp[] = Array.from({ length: 4 }, () => ({ kind: 'insert', row: { ...head(), ...done }, meta: meta(), side: null }))
        writer.apply(ops)
      }
    }
    commitBatches(300)
    const grown = walBytes(path)
    // 300 commits of about ten pages each, none of them checkpointed: SQLite's own checkpoints would
    // have started the WAL over at 1000 frames (4 MB).
    expect(grown).toBeGreaterThan(2 * 1000 * 4096)
    writer.autocheckpoint(true)
    commitBatches(300)
    // Checkpointed and started over inside its COMMITs: the WAL did not grow further.
    expect(walBytes(path)).toBeLessThanOrEqual(grown)
    writer.close()
  })
})

describe('the server\'s store (checkpoints: thread)', () => {
  test('checkpoints on its thread, starts the WAL over, keeps every row, and leaves no WAL when closed', async () => {
    const path = newDatabase()
    const store = openStore(path, { sync: 'full', busyTimeoutMs: 2_000, checkpoints: 'thread' })
    const before = statSync(path).size
    let maxWal = 0
    for (let round = 0; round < 1_000; round++) {
      const ids = await Promise.all(Array.from({ length: 4 }, () => store.begin(head(), meta())))
      await Promise.all(ids.map((id) => store.finish(id, done)))
      maxWal = Math.max(maxWal, walBytes(path))
    }
    await eventually(() => store.checkpoints().checkpoints >= 5)
    expect(store.checkpoints().checkpoints).toBeGreaterThanOrEqual(5)
    // The rows reached the database file itself, not only the WAL.
    expect(statSync(path).size).toBeGreaterThan(before)
    // 2,000 commits of 10-15 frames would make a WAL of ~100 MB if it never started over.
    expect(maxWal).toBeLessThan(16 * 1024 * 1024)
    store.close()
    expect(existsSync(`${path}-wal`)).toBe(false)
    const db = new Database(path, { readonly: true })
    expect(db.query(`SELECT status, count(*) AS n FROM request_log GROUP BY status`).all()).toEqual([{ status: 'success', n: 4_000 }])
    db.close()
  }, 60_000)

  test("waiting for its own checkpoint spends no write's lock budget (database_busy_timeout_ms is for other processes)", async () => {
    const path = newDatabase()
    // A budget of 1 ms: any wait for the checkpoint's hold on the write lock (two fsyncs) would refuse writes.
    const store = openStore(path, { sync: 'full', busyTimeoutMs: 1, checkpoints: 'thread' })
    const refused: string[] = []
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 600; i++) {
          try {
            const id = await store.begin(head(), meta())
            await store.finish(id, done)
          } catch (error) {
            refused.push((error as Error).message)
          }
        }
      }),
    )
    expect(refused).toEqual([])
    expect(store.counters.failures).toBe(0)
    expect(store.checkpoints().checkpoints).toBeGreaterThan(0)
    store.close()
  }, 60_000)

  test('the writer takes the checkpoints back if the thread cannot run', async () => {
    const path = newDatabase()
    // A real thread, pointed at a file it cannot open: it fails to start.
    const missing = join(tempDir(), 'missing', 'w.db')
    const told: string[] = []
    const store = openStore(path, {
      sync: 'full',
      busyTimeoutMs: 2_000,
      checkpoints: 'thread',
      startCheckpoints: (_, options) => startCheckpointer(missing, options),
      onCheckpointsLost: (why) => told.push(why),
    })
    let maxWal = 0
    for (let round = 0; round < 1_000; round++) {
      const ids = await Promise.all(Array.from({ length: 4 }, () => store.begin(head(), meta())))
      await Promise.all(ids.map((id) => store.finish(id, done)))
      maxWal = Math.max(maxWal, walBytes(path))
    }
    expect(store.checkpoints().checkpoints).toBe(0)
    // The operator is told, once.
    expect(told).toHaveLength(1)
    expect(told[0]).toContain('checkpoint thread could not start')
    // SQLite's own checkpoints, back in the writer's COMMITs, started the WAL over at 1000 frames (4 MB).
    expect(maxWal).toBeLessThan(8 * 1024 * 1024)
    store.close()
  }, 60_000)

  test('a thread that cannot start says so once, and asking it for checkpoints then is harmless', async () => {
    const lost: string[] = []
    const checkpointer = startCheckpointer(join(tempDir(), 'missing', 'w.db'), { onLost: (why) => lost.push(why) })
    await eventually(() => lost.length > 0)
    expect(lost).toHaveLength(1)
    expect(lost[0]).toContain('checkpoint thread could not start')
    // Asking it for checkpoints now neither throws nor blocks; closing it returns at once.
    for (let i = 0; i < 200; i++) checkpointer.committed()
    checkpointer.close()
  })
})
