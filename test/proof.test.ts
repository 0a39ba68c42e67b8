/**
 * The tamper-evident log: every kind of tampering made directly in SQLite,
 * in an archive and in a git export is caught by `witness verify`, which
 * names the place; an untouched log verifies; receipts verify and a changed
 * one does not; a SIGKILL leaves no gap and no fork.
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import { openLiveForJob } from '../src/jobs/job-db.ts'
import { type Checkpoint, signCheckpoint } from '../src/proof/checkpoint.ts'
import { checkpointNow } from '../src/proof/checkpoint-job.ts'
import { ensureSigningKey, loadSigningKey, publicKeyFile } from '../src/proof/keys.ts'
import { provenPruned } from '../src/proof/pruned.ts'
import { decodeReceipt, encodeReceipt } from '../src/proof/receipt.ts'
import { GENESIS_HASH, chainHash, decodeRecord, encodeRecord } from '../src/proof/record.ts'
import type { ChainEntry } from '../src/proof/verify.ts'
import { archiveLockPath, runArchive } from '../src/retention/archive-job.ts'
import { compressArchive } from '../src/retention/archive-files.ts'
import { archiveDatabasesFor, closeArchives } from '../src/retention/archive-query.ts'
import { promptTexts } from '../src/router/chain.ts'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { runSync } from '../src/sync/sync-job.ts'
import { BUN, ROOT, holdJobLock, runWitness, spawnWitness } from './support/process.ts'
import { daysAgo, seedRows } from './support/seed.ts'
import { readRows } from './support/rows.ts'
import { tempDir } from './support/temp.ts'
import { simConfig, startWitness } from './support/witness.ts'

let sim: Simulator
let dir: string
let dbPath: string
let keyPath: string
let machine: string
const receipts: string[] = []

function verify(args: string[]) {
  const proc = Bun.spawnSync([BUN, join(ROOT, 'src/cli.ts'), 'verify', ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' } })
  return { code: proc.exitCode, out: proc.stdout.toString() + proc.stderr.toString() }
}

/** A copy of the database to tamper with; the original stays intact. */
function copyDb(): string {
  const copy = join(tempDir(), 'tampered.db')
  const db = new Database(dbPath, { readonly: true })
  db.exec(`VACUUM INTO '${copy}'`)
  db.close()
  return copy
}

function exec(path: string, sql: string, ...params: (string | number | null)[]): void {
  const db = new Database(path)
  db.query(sql).run(...params)
  db.close()
}

function ids(path: string): number[] {
  return readRows(path).map((r) => r.id)
}

/** Gives row `a` the id of row `b` and `b` the id of `a`: two whole rows swapped. */
function swapRows(path: string, a: number, b: number): void {
  const db = new Database(path)
  db.transaction(() => {
    db.query('UPDATE request_log SET id = -1 WHERE id = ?').run(a)
    db.query('UPDATE request_log SET id = ? WHERE id = ?').run(a, b)
    db.query('UPDATE request_log SET id = ? WHERE id = -1').run(b)
  })()
  db.close()
}

/** Two finished rows of different agents (so a swap changes what each id holds). */
function twoRowsOfDifferentAgents(path: string) {
  const rows = readRows(path)
  const a = rows.find((r) => r.agent_name === 'agent-0' && r.status === 'success')!
  const b = rows.find((r) => r.agent_name === 'agent-1' && r.status === 'success')!
  return { a, b }
}

/** Every file under `dir` (recursively) whose name ends with `suffix`, sorted. */
function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name)
      return statSync(path).isDirectory() ? filesUnder(path, suffix) : name.endsWith(suffix) ? [path] : []
    })
}

function readLines(file: string): string[] {
  return readFileSync(file, 'utf8').split('\n').filter((l) => l.trim())
}

function writeLines(file: string, lines: string[]): void {
  writeFileSync(file, lines.length ? `${lines.join('\n')}\n` : '')
}

beforeAll(async () => {
  sim = startSimulator()
  const w = await startWitness(
    simConfig(sim.url, {
      default: [{ provider: 'sim', model: 'm+tokens-3-4' }],
      flaky: [{ provider: 'sim', model: 'down+status-503', retries: 0 }, { provider: 'sim2', model: 'ok' }],
    }),
  )
  dir = w.dir
  dbPath = w.dbPath
  keyPath = join(dir, 'witness-key.json')
  for (let i = 0; i < 6; i++) {
    const res = await w.infer({ chain: i % 3 === 0 ? 'flaky' : 'default', agent: `agent-${i % 2}` })
    expect(res.status).toBe(200)
    receipts.push(res.headers.get('x-witness-receipt')!)
  }
  machine = w.config().machine
  await w.stop(0)
  const live = await openLiveForJob(dbPath, 'test')
  expect(await checkpointNow(live, await loadSigningKey(keyPath), machine, Date.now)).not.toBeNull()
  live.close()
})
afterAll(async () => {
  await sim.stop()
})

