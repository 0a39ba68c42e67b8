/**
 * Where the writer's time goes, in two parts (`bun bench/writer-anatomy.ts`,
 * printed as markdown; docs/BENCHMARKS.md quotes a run):
 *
 * 1. The real writer (openWriter), one request per commit and 16: CPU per
 *    request and the WAL frames each commit writes, attributed to the table
 *    or index that owns each page (SQLite's dbstat). Every frame is two
 *    pwrite calls (its header, then the page), so frames are the cost that
 *    grows with the number of b-trees a row touches.
 * 2. The same pending row and finish as raw statements, part by part: the
 *    request_log row alone, then with the four time indexes, the pending
 *    index, the meta row, the chain entry. What each part costs per request.
 */
import { Database } from 'bun:sqlite'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { WriteOp } from '../src/telemetry/rows.ts'
import { ensureSchema } from '../src/telemetry/schema.ts'
import { openWriter } from '../src/telemetry/writer.ts'

const REPS = 3
const TIME_INDEXES = ['request_log_timestamp', 'request_log_agent_time', 'request_log_agent_provider_time', 'request_log_provider_time']
const ENDPOINT = 'http://127.0.0.1:9100/v1/chat/completions'

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

function freshDb(prepare: (db: Database) => void = () => {}): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'witness-writer-anatomy-'))
  const path = join(dir, 'w.db')
  const db = new Database(path, { create: true })
  ensureSchema(db)
  prepare(db)
  db.close()
  return { dir, path }
}

/** Part 1: the real writer. Returns CPU µs per request and, from a WAL kept un-checkpointed, frames per commit by owner. */
function realWriter(perBatch: number): { usPerRequest: number; framesPerCommit: number; byOwner: [string, number][] } {
  const { dir, path } = freshDb()
  const writer = openWriter(path, { sync: 'normal' })
  const head = () => ({ timestamp: new Date().toISOString(), agentName: 'bench', provider: 'sim', model: 'bench-model', endpoint: ENDPOINT })
  const meta = () => ({ requestId: Bun.randomUUIDv7(), chain: 'default', api: 'chat.completions' as const, seq: 1, step: 0, try: 1, stream: false })
  const outcome = (id: number) => ({
    status: 'success' as const, tokensIn: 12, tokensOut: 34, latencyMs: 3, errorMessage: null, httpStatus: 200,
    responseId: `chatcmpl-${id}`, servedModel: 'bench-model', requestSha256: 'a'.repeat(64), responseSha256: 'b'.repeat(64),
  })
  let open: number[] = []
  // Each commit finishes the previous batch's rows and begins new ones, as group commit does under load.
  const step = () => {
    const ops: WriteOp[] = open.map((id) => ({ kind: 'finish', id, outcome: outcome(id) }))
    for (let i = 0; i < perBatch; i++) ops.push({ kind: 'begin', head: head(), meta: meta() })
    open = writer.apply(ops).slice(open.length).map((r) => r.id)
  }
  const requests = 16_000
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < requests / perBatch; i++) step()
  const cpu = process.cpuUsage(cpu0)

  // Frames: empty the WAL (TRUNCATE), then read what the next 20 commits write to it. 20 commits
  // stay under the writer's autocheckpoint (1000 frames), so the WAL holds them all, in order.
  const side = new Database(path)
  side.exec('PRAGMA wal_checkpoint(TRUNCATE)')
  side.close()
  const commits = 20
  for (let i = 0; i < commits; i++) step()
  const wal = readFileSync(`${path}-wal`)
  const pageSize = wal.readUInt32BE(8)
  const pages: number[] = []
  let seen = 0
  for (let off = 32; off + 24 + pageSize <= wal.length && seen < commits; off += 24 + pageSize) {
    pages.push(wal.readUInt32BE(off))
    if (wal.readUInt32BE(off + 4) !== 0) seen++ // a commit frame records the database size
  }
  writer.close()
  const ro = new Database(path, { readonly: true })
  const owner = new Map<number, string>()
  for (const r of ro.query('SELECT name, pageno FROM dbstat').all() as { name: string; pageno: number }[]) owner.set(r.pageno, r.name)
  ro.close()
  const counts = new Map<string, number>()
  for (const p of pages) {
    const name = p === 1 ? 'page 1 (header)' : (owner.get(p) ?? 'pointer map / free')
    counts.set(name, (counts.get(name) ?? 0) + 1)
  }
  rmSync(dir, { recursive: true, force: true })
  return {
    usPerRequest: (cpu.user + cpu.system) / requests,
    framesPerCommit: pages.length / seen,
    byOwner: [...counts].sort((a, b) => b[1] - a[1]).map(([n, c]) => [n, c / seen]),
  }
}

