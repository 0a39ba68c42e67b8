/**
 * Group commit with the durability barrier: a write is acknowledged only
 * once an fsync that began after its commit has finished, while the next
 * batch may already commit; fsyncs are shared; a failed fsync refuses the
 * writes. And the store with `database_sync: full` really issues them.
 */
import { describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { existsSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { GroupCommit } from '../src/telemetry/group-commit.ts'
import { openStore } from '../src/telemetry/store.ts'
import { coalescingBarrier } from '../src/telemetry/wal-fsync.ts'
import { WAL_SIZE_LIMIT_BYTES } from '../src/telemetry/writer.ts'
import { tempDir } from './support/temp.ts'

/** An fsync the test finishes by hand, recording what was committed when it began. */
function manualSync(committed: () => number) {
  const runs: { coveredUpTo: number; finish: (error?: Error) => void }[] = []
  const sync = () =>
    new Promise<void>((resolve, reject) => {
      runs.push({ coveredUpTo: committed(), finish: (error) => (error ? reject(error) : resolve()) })
    })
  return { sync, runs }
}

const turn = () => new Promise((resolve) => setImmediate(resolve))

function commitLog() {
  const applied: number[][] = []
  return {
    applied,
    count: () => applied.flat().length,
    apply: (ops: number[]) => {
      applied.push(ops)
      return ops.map((op) => op * 10)
    },
  }
}

describe('group commit with a durability barrier', () => {
  test('a write is acknowledged only after the fsync that follows its commit; writes meanwhile queue for the next batch', async () => {
    const log = commitLog()
    const fsync = manualSync(log.count)
    const barrier = coalescingBarrier(fsync.sync)
    const commits = new GroupCommit<number, number>({ apply: log.apply, budgetMs: 1000, isBusy: () => false, durable: () => barrier.wait() })

    const acked: number[] = []
    const first = commits.submit(1).then((r) => acked.push(r))
    await turn()
    expect(log.applied).toEqual([[1]])
    expect(fsync.runs.length).toBe(1)
    expect(acked).toEqual([]) // committed, not yet durable

    // While the fsync runs the event loop goes on; new writes wait and go in one commit together.
    const more = [2, 3, 4].map((n) => commits.submit(n).then((r) => acked.push(r)))
    await turn()
    await turn()
    expect(log.applied).toEqual([[1]])
    fsync.runs[0]!.finish()
    await first
    expect(acked).toEqual([10])
    await turn()
    expect(log.applied).toEqual([[1], [2, 3, 4]])
    expect(fsync.runs.length).toBe(2)
    expect(fsync.runs[1]!.coveredUpTo).toBe(4)
    expect(acked).toEqual([10])
    fsync.runs[1]!.finish()
    await Promise.all(more)
    expect(acked).toEqual([10, 20, 30, 40])
    expect(commits.idle).toBe(true)
  })

  test('waits that arrive while an fsync runs share the next one', async () => {
    let committed = 0
    const fsync = manualSync(() => committed)
    const barrier = coalescingBarrier(fsync.sync)
    const waits = [barrier.wait()]
    committed = 1
    for (let i = 2; i <= 5; i++) {
      committed = i
      waits.push(barrier.wait())
    }
    expect(fsync.runs.length).toBe(1) // one fsync running, the other four waiting for the next
    fsync.runs[0]!.finish()
    await waits[0]
    await turn()
    expect(fsync.runs.length).toBe(2)
    expect(fsync.runs[1]!.coveredUpTo).toBe(5)
    fsync.runs[1]!.finish()
    await Promise.all(waits)
    expect(barrier.syncs).toBe(2)
  })

  test('a failed fsync refuses the writes it covered as telemetry_unavailable and reports them', async () => {
    const log = commitLog()
    const fsync = manualSync(log.count)
    const barrier = coalescingBarrier(fsync.sync)
    const undurable: number[][] = []
    const commits = new GroupCommit<number, number>({
      apply: log.apply,
      budgetMs: 1000,
      isBusy: () => false,
      durable: () => barrier.wait(),
      onUndurable: (ops) => undurable.push(ops),
    })
    const write = commits.submit(7)
    await turn()
    fsync.runs[0]!.finish(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }))
    const error = await write.catch((e: unknown) => e)
    expect((error as { type?: string }).type).toBe('telemetry_unavailable')
    expect((error as Error).message).toContain('could not be made durable: EIO')
    expect(undurable).toEqual([[7]])
    expect(commits.counters.failures).toBe(1)
  })
})