describe('witness verify on the live database', () => {
  test('an untouched log verifies: every row chained, the checkpoint signed by this machine', () => {
    expect(existsSync(keyPath)).toBe(true)
    const { code, out } = verify(['--db', dbPath, '--key', keyPath])
    expect(out).toContain(`verified ${dbPath}: chain entries 1-${ids(dbPath).length}, ${ids(dbPath).length} rows checked, 1 signed checkpoint(s)`)
    expect(code).toBe(0)
  })

  test('a field changed after chaining is named with its old value', () => {
    const copy = copyDb()
    const { id, provider } = readRows(copy)[2]!
    exec(copy, "UPDATE request_log SET provider = 'mimo' WHERE id = ?", id)
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toContain(`row ${id} was changed after it was chained: provider was "${provider}" when chained, is now "mimo"`)
  })

  test("the provider's response id is chained too: changing it in the side table is named", () => {
    const copy = copyDb()
    const { log_id, response_id } = new Database(copy, { readonly: true }).query("SELECT log_id, response_id FROM request_log_meta WHERE response_id IS NOT NULL LIMIT 1").get() as { log_id: number; response_id: string }
    exec(copy, "UPDATE request_log_meta SET response_id = 'chatcmpl-forged' WHERE log_id = ?", log_id)
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toContain(`row ${log_id} was changed after it was chained: response_id was "${response_id}" when chained, is now "chatcmpl-forged"`)
  })

  test('the chain dropped whole (the table, the checkpoints, the marks, the schema version set back) does not pass the rows off as older than the chain', () => {
    const copy = copyDb()
    for (const sql of ['DROP TABLE log_chain', 'DROP TABLE checkpoints', 'DELETE FROM witness_state', 'PRAGMA user_version = 2']) exec(copy, sql)
    exec(copy, "UPDATE request_log SET provider = 'forged' WHERE id = 2")
    const { code, out } = verify(['--db', copy])
    expect(out).not.toContain('before the chain existed')
    expect(out).toContain('has no hash chain (schema version 2): nothing in it is proved')
    expect(code).toBe(1)
  })

  test('entries no signed checkpoint covers verify with a note that the database alone cannot show they were not rewritten', () => {
    const copy = copyDb()
    const last = ids(copy).length
    exec(copy, 'DELETE FROM checkpoints')
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(out).toContain(`chain entries 1-${last} are covered by no signed checkpoint: this database alone cannot show they were not rewritten`)
    expect(code).toBe(0)
    // The tail dropped below the newest checkpoint's entry is found; past it, only noted.
    const signed = verify(['--db', dbPath, '--key', keyPath]).out
    expect(signed).not.toContain('covered by no signed checkpoint')
  })

  test('deleted rows are named as missing', () => {
    const copy = copyDb()
    const [, , a, b] = ids(copy)
    exec(copy, 'DELETE FROM request_log WHERE id IN (?, ?)', a!, b!)
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toContain(`rows ${a}-${b} are missing`)
  })

  test('an inserted row is not in the chain', () => {
    const copy = copyDb()
    exec(
      copy,
      "INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status) VALUES ('2026-11-25T00:00:00.000Z', 'agent-0', 'sim', 'm', 'http://x', 1, 1, 5, 'success')",
    )
    const inserted = Math.max(...ids(copy))
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toContain(`row ${inserted} is not in the chain`)
  })

  test('rows with id 0 or a negative id (SQLite never gives one), finished or pending, are not in the chain, not rows from before it', () => {
    const copy = copyDb()
    for (const [id, status] of [[-5, 'success'], [-1, 'pending'], [0, 'pending']] as const) {
      exec(
        copy,
        "INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status) VALUES (?, '2026-11-25T00:00:00.000Z', 'agent-0', 'sim', 'm', 'http://x', 1, 1, 5, ?)",
        id,
        status,
      )
    }
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toContain('rows -5, -1 to 0 are not in the chain: an id below 1, which SQLite never gives a row, so they were written by hand')
    expect(out).not.toContain('finished before the chain existed')
  })

  test('two rows swapped are both named', () => {
    const copy = copyDb()
    const rows = readRows(copy)
    const a = rows.find((r) => r.agent_name === 'agent-0' && r.status === 'success')!
    const b = rows.find((r) => r.agent_name === 'agent-1' && r.status === 'success')!
    exec(copy, 'UPDATE request_log SET agent_name = ? WHERE id = ?', 'agent-1', a.id)
    exec(copy, 'UPDATE request_log SET agent_name = ? WHERE id = ?', 'agent-0', b.id)
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toContain(`row ${a.id} was changed after it was chained: agent_name was "agent-0" when chained, is now "agent-1"`)
    expect(out).toContain(`row ${b.id} was changed after it was chained: agent_name was "agent-1" when chained, is now "agent-0"`)
  })

  test("two whole rows swapped (each now under the other's id) are both named", () => {
    const copy = copyDb()
    const { a, b } = twoRowsOfDifferentAgents(copy)
    swapRows(copy, a.id, b.id)
    expect(readRows(copy).find((r) => r.id === a.id)!.agent_name).toBe('agent-1')
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toMatch(new RegExp(`row ${a.id} was changed after it was chained: .*agent_name was "agent-0" when chained, is now "agent-1"`))
    expect(out).toMatch(new RegExp(`row ${b.id} was changed after it was chained: .*agent_name was "agent-1" when chained, is now "agent-0"`))
  })

  test('the tail cut below a signed checkpoint is caught, even with the chain cut to match', () => {
    const copy = copyDb()
    const last = Math.max(...ids(copy))
    exec(copy, 'DELETE FROM request_log WHERE id >= ?', last - 1)
    exec(copy, 'DELETE FROM log_chain WHERE log_id >= ?', last - 1)
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toMatch(/the log ends before checkpoint 1: the chain ends at entry \d+, the checkpoint signed entry \d+/)
  })

  test('the newest entries deleted with the checkpoints that signed them: what the export covered, and the checkpoint ids (none is ever deleted), say so', () => {
    // What witness sync exported (its state in the file) cannot have been deleted since.
    const exported = copyDb()
    exec(exported, "INSERT INTO witness_state (key, value, updated_at) VALUES ('sync.chain_seq', 'clone-1 999 7', '2026-12-08T00:00:00.000Z')")
    const behind = verify(['--db', exported, '--key', keyPath])
    expect(behind.code).toBe(1)
    expect(behind.out).toMatch(/chain entries \d+-999 were exported by witness sync and are missing here/)
    expect(behind.out).toContain('checkpoints 2-7 were exported by witness sync and are missing from the live database: deleted')

    // A checkpoint deleted from among the others: the live file keeps every one it makes.
    const gap = copyDb()
    exec(gap, 'UPDATE checkpoints SET id = 3 WHERE id = 1')
    const gapped = verify(['--db', gap, '--key', keyPath])
    expect(gapped.code).toBe(1)
    expect(gapped.out).toContain('checkpoints 1-2 are missing from the live database, which keeps every checkpoint it makes: deleted')
    // The untouched file still verifies.
    expect(verify(['--db', copyDb(), '--key', keyPath]).code).toBe(0)
  })

  test('a chain entry rewritten to match a changed row breaks the chain after it', () => {
    const copy = copyDb()
    const db = new Database(copy)
    const entry = db.query('SELECT * FROM log_chain WHERE seq = 2').get() as { record: string; prev_hash: string; log_id: number }
    const record = entry.record.replace('"agent-1"', '"agent-9"').replace('"agent-0"', '"agent-9"')
    const hash = new Bun.CryptoHasher('sha256').update(entry.prev_hash).update(record).digest('hex')
    db.query('UPDATE log_chain SET record = ?, hash = ? WHERE seq = 2').run(record, hash)
    db.query("UPDATE request_log SET agent_name = 'agent-9' WHERE id = ?").run(entry.log_id)
    db.close()
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toContain('the chain is broken at entry 3')
  })

  test('a checkpoint forged with another key is named', async () => {
    const copy = copyDb()
    const forger = (await ensureSigningKey(join(tempDir(), 'forger.json'))).key
    const live = await openLiveForJob(copy, 'test')
    live.exec("UPDATE witness_state SET value = '0 0' WHERE key = 'chain.head'") // let the forger sign again
    live.exec('DELETE FROM checkpoints')
    await checkpointNow(live, forger, machine, Date.now)
    live.close()
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toContain(`was not signed by this machine's key (signed by key ${forger.keyId}`)
  })
})

describe('anyone can verify with the public key alone', () => {
  test('--key takes the published public-key.json, the key file or a bare JWK; another key is refused, and a file with no key is a usage error', async () => {
    const keys = tempDir()
    const published = publicKeyFile(await loadSigningKey(keyPath))
    writeFileSync(join(keys, 'public-key.json'), JSON.stringify(published))
    writeFileSync(join(keys, 'jwk.json'), JSON.stringify(published.jwk))
    expect(JSON.stringify(published)).not.toContain('"d"') // what is published holds no private half
    for (const key of [join(keys, 'public-key.json'), join(keys, 'jwk.json'), keyPath]) {
      const { code, out } = verify(['--db', dbPath, '--key', key])
      expect(out).toContain(', 1 signed checkpoint(s)')
      expect(code).toBe(0)
    }
    const other = (await ensureSigningKey(join(keys, 'other.json'))).key
    writeFileSync(join(keys, 'other-public.json'), JSON.stringify(publicKeyFile(other)))
    const wrong = verify(['--db', dbPath, '--key', join(keys, 'other-public.json')])
    expect(wrong.code).toBe(1)
    expect(wrong.out).toContain(`checkpoint 1 was not signed by this machine's key (signed by key ${published.key_id}; known: ${other.keyId})`)

    // A copy checked with no key at hand (from a directory whose config names none): not a forgery, an unchecked signature.
    const keyless = tempDir()
    const noKey = Bun.spawnSync([BUN, join(ROOT, 'src/cli.ts'), 'verify', '--db', dbPath], { cwd: keyless })
    const said = noKey.stdout.toString()
    expect(noKey.exitCode).toBe(1)
    expect(said).toContain(`the signatures of 1 checkpoint(s) were not checked: no public key is known (they name key ${published.key_id}); pass --key`)
    expect(said).not.toContain('was not signed by')

    writeFileSync(join(keys, 'not-a-key.json'), '{"hello":"world"}')
    const junk = verify(['--db', dbPath, '--key', join(keys, 'not-a-key.json')])
    expect(junk.code).toBe(2)
    expect(junk.out).toContain('holds no Ed25519 public key')
    expect(verify(['--db', dbPath, '--key', join(keys, 'absent.json')]).code).toBe(2)
  })
})

