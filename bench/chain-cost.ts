/**
 * The proof chain alone: CPU per chained row (canonical record, SHA-256,
 * the log_chain insert and the head kept in witness_state), appended in
 * transactions of 16 rows as group commit does. `bun bench/chain-cost.ts N`
 * prints one JSON line.
 */
import { Database } from 'bun:sqlite'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chainAppender } from '../src/proof/append.ts'
import type { LogRow } from '../src/proof/record.ts'
import { ensureSchema } from '../src/telemetry/schema.ts'

const N = Number(process.argv[2] ?? 32_000)
const dir = mkdtempSync(join(tmpdir(), 'witness-chain-cost-'))
const db = new Database(join(dir, 'w.db'), { create: true, strict: true })
ensureSchema(db)
db.exec('PRAGMA synchronous = NORMAL')
const chain = chainAppender(db)
const bodies = { requestSha256: 'a'.repeat(64), responseSha256: 'b'.repeat(64) }
const row = (id: number): LogRow => ({
  id, timestamp: new Date().toISOString(), agent_name: 'bench', provider: 'sim', model: 'bench-model',
  endpoint: 'http://127.0.0.1:9100/v1/chat/completions', tokens_in: 12, tokens_out: 34, latency_ms: 3, status: 'success', error_message: null,
})
const append = db.transaction((from: number) => {
  chain.start()
  for (let id = from; id < from + 16; id++) chain.append(id, bodies, { row: row(id), requestId: Bun.randomUUIDv7(), responseId: 'chatcmpl-1' })
})
const cpu0 = process.cpuUsage()
for (let id = 1; id <= N; id += 16) {
  append.immediate(id)
  chain.committed()
}
const cpu = process.cpuUsage(cpu0)
console.log(JSON.stringify({ cpu_us_per_row: (cpu.user + cpu.system) / N }))
db.close()
rmSync(dir, { recursive: true, force: true })