/** Part 2: the pending row and its finish as raw statements, with the named parts only. */
function parts(variant: readonly string[], perBatch: number): number {
  const has = (part: string) => variant.includes(part)
  const { dir, path } = freshDb((db) => {
    if (!has('time indexes')) for (const index of TIME_INDEXES) db.exec(`DROP INDEX ${index}`)
    if (!has('pending index')) db.exec('DROP INDEX request_log_pending')
  })
  const db = new Database(path, { strict: true })
  db.exec('PRAGMA synchronous = NORMAL')
  const begin = db.query(`INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status) VALUES (?, 'bench', 'sim', 'bench-model', '${ENDPOINT}', 'pending')`)
  const finish = db.query(`UPDATE request_log SET status = 'success', tokens_in = 12, tokens_out = 34, latency_ms = 3 WHERE id = ? AND status = 'pending'`)
  const beginMeta = db.query(`INSERT INTO request_log_meta (log_id, request_id, chain, api, seq, step, try, stream) VALUES (?, ?, 'default', 'chat.completions', 1, 0, 1, 0)`)
  const finishMeta = db.query(`UPDATE request_log_meta SET http_status = 200, response_id = ?, served_model = 'bench-model' WHERE log_id = ?`)
  const chain = db.query('INSERT INTO log_chain (seq, log_id, prev_hash, hash, record, chained_at) VALUES (?, ?, ?, ?, ?, ?)')
  let seq = 0
  let prev = '0'.repeat(64)
  let open: number[] = []
  const batch = db.transaction(() => {
    for (const id of open) {
      finish.run(id)
      if (has('meta row')) finishMeta.run(`chatcmpl-${id}`, id)
      if (has('chain entry')) {
        const record = JSON.stringify([[id, new Date().toISOString(), 'bench', 'sim', 'bench-model', ENDPOINT, 12, 34, 3, 'success', null], Bun.randomUUIDv7(), `chatcmpl-${id}`, 'a'.repeat(64), 'b'.repeat(64)])
        const hash = Bun.SHA256.hash(prev + record, 'hex')
        chain.run(++seq, id, prev, hash, record, new Date().toISOString())
        prev = hash
      }
    }
    open = []
    for (let i = 0; i < perBatch; i++) {
      const id = Number(begin.run(new Date().toISOString()).lastInsertRowid)
      if (has('meta row')) beginMeta.run(id, Bun.randomUUIDv7())
      open.push(id)
    }
  })
  const requests = 16_000
  const cpu0 = process.cpuUsage()
  for (let i = 0; i < requests / perBatch; i++) batch.immediate()
  const cpu = process.cpuUsage(cpu0)
  db.close()
  rmSync(dir, { recursive: true, force: true })
  return (cpu.user + cpu.system) / requests
}

const out: string[] = ['## The real writer (pending row, finish, chain entry; `synchronous=NORMAL`)', '']
out.push('| requests per commit | CPU µs per request | WAL frames per commit | frames per commit by owner |', '|---|---|---|---|')
for (const perBatch of [1, 16]) {
  const runs = Array.from({ length: REPS }, () => realWriter(perBatch))
  const last = runs.at(-1)!
  const owners = last.byOwner.map(([n, c]) => `${n} ${c.toFixed(1)}`).join(', ')
  out.push(`| ${perBatch} | ${median(runs.map((r) => r.usPerRequest)).toFixed(0)} | ${last.framesPerCommit.toFixed(1)} | ${owners} |`)
}
out.push('', '## Part by part (raw statements, CPU µs per request)', '')
const ladder: string[][] = [
  ['request_log row'],
  ['request_log row', 'time indexes'],
  ['request_log row', 'time indexes', 'pending index'],
  ['request_log row', 'time indexes', 'pending index', 'meta row'],
  ['request_log row', 'time indexes', 'pending index', 'meta row', 'chain entry'],
]
out.push('| parts | 1 request per commit | 16 per commit |', '|---|---|---|')
for (const variant of ladder) {
  const cells = [1, 16].map((perBatch) => median(Array.from({ length: REPS }, () => parts(variant, perBatch))).toFixed(1))
  out.push(`| ${variant.join(' + ')} | ${cells.join(' | ')} |`)
}
console.log(out.join('\n'))