describe('receipts', () => {
  test('a receipt verifies against the log, and one changed character does not', () => {
    const receipt = receipts[0]!
    expect(decodeReceipt(receipt)!.rows.length).toBeGreaterThan(0)
    const good = verify(['--db', dbPath, '--key', keyPath, '--receipt', receipt])
    expect(good.code).toBe(0)
    const ids = decodeReceipt(receipt)!.rows.map((r) => r.id).join(', ')
    expect(good.out).toContain(ids.includes(',') ? `receipt: rows ${ids} are in the chain with the hashes the receipt gives, unchanged` : `receipt: row ${ids} is in the chain with the hash the receipt gives, unchanged`)

    const decoded = decodeReceipt(receipt)!
    const hash = decoded.rows[0]!.hash
    const flipped = encodeReceipt({ ...decoded, rows: [{ ...decoded.rows[0]!, hash: (hash[0] === 'a' ? 'b' : 'a') + hash.slice(1) }, ...decoded.rows.slice(1)] })
    const bad = verify(['--db', dbPath, '--key', keyPath, '--receipt', flipped])
    expect(bad.code).toBe(1)
    expect(bad.out).toContain(`receipt does not match the log: row ${decoded.rows[0]!.id}`)

    const mangled = receipt.slice(0, 10) + (receipt[10] === 'A' ? 'B' : 'A') + receipt.slice(11)
    expect(verify(['--db', dbPath, '--key', keyPath, '--receipt', mangled]).code).toBe(1)

    // Row ids are per machine: the same rows claimed by another machine's receipt do not verify here.
    const elsewhere = verify(['--db', dbPath, '--key', keyPath, '--receipt', encodeReceipt({ ...decoded, machine: 'other-host' })])
    expect(elsewhere.code).toBe(1)
    expect(elsewhere.out).toContain(`receipt: issued by machine other-host, but this database is ${machine}'s`)
  })

  test('every inference API carries the receipt, on success and on failure; /v1/infer has it in its body too', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }], down: [{ provider: 'sim', model: 'down+status-503', retries: 0 }] }))
    const ask = [{ role: 'user', content: 'hi' }]
    const infer = await w.infer({})
    const body = await infer.json()
    expect(body.receipt).toBe(infer.headers.get('x-witness-receipt'))
    const chat = await w.post('/v1/chat/completions', { model: 'default', messages: ask }, { 'x-agent-name': 'a' })
    const messages = await w.post('/v1/messages', { model: 'default', max_tokens: 10, messages: ask }, { 'x-agent-name': 'a' })
    const failed = await w.infer({ chain: 'down' })
    expect(failed.status).toBe(502)
    await w.stop(0)
    const key = join(w.dir, 'witness-key.json')
    for (const res of [infer, chat, messages, failed]) {
      const receipt = res.headers.get('x-witness-receipt')!
      expect(decodeReceipt(receipt)!.rows.map((r) => String(r.id)).join(',')).toBe(res.headers.get('x-witness-log-ids')!)
      expect(verify(['--db', w.dbPath, '--key', key, '--receipt', receipt]).code).toBe(0)
    }
  })

  test('the chain holds the sha256 of the exact bytes sent upstream and received back', async () => {
    // An upstream that keeps the bytes it received and answers with bytes of its own spacing.
    let received = ''
    const answer = '{ "id": "chatcmpl-7", "object": "chat.completion", "model": "m",\n  "choices": [{"index": 0, "message": {"role": "assistant", "content": "héllo"}, "finish_reason": "stop"}],\n  "usage": {"prompt_tokens": 1, "completion_tokens": 2} }'
    const upstream = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      async fetch(req) {
        received = await req.text()
        return new Response(answer, { headers: { 'content-type': 'application/json' } })
      },
    })
    const w = await startWitness({ providers: { up: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1` } }, chains: { default: [{ provider: 'up', model: 'm' }] } })
    const res = await w.infer({ temperature: 0.5 })
    expect(res.status).toBe(200)
    await w.stop(0)
    await upstream.stop(true)
    const db = new Database(w.dbPath, { readonly: true })
    const { record } = db.query('SELECT record FROM log_chain ORDER BY seq DESC LIMIT 1').get() as { record: string }
    db.close()
    const { facts } = decodeRecord(record)!
    const sha256 = (text: string) => new Bun.CryptoHasher('sha256').update(text).digest('hex')
    expect(received).toContain('"temperature":0.5')
    expect(facts.requestSha256).toBe(sha256(received))
    expect(facts.responseSha256).toBe(sha256(answer))
  })

  test('a stream carries its receipt as an SSE comment just before its last event', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm+chunks-3' }] }))
    const res = await w.infer({ stream: true })
    const text = await res.text()
    await w.stop(0)
    const frames = text.split('\n\n').filter(Boolean)
    expect(frames.at(-1)).toBe('data: [DONE]')
    const comment = frames.at(-2)!
    expect(comment).toStartWith(': witness-receipt ')
    const receipt = decodeReceipt(comment.slice(': witness-receipt '.length))!
    const [row] = readRows(w.dbPath)
    expect(receipt.rows.map((r) => r.id)).toEqual([row!.id])
    expect(verify(['--db', w.dbPath, '--key', join(w.dir, 'witness-key.json'), '--receipt', comment.slice(': witness-receipt '.length)]).code).toBe(0)
    // Its headers went out before its row was finished: no receipt header that would name nothing.
    expect(res.headers.get('x-witness-receipt')).toBeNull()
    expect(res.headers.get('x-witness-log-ids')).toBe(String(row!.id))
  })

  test('a receipt that names no rows proves nothing, and verify says so (exit 1)', async () => {
    const empty = encodeReceipt({ machine, rows: [] })
    const { code, out } = verify(['--db', dbPath, '--key', keyPath, '--receipt', empty])
    expect(out).toContain('receipt: it names no rows, so it proves nothing')
    expect(code).toBe(1)
  })
})

/** A copy of the log with every row moved into its archive: the verify arguments, the live copy and the archive file. */
async function archivedCopy(): Promise<{ config: string[]; live: string; archive: string }> {
  const copyDir = tempDir()
  const live = join(copyDir, 'witness.db')
  const source = new Database(dbPath, { readonly: true })
  source.exec(`VACUUM INTO '${live}'`)
  source.close()
  writeFileSync(join(copyDir, 'witness.yaml'), JSON.stringify({ database: './witness.db', providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'k' }] }, retention: { keep_days: 1, archive_dir: './archive' }, proof: { key_path: keyPath } }))
  await runArchive({ livePath: live, retention: { keepDays: 1, archiveDir: join(copyDir, 'archive'), archiveKeepDays: 0, maxDbMb: 512 }, syncConfigured: false, now: () => Date.now() + 3 * 86_400_000 })
  expect(readRows(live)).toHaveLength(0)
  const archive = join(copyDir, 'archive', readdirSync(join(copyDir, 'archive')).find((f) => f.endsWith('.db'))!)
  return { config: ['--config', join(copyDir, 'witness.yaml')], live, archive }
}

describe('text SQLite cannot store as given', () => {
  // SQLite stores text as UTF-8, where half an emoji (a lone surrogate) becomes U+FFFD: a row chained
  // with the half in its record would never match itself again, and verify would call it tampered.
  test('half an emoji in an upstream message (escaped in its JSON, or cut at 200 characters) is chained as it is stored', async () => {
    const messages = ['lone \\ud83d half of an emoji', `${'x'.repeat(199)}\\ud83d\\ude00 cut inside an emoji`]
    let next = 0
    const upstream = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: () => new Response(`{"error":{"message":"${messages[next++ % messages.length]}"}}`, { status: 500, headers: { 'content-type': 'application/json' } }),
    })
    const w = await startWitness({
      providers: { bad: { type: 'openai', base_url: `http://127.0.0.1:${upstream.port}/v1`, retries: 0 } },
      chains: { default: [{ provider: 'bad', model: 'm' }] },
    })
    try {
      const answers = [await w.infer({}), await w.infer({})]
      expect(answers.map((r) => r.status)).toEqual([502, 502])
      const stored = readRows(w.dbPath).map((r) => r.error_message!)
      expect(stored[0]).toContain('lone \ufffd half')
      expect(stored[1]).toEndWith(`${'x'.repeat(199)}…`)
      const key = join(w.dir, 'witness-key.json')
      expect(verify(['--db', w.dbPath, '--key', key]).code).toBe(0)
      for (const res of answers) expect(verify(['--db', w.dbPath, '--key', key, '--receipt', res.headers.get('x-witness-receipt')!]).code).toBe(0)
    } finally {
      await w.stop(0)
      upstream.stop(true)
    }
  })

  test('the prompt texts looked for: messages, system, tool descriptions and arguments, a text document; not roles, ids, schema names or inline base64', () => {
    const texts = promptTexts({
      system: 'you are terse',
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'data: hello there' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgoAAAANSUhEUg' } }] },
        { role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'the contract says 42' } }] },
        { role: 'assistant', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"ssn":"078-05-1120"}' } }] },
        { role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo' } }] },
        // A text file sent inline (translated for Anthropic, it goes as its text): its words are looked for.
        { role: 'user', content: [{ type: 'file', file: { filename: 'notes.txt', file_data: `data:text/plain;base64,${Buffer.from('SSN 078-05-1120 on file').toString('base64')}` } }] },
      ],
      tools: [{ type: 'function', function: { name: 'lookup', description: 'find a customer by SSN', parameters: { type: 'object', properties: { location: { type: 'string', description: 'where they live' } }, required: ['location'] } } }],
    })
    expect(texts.sort()).toEqual(['SSN 078-05-1120 on file', 'data: hello there', 'find a customer by SSN', 'notes.txt', 'the contract says 42', 'where they live', 'you are terse', '{"ssn":"078-05-1120"}'].sort())
  })
})

