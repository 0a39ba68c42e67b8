/**
 * The writer alone: CPU per request of its two writes (the pending row, then
 * its finish with the chain entry), applied in batches (16 requests) as
 * group commit does under load. `bun bench/writer-cost.ts full|normal N [PER_BATCH]`
 * prints one JSON line.
 */
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { WriteOp } from '../src/telemetry/rows.ts'
import { ensureSchema } from '../src/telemetry/schema.ts'
import { openWriter } from '../src/telemetry/writer.ts'

const sync = (process.argv[2] ?? 'full') as 'full' | 'normal'
const perBatch = Number(process.argv[4] ?? 16)
const batches = Number(process.argv[3] ?? 1000) / perBatch
const dir = mkdtempSync(join(tmpdir(), 'witness-writer-cost-'))
const path = join(dir, 'w.db')
const db = new Database(path, { create: true })
ensureSchema(db)
db.close()
const writer = openWriter(path, { sync })
const head = { timestamp: new Date().toISOString(), agentName: 'bench', provider: 'sim', model: 'bench-model', endpoint: 'http://127.0.0.1:9100/v1/chat/completions' }
const meta = { requestId: Bun.randomUUIDv7(), chain: 'default', api: 'chat.completions' as const, seq: 1, step: 0, try: 1, stream: false }
const outcome = { status: 'success' as const, tokensIn: 12, tokensOut: 34, latencyMs: 3, errorMessage: null, httpStatus: 200, responseId: 'chatcmpl-1', servedModel: 'bench-model', requestSha256: 'a'.repeat(64), responseSha256: 'b'.repeat(64) }
let open: number[] = []
const cpu0 = process.cpuUsage()
for (let b = 0; b < batches; b++) {
  const ops: WriteOp[] = open.map((id) => ({ kind: 'finish', id, outcome }))
  for (let i = 0; i < perBatch; i++) ops.push({ kind: 'begin', head, meta })
  open = writer.apply(ops).slice(open.length).map((r) => r.id)
}
const cpu = process.cpuUsage(cpu0)
console.log(JSON.stringify({ sync, cpu_us_per_request: (cpu.user + cpu.system) / (batches * perBatch) }))
writer.close()
rmSync(dir, { recursive: true, force: true })