describe('the store with database_sync: full', () => {
  const head = { timestamp: new Date().toISOString(), agentName: 'a', provider: 'p', model: 'm', endpoint: 'http://upstream/v1/chat/completions' }
  const meta = { requestId: Bun.randomUUIDv7(), chain: 'default', api: 'infer' as const, seq: 1, step: 0, try: 1, stream: false }

  test('fsyncs the WAL off the event loop for every acknowledged write; normal does not, nor does full with database_fsync: event_loop (COMMIT syncs)', async () => {
    for (const [sync, fsync] of [['full', 'thread_pool'], ['normal', 'thread_pool'], ['full', 'event_loop']] as const) {
      const path = join(tempDir(), 'w.db')
      const store = openStore(path, { sync, fsync, busyTimeoutMs: 1000 })
      try {
        const id = await store.begin(head, meta)
        await store.finish(id, { status: 'success', tokensIn: 1, tokensOut: 2, latencyMs: 3, errorMessage: null })
        if (sync === 'full' && fsync === 'thread_pool') expect(store.fsyncs()).toBeGreaterThanOrEqual(2)
        else expect(store.fsyncs()).toBe(0)
        // What was acknowledged is committed: another connection sees it finished.
        const other = new Database(path, { readonly: true })
        expect(other.query('SELECT status FROM request_log WHERE id = ?').get(id)).toEqual({ status: 'success' })
        other.close()
      } finally {
        store.close()
      }
    }
  })

  test('a WAL grown while a reader held an old snapshot is cut back once it starts over', async () => {
    const path = join(tempDir(), 'w.db')
    const store = openStore(path, { sync: 'normal', busyTimeoutMs: 1000 })
    const reader = new Database(path, { readonly: true })
    try {
      // The reader's snapshot keeps every frame written after it in the WAL.
      reader.exec('BEGIN')
      reader.query('SELECT count(*) FROM request_log').get()
      while (statSync(`${path}-wal`).size <= WAL_SIZE_LIMIT_BYTES * 1.5) {
        const ids = await Promise.all(Array.from({ length: 50 }, () => store.begin(head, meta)))
        for (const id of ids) await store.finish(id, { status: 'success', tokensIn: 1, tokensOut: 2, latencyMs: 3, errorMessage: 'x'.repeat(2000) })
      }
      reader.exec('COMMIT')
      // Written on: a checkpoint runs, the WAL starts over and is cut back.
      for (let i = 0; i < 40 && statSync(`${path}-wal`).size > WAL_SIZE_LIMIT_BYTES; i++) {
        const ids = await Promise.all(Array.from({ length: 50 }, () => store.begin(head, meta)))
        for (const id of ids) await store.finish(id, { status: 'success', tokensIn: 1, tokensOut: 2, latencyMs: 3, errorMessage: null })
      }
      expect(statSync(`${path}-wal`).size).toBeLessThanOrEqual(WAL_SIZE_LIMIT_BYTES)
    } finally {
      reader.close()
      store.close()
    }
  }, 60_000)

  test('closing checkpoints the WAL into the file and removes it, and closing twice is harmless', async () => {
    const path = join(tempDir(), 'w.db')
    const store = openStore(path, { sync: 'full', busyTimeoutMs: 1000 })
    const id = await store.begin(head, meta)
    await store.finish(id, { status: 'success', tokensIn: 1, tokensOut: 2, latencyMs: 3, errorMessage: null })
    expect(existsSync(`${path}-wal`)).toBe(true)
    store.close()
    store.close()
    expect(existsSync(`${path}-wal`)).toBe(false)
    const other = new Database(path, { readonly: true })
    expect(other.query('SELECT status FROM request_log WHERE id = ?').get(id)).toEqual({ status: 'success' })
    other.close()
  })
})