describe('what a tamperer with the database file, and no key, tried', () => {
  /** Deletes rows `from`..`to` (by chain position) with their meta and chain entries; returns the entries removed. */
  function deleteEntries(path: string, from: number, to: number): ChainEntry[] {
    const db = new Database(path)
    const gone = db.query('SELECT * FROM log_chain WHERE seq BETWEEN ? AND ? ORDER BY seq').all(from, to) as ChainEntry[]
    for (const e of gone) {
      db.query('DELETE FROM request_log_meta WHERE log_id = ?').run(e.log_id)
      db.query('DELETE FROM request_log WHERE id = ?').run(e.log_id)
      db.query('DELETE FROM log_chain WHERE seq = ?').run(e.seq)
    }
    db.close()
    return gone
  }

  test('a chain_pruned record written by hand excuses no deleted rows, in the middle or the signed tail', () => {
    for (const [from, to] of [[4, 6], [8, 10]] as const) {
      const copy = copyDb()
      const gone = deleteEntries(copy, from, to)
      exec(copy, 'INSERT INTO chain_pruned (from_seq, to_seq, prev_hash, hash, month, pruned_at) VALUES (?, ?, ?, ?, ?, ?)', from, to, gone[0]!.prev_hash, gone.at(-1)!.hash, '2020-01', new Date().toISOString())
      const { code, out } = verify(['--db', copy, '--key', keyPath])
      expect(out).toContain(`chain_pruned says chain entries ${from}-${to} were deleted with the archive of 2020-01, but no known key signed that record`)
      expect(out).toContain(to === 10 ? 'the log ends before checkpoint 1' : `chain entries ${from}-${to} are missing`)
      expect(code).toBe(1)
    }
  })

  test('a run signed by a build in between (its payload without first_log_id) is still proven; an unsigned one is not', async () => {
    const key = await loadSigningKey(keyPath)
    const run = { fromSeq: 4, toSeq: 6, prevHash: 'a'.repeat(64), hash: 'b'.repeat(64) }
    const payload = JSON.stringify({ machine: 'forge-01', month: '2026-08', from: 4, to: 6, prev: run.prevHash, hash: run.hash })
    const signature = Buffer.from(await crypto.subtle.sign({ name: 'Ed25519' }, key.privateKey, new TextEncoder().encode(payload))).toString('base64url')
    const keys = new Map([[key.keyId, key.publicJwk]])
    const record = { ...run, month: '2026-08', machine: 'forge-01', firstLogId: null, keyId: key.keyId, signature }
    expect((await provenPruned([record], keys)).proven).toHaveLength(1)
    expect((await provenPruned([{ ...record, signature: null }], keys)).unproven).toHaveLength(1)
  })

  test("chain.first_log_id raised by hand does not pass a made-up row off as older than the chain", () => {
    const copy = copyDb()
    const made = Math.max(...ids(copy)) + 1
    exec(copy, "INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status) VALUES (?, '2026-11-25T00:00:00.000Z', 'agent-0', 'sim', 'm', 'http://x', 1, 1, 5, 'success')", made)
    exec(copy, "INSERT OR REPLACE INTO witness_state (key, value, updated_at) VALUES ('chain.first_log_id', ?, '2026-11-25T00:00:00.000Z')", String(made + 1))
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(out).toContain(`row ${made} is not in the chain`)
    expect(code).toBe(1)
  })

  test('rows deleted and marked archived (archive.max_id) by hand: with the config, the archives are looked in, and they are not there; only --live-only notes them as not checked', () => {
    const copy = copyDb()
    deleteEntries(copy, 4, 6)
    exec(copy, "INSERT OR REPLACE INTO witness_state (key, value, updated_at) VALUES ('archive.max_id', '6', '2026-11-25T00:00:00.000Z')")
    const config = join(dirname(copy), 'witness.yaml')
    writeFileSync(config, JSON.stringify({ database: './tampered.db', providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'k' }] }, retention: { keep_days: 1, archive_dir: './archive' }, proof: { key_path: keyPath } }))
    for (const args of [['--config', config], ['--config', config, '--archives']]) {
      const { code, out } = verify(args)
      expect(out).toContain(`the archive directory ${join(dirname(copy), 'archive')} does not exist`)
      expect(out).toContain('chain entries 4-6 are missing')
      expect(code).toBe(1)
    }
    const liveOnly = verify(['--config', config, '--live-only'])
    expect(liveOnly.out).toContain('chain entries 4-6 are not here; archived? (verify with the config that names the archives, without --live-only)')
    expect(liveOnly.code).toBe(0)
  })

  test('a row deleted with its chain entry kept: the receipt naming it says it is missing, not "unchanged"', () => {
    const copy = copyDb()
    const db = new Database(copy, { readonly: true })
    const entry = db.query('SELECT log_id, hash FROM log_chain WHERE seq = 3').get() as { log_id: number; hash: string }
    db.close()
    exec(copy, 'DELETE FROM request_log WHERE id = ?', entry.log_id)
    const { code, out } = verify(['--db', copy, '--key', keyPath, '--receipt', encodeReceipt({ machine, rows: [{ id: entry.log_id, hash: entry.hash }] })])
    expect(out).toContain(`receipt: row ${entry.log_id} named by the receipt is missing: its chain entry is there, the row is not`)
    expect(out).not.toContain('unchanged')
    expect(code).toBe(1)
  })

  test("a machine renamed: its receipts from before still verify against the checkpoints it signed under the old name; another machine's do not", async () => {
    const copy = copyDb()
    const db = new Database(copy)
    const head = db.query('SELECT seq, hash FROM log_chain ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string }
    const signed = await signCheckpoint(await loadSigningKey(keyPath), { machine: `${machine}-renamed`, seq: head.seq, head_hash: head.hash, time: new Date().toISOString() })
    db.query('INSERT INTO checkpoints (machine, seq, head_hash, time, key_id, signature) VALUES (?, ?, ?, ?, ?, ?)').run(signed.machine, signed.seq, signed.head_hash, signed.time, signed.key_id, signed.signature)
    const entry = db.query('SELECT log_id, hash FROM log_chain WHERE seq = 2').get() as { log_id: number; hash: string }
    db.close()
    const receipt = (issuer: string) => encodeReceipt({ machine: issuer, rows: [{ id: entry.log_id, hash: entry.hash }] })
    expect(verify(['--db', copy, '--key', keyPath, '--receipt', receipt(machine)]).code).toBe(0)
    const other = verify(['--db', copy, '--key', keyPath, '--receipt', receipt('stranger')])
    expect(other.out).toContain(`receipt: issued by machine stranger, but this database is ${machine} / ${machine}-renamed's`)
    expect(other.code).toBe(1)
  })

  test('a forged copy of a live row put into an archive is named, not hidden behind the live copy', async () => {
    const { config, live, archive } = await archivedCopy()
    const row = readRows(archive)[0]!
    // The row back in the live file as it was, and the archive's copy altered.
    const a = new Database(archive)
    const meta = a.query('SELECT * FROM request_log_meta WHERE log_id = ?').get(row.id) as Record<string, string | number | null>
    a.close()
    const l = new Database(live)
    l.query('INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status, error_message) VALUES ($id, $timestamp, $agent_name, $provider, $model, $endpoint, $tokens_in, $tokens_out, $latency_ms, $status, $error_message)').run(Object.fromEntries(Object.entries(row).map(([k, v]) => [`$${k}`, v])) as never)
    l.query(`INSERT INTO request_log_meta (${Object.keys(meta).join(', ')}) VALUES (${Object.keys(meta).map(() => '?').join(', ')})`).run(...(Object.values(meta) as never[]))
    l.close()
    expect(verify([...config, '--archives']).code).toBe(0)
    exec(archive, "UPDATE request_log SET provider = 'forged-provider', tokens_out = 999999 WHERE id = ?", row.id)
    const { code, out } = verify([...config, '--archives'])
    expect(out).toContain(`row ${row.id} is in two copies with different contents (in the live database and an archive, in two archives, or twice in one file)`)
    expect(code).toBe(1)
  })

  test('verify on a database being written to (requests finishing, checkpoints signed) reports nothing false: it reads one snapshot', async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm+tokens-3-4' }] }, { proof: { checkpoint_every: '1s' } }), { jobs: { tickMs: 100 } })
    let stop = false
    let done = 0
    const load = Array.from({ length: 8 }, async () => {
      while (!stop) {
        await (await w.infer({ chain: 'default', agent: 'agent-0' })).arrayBuffer()
        done++
      }
    })
    try {
      // Enough rows that reading them takes a while, with more finishing meanwhile.
      while (done < 1500) await Bun.sleep(50)
      for (let i = 0; i < 8; i++) {
        // Spawned, not spawnSync: the server runs in this process and must go on serving meanwhile.
        const { code, stdout } = await runWitness(['verify', '--db', w.dbPath, '--key', join(w.dir, 'witness-key.json')])
        expect([code, stdout.split('\n')[0]]).toEqual([0, expect.stringContaining('verified')])
      }
    } finally {
      stop = true
      await Promise.all(load)
      await w.stop(0)
    }
  }, 60_000)
})

describe('tampering inside an archive (verify with the config reads the archives)', () => {
  test('archived rows verify with the config (or --archives), and a field changed inside an archive is named', async () => {
    const { config, live, archive } = await archivedCopy()
    // With --live-only (and the database alone cannot look in them), it notes where entries are not.
    expect(verify([...config, '--live-only']).out).toContain('(verify with the config that names the archives, without --live-only)')
    expect(verify(['--db', live, '--key', keyPath]).out).toContain('(verify with the config that names the archives, without --live-only)')
    for (const args of [config, [...config, '--archives']]) {
      const ok = verify(args)
      expect(ok.out).toContain('and 1 archive file(s)')
      expect(ok.code).toBe(0)
    }
    expect(verify([...config, '--archives', '--live-only'])).toMatchObject({ code: 2, out: expect.stringContaining('--archives and --live-only: choose one') })

    const victim = readRows(archive)[1]!.id
    exec(archive, 'UPDATE request_log SET tokens_out = 999 WHERE id = ?', victim)
    const bad = verify([...config, '--archives'])
    expect(bad.code).toBe(1)
    expect(bad.out).toContain(`row ${victim} was changed after it was chained: tokens_out was`)
  })

  test('while the archive job runs (it holds its lock), verify --archives waits for it to end, rather than read months being moved or deleted', async () => {
    const { config, live } = await archivedCopy()
    const holder = await holdJobLock('archive', archiveLockPath(join(dirname(live), 'archive')))
    let ended = false
    const verifying = runWitness(['verify', ...config, '--archives']).finally(() => {
      ended = true
    })
    await Bun.sleep(1500)
    expect(ended).toBe(false)
    await holder.release()
    const { code, stdout } = await verifying
    expect(stdout).toContain('and 1 archive file(s)')
    expect(code).toBe(0)
  })

  test('checkpoints an archive holds (put there by hand: the archive job moves none) are checked too: a copy of a live one is one checkpoint, one of its id with other contents is named', async () => {
    const { config, live, archive } = await archivedCopy()
    const reader = new Database(live, { readonly: true })
    const signed = (reader.query('SELECT count(*) AS n FROM checkpoints').get() as { n: number }).n
    reader.close()
    expect(signed).toBeGreaterThan(0)
    const db = new Database(archive)
    db.exec(`ATTACH '${live}' AS live; CREATE TABLE checkpoints AS SELECT * FROM live.checkpoints; DETACH live`)
    db.close()
    const copied = verify(config)
    expect(copied.out).toContain(`, ${signed} signed checkpoint(s)`)
    expect(copied.code).toBe(0)

    const held = new Database(archive, { readonly: true })
    const first = held.query('SELECT id FROM checkpoints ORDER BY id LIMIT 1').get() as { id: number }
    held.close()
    exec(archive, 'UPDATE checkpoints SET time = ? WHERE id = ?', '2020-01-01T00:00:00.000Z', first.id)
    const altered = verify(config)
    expect(altered.code).toBe(1)
    expect(altered.out).toContain(`checkpoint ${first.id} is in two copies with different contents (${live} and ${archive}): one of them was put there by hand`)
    expect(altered.out).toContain(`checkpoint ${first.id} has a signature that does not verify: it was forged or altered`)
  })

  test('finished rows with id 0 or a negative id in an archive are not in the chain, not rows from before it', async () => {
    const { config, archive } = await archivedCopy()
    for (const id of [-2, -1, 0]) {
      exec(archive, "INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, status) VALUES (?, '2026-11-25T00:00:00.000Z', 'agent-0', 'sim', 'm', 'http://x', 'success')", id)
    }
    const { code, out } = verify(config)
    expect(code).toBe(1)
    expect(out).toContain('rows -2 to 0 are not in the chain: an id below 1, which SQLite never gives a row, so they were written by hand')
  })

  test('a row deleted from an archive is named as missing', async () => {
    const { config, archive } = await archivedCopy()
    const victim = readRows(archive)[1]!.id
    exec(archive, 'DELETE FROM request_log WHERE id = ?', victim)
    const { code, out } = verify([...config, '--archives'])
    expect(code).toBe(1)
    expect(out).toContain(`row ${victim} is missing`)
  })

  test("a receipt whose rows were archived since verifies with the archives, and says so with --live-only", async () => {
    const { config, live, archive } = await archivedCopy()
    const db = new Database(archive, { readonly: true })
    const [entry] = db.query('SELECT log_id, hash FROM log_chain ORDER BY seq LIMIT 1').all() as { log_id: number; hash: string }[]
    db.close()
    const signed = new Database(live, { readonly: true })
    const machine = (signed.query('SELECT machine FROM checkpoints ORDER BY id DESC LIMIT 1').get() as { machine: string } | null)?.machine ?? 'any'
    signed.close()
    const receipt = encodeReceipt({ machine, rows: [{ id: entry!.log_id, hash: entry!.hash }] })
    const liveOnly = verify([...config, '--live-only', '--receipt', receipt])
    expect(liveOnly.code).toBe(1)
    expect(liveOnly.out).toContain(`receipt names row ${entry!.log_id}, which is not in the chain checked (archived since? verify without --live-only, with the config that names the archives)`)
    expect(verify([...config, '--receipt', receipt]).code).toBe(0)
  })

  test('a row inserted into an archive is not in the chain', async () => {
    const { config, archive } = await archivedCopy()
    const inserted = Math.max(...ids(archive)) + 1000
    exec(
      archive,
      "INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status) VALUES (?, '2026-11-25T00:00:00.000Z', 'agent-0', 'sim', 'm', 'http://x', 1, 1, 5, 'success')",
      inserted,
    )
    const { code, out } = verify([...config, '--archives'])
    expect(code).toBe(1)
    expect(out).toContain(`row ${inserted} is not in the chain`)
  })

  test("two whole rows swapped inside an archive (each under the other's id) are both named", async () => {
    const { config, archive } = await archivedCopy()
    const { a, b } = twoRowsOfDifferentAgents(archive)
    swapRows(archive, a.id, b.id)
    const { code, out } = verify([...config, '--archives'])
    expect(code).toBe(1)
    expect(out).toMatch(new RegExp(`row ${a.id} was changed after it was chained: .*agent_name was "agent-0" when chained, is now "agent-1"`))
    expect(out).toMatch(new RegExp(`row ${b.id} was changed after it was chained: .*agent_name was "agent-1" when chained, is now "agent-0"`))
  })

  test("a month's file renamed to another month (or put in place of another month's) is named: reads of its rows' month would miss them", async () => {
    const { config, archive } = await archivedCopy()
    const month = /request_log-(\d{4}-\d{2})\.db$/.exec(archive)![1]!
    const elsewhere = archive.replace(`request_log-${month}.db`, 'request_log-2001-01.db')
    renameSync(archive, elsewhere)
    const count = ids(elsewhere).length
    const { code, out } = verify([...config, '--archives'])
    expect(code).toBe(1)
    expect(out).toContain(`archive ${elsewhere} holds ${count} row(s) of other months (${month}): the file was renamed or replaced by another month's, or rows were put there by hand (reads of those months miss them)`)
  })

  test('a pending row put into an archive is named: the archive job moves only finished rows', async () => {
    const { config, archive } = await archivedCopy()
    exec(archive, "INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, status) VALUES (77777, '2026-11-25T00:00:00.000Z', 'agent-0', 'sim', 'm', 'http://x', 'pending')")
    const { code, out } = verify([...config, '--archives'])
    expect(code).toBe(1)
    expect(out).toContain(`archive ${archive} holds pending row(s) 77777: the archive job moves only finished rows, so they were put there by hand`)
  })

  test('a compressed month replaced by an edited one with its old modification time kept (cp -p, a restore): verify reads the file itself, and queries read it again', async () => {
    const { config, archive } = await archivedCopy()
    const archiveDir = dirname(archive)
    const month = /request_log-(\d{4}-\d{2})\.db$/.exec(archive)![1]!
    await compressArchive(archiveDir, month)
    const zst = `${archive}.zst`
    const victim = (() => {
      const opened = archiveDatabasesFor(archiveDir) // makes the cached copy
      const id = (opened[0]!.db.query('SELECT id FROM request_log ORDER BY id LIMIT 1').get() as { id: number }).id
      closeArchives(opened)
      return id
    })()
    expect(verify([...config, '--archives']).code).toBe(0)
    const { atime, mtime } = statSync(zst)
    const work = join(tempDir(), 'edited.db')
    writeFileSync(work, Bun.zstdDecompressSync(readFileSync(zst)))
    exec(work, "UPDATE request_log SET provider = 'forged' WHERE id = ?", victim)
    writeFileSync(zst, Bun.zstdCompressSync(readFileSync(work)))
    utimesSync(zst, atime, mtime)
    const { code, out } = verify([...config, '--archives'])
    expect(code).toBe(1)
    expect(out).toContain(`row ${victim} was changed after it was chained: provider was "sim" when chained, is now "forged"`)
    const opened = archiveDatabasesFor(archiveDir)
    expect((opened[0]!.db.query('SELECT provider FROM request_log WHERE id = ?').get(victim) as { provider: string }).provider).toBe('forged')
    closeArchives(opened)
    // verify's own copies are gone with it.
    expect(readdirSync(join(archiveDir, '.cache')).filter((name) => name.startsWith('.audit'))).toEqual([])
  })

  test("an archive's tail cut below a signed checkpoint is caught, even with its chain cut to match", async () => {
    const { config, archive } = await archivedCopy()
    const db = new Database(archive)
    const last = db.query('SELECT seq, log_id FROM log_chain ORDER BY seq DESC LIMIT 1').get() as { seq: number; log_id: number }
    db.query('DELETE FROM log_chain WHERE seq = ?').run(last.seq)
    db.query('DELETE FROM request_log WHERE id = ?').run(last.log_id)
    db.close()
    const { code, out } = verify([...config, '--archives'])
    expect(code).toBe(1)
    expect(out).toContain(`the log ends before checkpoint 1: the chain ends at entry ${last.seq - 1}, the checkpoint signed entry ${last.seq}`)
  })
})

describe('archives deleted by retention (archive_keep_days)', () => {
  test('verify --archives takes the gap their entries leave as deleted, when recorded runs link across it; a record that does not link is no excuse', async () => {
    const dir = tempDir()
    const config = join(dir, 'witness.yaml')
    writeFileSync(config, JSON.stringify({ database: './w.db', providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'k' }] }, retention: { keep_days: 30, archive_dir: './arch', archive_keep_days: 40 } }))
    expect((await runWitness(['init', '--config', config])).code).toBe(0)
    const now = Date.now()
    await seedRows(join(dir, 'w.db'), [{ timestamp: daysAgo(now, 120) }, { timestamp: daysAgo(now, 110) }, { timestamp: daysAgo(now, 2) }])
    const archived = await runWitness(['archive', '--config', config])
    expect(archived.stdout).toContain('deleted archives past retention.archive_keep_days')
    const ok = await runWitness(['verify', '--config', config, '--archives'])
    expect(ok.stdout).toContain('note: chain entries 1-2 were deleted with their archives (retention.archive_keep_days); the chain links across them')
    expect(ok.code).toBe(0)

    // Where the chain begins, raised past the deleted rows' ids, cannot pass one of those ids off, made up, as older than the chain.
    const copy = join(dir, 'made-up.db')
    const source = new Database(join(dir, 'w.db'), { readonly: true })
    source.exec(`VACUUM INTO '${copy}'`)
    source.close()
    exec(copy, "INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status) VALUES (2, '2026-11-25T00:00:00.000Z', 'agent-0', 'kimi', 'k', 'http://x', 1, 1, 5, 'success')")
    exec(copy, "INSERT OR REPLACE INTO witness_state (key, value, updated_at) VALUES ('chain.first_log_id', '3', '2026-11-25T00:00:00.000Z')")
    const madeUp = await runWitness(['verify', '--db', copy, '--key', join(dir, 'witness-key.json')])
    expect(madeUp.stdout).toContain('row 2 is not in the chain')
    expect(madeUp.code).toBe(1)

    exec(join(dir, 'w.db'), "UPDATE chain_pruned SET hash = 'forged'")
    const forged = await runWitness(['verify', '--config', config, '--archives'])
    expect(forged.code).toBe(1)
    expect(forged.stdout).toContain('chain entries 1-2 are missing (the chain starts at entry 3')
  })
})

describe('tampering in a git export (verify --repo)', () => {
  let remote: string
  beforeAll(async () => {
    remote = join(tempDir(), 'remote.git')
    Bun.spawnSync(['git', 'init', '-q', '--bare', '-b', 'main', remote])
    const copyDir = tempDir()
    const live = join(copyDir, 'witness.db')
    const source = new Database(dbPath, { readonly: true })
    source.exec(`VACUUM INTO '${live}'`)
    source.close()
    const report = await runSync({ livePath: live, archiveDir: join(copyDir, 'archive'), sync: { remote, branch: 'main', workDir: join(tempDir(), 'sync'), everyMs: 0 }, machine: 'forge-01', keyPath, now: Date.now })
    expect(report.remoteError).toBeNull()
  })

  /** A fresh clone of the export to tamper with, and the paths of its forge-01 folder. */
  function exportClone() {
    const clone = join(tempDir(), 'clone')
    Bun.spawnSync(['git', 'clone', '-q', remote, clone])
    const folder = join(clone, 'forge-01')
    const rowFile = filesUnder(folder, '.ndjson')[0]!
    const chainFiles = filesUnder(join(folder, 'chain'), '.jsonl')
    // Sync writes each checkpoint into its signing day's folder.
    const checkpointFiles = filesUnder(join(folder, 'checkpoints-by-day'), '.json')
    return { clone, folder, rowFile, chainFiles, checkpointFiles }
  }

  test('a git export verifies with --repo, and an edited line in it is named', () => {
    const { clone, folder, rowFile } = exportClone()
    expect(existsSync(join(folder, 'public-key.json'))).toBe(true)
    const ok = verify(['--repo', clone])
    expect(ok.out).toContain(`verified ${clone}/forge-01`)
    expect(ok.code).toBe(0)
    expect(verify(['--repo', clone, '--receipt', encodeReceipt({ ...decodeReceipt(receipts[1]!)!, machine: 'forge-01' })]).code).toBe(0)

    const lines = readLines(rowFile)
    const edited = JSON.parse(lines[0]!) as { id: number; model: string }
    lines[0] = JSON.stringify({ ...edited, model: 'mimo-v2.5-pro' })
    writeLines(rowFile, lines)
    const bad = verify(['--repo', clone])
    expect(bad.code).toBe(1)
    expect(bad.out).toContain(`row ${edited.id} was changed after it was chained: model was "${edited.model}" when chained, is now "mimo-v2.5-pro"`)
  })

  test('a deleted line is named as a missing row', () => {
    const { clone, rowFile } = exportClone()
    const lines = readLines(rowFile)
    const victim = (JSON.parse(lines[1]!) as { id: number }).id
    writeLines(rowFile, lines.filter((_, i) => i !== 1))
    const { code, out } = verify(['--repo', clone])
    expect(code).toBe(1)
    expect(out).toContain(`row ${victim} is missing`)
  })

  test('a row chained a second time (an entry appended for it) is named', () => {
    const { clone, chainFiles } = exportClone()
    const entries = chainFiles.flatMap((file) => readLines(file).map((line) => JSON.parse(line) as ChainEntry)).sort((a, b) => a.seq - b.seq)
    const [first, last] = [entries[0]!, entries.at(-1)!]
    const again = { ...first, seq: last.seq + 1, prev_hash: last.hash, hash: chainHash(last.hash, first.record) }
    writeLines(chainFiles.at(-1)!, [...readLines(chainFiles.at(-1)!), JSON.stringify(again)])
    const { code, out } = verify(['--repo', clone])
    expect(code).toBe(1)
    expect(out).toContain(`row ${first.log_id} is chained twice (entries ${first.seq} and ${again.seq})`)
  })

  test('a pending line put into the export is named, not taken: sync exports only finished rows', () => {
    const { clone, rowFile } = exportClone()
    const lines = readLines(rowFile)
    const forged = { ...(JSON.parse(lines[0]!) as { id: number }), id: 10_001, status: 'pending', tokens_in: 100_000 }
    writeLines(rowFile, [...lines, JSON.stringify(forged)])
    const { code, out } = verify(['--repo', clone])
    expect(code).toBe(1)
    expect(out).toContain(`row 10001 (${relative(clone, rowFile)}:${lines.length + 1}) is pending: sync exports only finished rows, so the line was put there by hand`)
  })

  test('lines of rows with id 0 or a negative id, and a chain entry at position 0 or of such a row, are named: sync writes none', () => {
    const { clone, rowFile, chainFiles } = exportClone()
    const lines = readLines(rowFile)
    const row = JSON.parse(lines[0]!) as { id: number }
    writeLines(rowFile, [...lines, JSON.stringify({ ...row, id: -5, request_id: 'invented' }), JSON.stringify({ ...row, id: 0, request_id: 'invented too' })])
    const rows = verify(['--repo', clone])
    expect(rows.code).toBe(1)
    expect(rows.out).toContain('rows -5, 0 are not in the chain: an id below 1, which SQLite never gives a row, so they were written by hand')
    expect(rows.out).not.toContain('finished before the chain existed')

    // An entry before the first, and one chaining row -5 after the last, each hashed as the chain would.
    const entries = chainFiles.flatMap((file) => readLines(file).map((line) => JSON.parse(line) as ChainEntry)).sort((a, b) => a.seq - b.seq)
    const [first, last] = [entries[0]!, entries.at(-1)!]
    const record = encodeRecord({ ...decodeRecord(first.record)!.row, id: -5 }, decodeRecord(first.record)!.facts)
    const before = { seq: 0, log_id: first.log_id, prev_hash: GENESIS_HASH, hash: chainHash(GENESIS_HASH, first.record), record: first.record }
    const after = { seq: last.seq + 1, log_id: -5, prev_hash: last.hash, hash: chainHash(last.hash, record), record }
    writeLines(chainFiles.at(-1)!, [...readLines(chainFiles.at(-1)!), JSON.stringify(before), JSON.stringify(after)])
    const chained = verify(['--repo', clone])
    expect(chained.code).toBe(1)
    expect(chained.out).toContain(`chain entry 0 (row ${first.log_id}) is at a position the chain never has (it starts at 1), so it was written by hand`)
    expect(chained.out).toContain(`chain entry ${last.seq + 1} chains row -5: an id below 1, which SQLite never gives a row, so the row and its entry were written by hand`)
  })

  test('an inserted line is not in the chain', () => {
    const { clone, rowFile } = exportClone()
    const lines = readLines(rowFile)
    const invented = { ...(JSON.parse(lines[0]!) as { id: number }), id: 10_000, request_id: 'invented' }
    writeLines(rowFile, [...lines, JSON.stringify(invented)])
    const { code, out } = verify(['--repo', clone])
    expect(code).toBe(1)
    expect(out).toContain('row 10000 is not in the chain')
  })

  test("two lines swapped (each row now under the other's id) are both named; lines merely reordered still verify", () => {
    const { clone, rowFile } = exportClone()
    const lines = readLines(rowFile)
    writeLines(rowFile, [...lines].reverse())
    expect(verify(['--repo', clone]).code).toBe(0)

    const rows = lines.map((l) => JSON.parse(l) as { id: number; agent_name: string; status: string })
    const i = rows.findIndex((r) => r.agent_name === 'agent-0' && r.status === 'success')
    const j = rows.findIndex((r) => r.agent_name === 'agent-1' && r.status === 'success')
    const [a, b] = [rows[i]!, rows[j]!]
    lines[i] = JSON.stringify({ ...b, id: a.id })
    lines[j] = JSON.stringify({ ...a, id: b.id })
    writeLines(rowFile, lines)
    const { code, out } = verify(['--repo', clone])
    expect(code).toBe(1)
    expect(out).toMatch(new RegExp(`row ${a.id} was changed after it was chained: .*agent_name was "agent-0" when chained, is now "agent-1"`))
    expect(out).toMatch(new RegExp(`row ${b.id} was changed after it was chained: .*agent_name was "agent-1" when chained, is now "agent-0"`))
  })

  test('the rows and the chain cut below a signed checkpoint: the log ends before it', () => {
    const { clone, rowFile, chainFiles, checkpointFiles } = exportClone()
    const checkpoint = JSON.parse(readFileSync(checkpointFiles.at(-1)!, 'utf8')) as Checkpoint
    const entries = chainFiles.flatMap((f) => readLines(f).map((l) => ({ file: f, entry: JSON.parse(l) as ChainEntry })))
    const last = entries.reduce((x, y) => (y.entry.seq > x.entry.seq ? y : x))
    expect(last.entry.seq).toBe(checkpoint.seq)
    writeLines(last.file, readLines(last.file).filter((l) => (JSON.parse(l) as ChainEntry).seq !== last.entry.seq))
    writeLines(rowFile, readLines(rowFile).filter((l) => (JSON.parse(l) as { id: number }).id !== last.entry.log_id))
    const { code, out } = verify(['--repo', clone])
    expect(code).toBe(1)
    expect(out).toContain(`the log ends before checkpoint ${checkpoint.id}: the chain ends at entry ${checkpoint.seq - 1}, the checkpoint signed entry ${checkpoint.seq}`)
  })

  test("a checkpoint forged with another key is named, and so is one that claims the machine's key without its signature", async () => {
    const { clone, folder, checkpointFiles } = exportClone()
    const real = JSON.parse(readFileSync(checkpointFiles.at(-1)!, 'utf8')) as Checkpoint
    const forger = (await ensureSigningKey(join(tempDir(), 'forger.json'))).key
    const forged = await signCheckpoint(forger, { machine: 'forge-01', seq: real.seq, head_hash: real.head_hash, time: new Date().toISOString() })
    // Put where a clone from before holds its checkpoints: read there too.
    mkdirSync(join(folder, 'checkpoints'))
    writeFileSync(join(folder, 'checkpoints', '00000098.json'), JSON.stringify({ id: 98, ...forged }))
    writeFileSync(join(folder, 'checkpoints', '00000099.json'), JSON.stringify({ id: 99, ...forged, key_id: real.key_id }))
    const { code, out } = verify(['--repo', clone])
    expect(code).toBe(1)
    expect(out).toContain(`checkpoint 98 was not signed by this machine's key (signed by key ${forger.keyId}`)
    expect(out).toContain('checkpoint 99 has a signature that does not verify: it was forged or altered')
  })

  test('a checkpoint file that is not JSON, whose JSON is no object, or whose id is no whole number is named, not taken for a checkpoint', () => {
    const { clone, checkpointFiles } = exportClone()
    const dayFolder = dirname(checkpointFiles[0]!)
    writeFileSync(join(dayFolder, '00000098.json'), '[]\n')
    writeFileSync(join(dayFolder, '00000099.json'), '{"id": 99,\n')
    // A real checkpoint's copy under its id written as text: never compared with the real one, were it taken.
    const real = JSON.parse(readFileSync(checkpointFiles[0]!, 'utf8')) as { id: number }
    writeFileSync(join(dayFolder, '00000097.json'), JSON.stringify({ ...real, id: String(real.id) }))
    const { code, out } = verify(['--repo', clone])
    expect(code).toBe(1)
    expect(out).toContain(`${relative(clone, join(dayFolder, '00000098.json'))} is not a checkpoint: its JSON is no object`)
    expect(out).toContain(`${relative(clone, join(dayFolder, '00000099.json'))} is not JSON`)
    expect(out).toContain(`${relative(clone, join(dayFolder, '00000097.json'))} is not a checkpoint: its id is not a whole number above 0`)
    expect(out).not.toContain('checkpoint undefined')
  })

  test('--key pins the public key: a folder rewritten and re-signed with a new key of its own verifies without it and fails with it', async () => {
    const { clone, folder, rowFile, chainFiles, checkpointFiles } = exportClone()
    const published = publicKeyFile(await loadSigningKey(keyPath))
    const pinned = join(tempDir(), 'public-key.json')
    writeFileSync(pinned, JSON.stringify(published))
    const ok = verify(['--repo', clone, '--key', pinned])
    expect(ok.out).toContain(`verified ${clone}/forge-01`)
    expect(ok.code).toBe(0)

    // One key pins one machine: with several folders, --machine says which.
    Bun.spawnSync(['mkdir', join(clone, 'other-host')])
    const ambiguous = verify(['--repo', clone, '--key', pinned])
    expect(ambiguous.code).toBe(2)
    expect(ambiguous.out).toContain('choose one with --machine')
    expect(verify(['--repo', clone, '--key', pinned, '--machine', 'forge-01']).code).toBe(0)
    rmSync(join(clone, 'other-host'), { recursive: true })

    // The rewrite: a row's model changed, the chain recomputed from the genesis, every checkpoint re-signed, the new key published.
    const lines = readLines(rowFile).map((l) => JSON.parse(l) as { id: number; model: string })
    const victim = lines[0]!
    victim.model = 'mimo-v2.5-pro'
    writeLines(rowFile, lines.map((l) => JSON.stringify(l)))
    const files = chainFiles.map((file) => ({ file, entries: readLines(file).map((l) => JSON.parse(l) as ChainEntry) }))
    const hashAt = new Map<number, string>()
    let prev = GENESIS_HASH
    for (const e of files.flatMap((f) => f.entries).sort((x, y) => x.seq - y.seq)) {
      if (e.log_id === victim.id) {
        const { row, facts } = decodeRecord(e.record)!
        e.record = encodeRecord({ ...row, model: victim.model }, facts)
      }
      e.prev_hash = prev
      e.hash = chainHash(prev, e.record)
      prev = e.hash
      hashAt.set(e.seq, e.hash)
    }
    for (const f of files) writeLines(f.file, f.entries.map((e) => JSON.stringify(e)))
    const forger = (await ensureSigningKey(join(tempDir(), 'forger.json'))).key
    for (const file of checkpointFiles) {
      const c = JSON.parse(readFileSync(file, 'utf8')) as Checkpoint
      writeFileSync(file, JSON.stringify({ id: c.id, ...(await signCheckpoint(forger, { machine: c.machine, seq: c.seq, head_hash: hashAt.get(c.seq)!, time: c.time })) }))
    }
    writeFileSync(join(folder, 'public-key.json'), JSON.stringify(publicKeyFile(forger)))
    // Pushed as a history of its own (a force-push), so the clone's history holds no original checkpoint either.
    const pushedAnew = () => {
      rmSync(join(clone, '.git'), { recursive: true })
      for (const args of [['init', '-q', '-b', 'main'], ['add', '-A'], ['-c', 'user.name=x', '-c', 'user.email=x@x', 'commit', '-qm', 'rewritten']]) Bun.spawnSync(['git', ...args], { cwd: clone })
    }
    pushedAnew()

    const unpinned = verify(['--repo', clone])
    expect(unpinned.code).toBe(0) // self-consistent: only a key known beforehand tells it apart
    expect(unpinned.out).toContain('pass --key to pin the key you expect')
    const bad = verify(['--repo', clone, '--key', pinned])
    expect(bad.code).toBe(1)
    expect(bad.out).toContain(`forge-01/public-key.json is key ${forger.keyId}, not the pinned key ${published.key_id}: the folder's key was replaced`)
    expect(bad.out).toContain(`was not signed by this machine's key (signed by key ${forger.keyId}; known: ${published.key_id})`)
    // The machine's own key file pins the same key.
    expect(verify(['--repo', clone, '--key', keyPath]).code).toBe(1)

    // The same rewrite with the checkpoints and the key deleted instead of re-signed: nothing is left to check against the pin.
    rmSync(join(folder, 'checkpoints-by-day'), { recursive: true })
    rmSync(join(folder, 'public-key.json'))
    pushedAnew()
    const unsigned = verify(['--repo', clone, '--key', pinned])
    expect(unsigned.code).toBe(1)
    expect(unsigned.out).toContain('forge-01/public-key.json is missing: sync always writes it')
    expect(unsigned.out).toContain("forge-01 has no signed checkpoint: nothing in it is signed by the machine's key")
    expect(verify(['--repo', clone]).code).toBe(1)
  })

  test('a folder with nothing witness wrote in it does not verify, and a file given as the clone is a usage error', () => {
    const { clone } = exportClone()
    Bun.spawnSync(['mkdir', join(clone, 'empty-host')])
    const { code, out } = verify(['--repo', clone, '--machine', 'empty-host'])
    expect(code).toBe(1)
    expect(out).toContain('empty-host holds no rows, chain or checkpoints: not a folder witness sync wrote')
    writeFileSync(join(clone, 'notes.txt'), 'not a clone')
    expect(verify(['--repo', join(clone, 'notes.txt')]).code).toBe(2)
  })
})

describe('crashes', () => {
  test('the chain survives SIGKILL mid-load: recovery chains the pending rows, no gap, no fork', async () => {
    const crashDir = tempDir()
    const configPath = join(crashDir, 'witness.yaml')
    writeFileSync(configPath, JSON.stringify({ database: './witness.db', ...simConfig(sim.url, { default: [{ provider: 'sim', model: 'm+latency-20' }], slow: [{ provider: 'sim', model: 'm+hang' }] }) }))
    const first = await spawnWitness(configPath)
    const send = (chain: string) =>
      fetch(`${first.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'a', chain, messages: [{ role: 'user', content: 'hi' }] }) }).catch(() => null)
    const calls = [...Array.from({ length: 20 }, () => send('default')), send('slow'), send('slow')]
    const db = join(crashDir, 'witness.db')
    // Killed once the two calls that hang are under way, their rows pending (however busy the machine).
    const deadline = Date.now() + 10_000
    while (readRows(db).filter((r) => r.status === 'pending' && r.model === 'm+hang').length < 2 && Date.now() < deadline) await Bun.sleep(10)
    first.proc.kill('SIGKILL')
    await first.proc.exited
    await Promise.all(calls)
    expect(readRows(db).some((r) => r.status === 'pending')).toBe(true)
    const second = await spawnWitness(configPath)
    second.proc.kill('SIGTERM')
    await second.proc.exited
    expect(readRows(db).some((r) => r.status === 'pending')).toBe(false)
    const { code, out } = verify(['--db', db, '--key', join(crashDir, 'witness-key.json')])
    expect(out).toContain('verified')
    expect(code).toBe(0)
  })
})

describe('GET /requests/:id', () => {
  test("shows the row's hash and the checkpoint that covers it", async () => {
    const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const res = await w.infer({})
    const id = Number(res.headers.get('x-witness-log-ids'))
    const before = await (await fetch(`${w.url}/requests/${id}`)).json()
    expect(before.proof).toMatchObject({ chain_seq: 1, hash: decodeReceipt(res.headers.get('x-witness-receipt')!)!.rows[0]!.hash, checkpoint: null })
    const live = await openLiveForJob(w.dbPath, 'test')
    const signed = await checkpointNow(live, await loadSigningKey(join(w.dir, 'witness-key.json')), 'm1', Date.now)
    live.close()
    const after = await (await fetch(`${w.url}/requests/${id}`)).json()
    expect(after.proof.checkpoint).toMatchObject({ id: signed!.id, seq: 1, head_hash: before.proof.hash })
    await w.stop(0)
  })
})
