/**
 * The tamper-evident log: every kind of tampering made directly in SQLite,
 * in an archive and in a git export is caught by `witness verify`, which
 * names the place; an untouched log verifies; receipts verify and a changed
 * one does not; a SIGKILL leaves no gap and no fork.
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openLiveForJob } from '../src/jobs/job-db.ts'
import { checkpointNow } from '../src/proof/checkpoint-job.ts'
import { ensureSigningKey, loadSigningKey } from '../src/proof/keys.ts'
import { decodeReceipt, encodeReceipt } from '../src/proof/receipt.ts'
import { decodeRecord } from '../src/proof/record.ts'
import { runArchive } from '../src/retention/archive-job.ts'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { runSync } from '../src/sync/sync-job.ts'
import { BUN, ROOT, spawnWitness } from './support/process.ts'
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

  test('the tail cut below a signed checkpoint is caught, even with the chain cut to match', () => {
    const copy = copyDb()
    const last = Math.max(...ids(copy))
    exec(copy, 'DELETE FROM request_log WHERE id >= ?', last - 1)
    exec(copy, 'DELETE FROM log_chain WHERE log_id >= ?', last - 1)
    const { code, out } = verify(['--db', copy, '--key', keyPath])
    expect(code).toBe(1)
    expect(out).toMatch(/the log ends before checkpoint 1: the chain ends at entry \d+, the checkpoint signed entry \d+/)
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

describe('receipts', () => {
  test('a receipt verifies against the log, and one changed character does not', () => {
    const receipt = receipts[0]!
    expect(decodeReceipt(receipt)!.rows.length).toBeGreaterThan(0)
    const good = verify(['--db', dbPath, '--key', keyPath, '--receipt', receipt])
    expect(good.code).toBe(0)
    expect(good.out).toMatch(/receipt: rows [\d, ]+ are in the chain with the hashes the receipt gives, unchanged/)

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
  })
})

describe('archives and the git export stay verifiable', () => {
  test('archived rows verify with --archives, and tampering inside an archive is named', async () => {
    const copyDir = tempDir()
    const live = join(copyDir, 'witness.db')
    new Database(dbPath, { readonly: true }).exec(`VACUUM INTO '${live}'`)
    writeFileSync(join(copyDir, 'witness.yaml'), JSON.stringify({ database: './witness.db', providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'k' }] }, retention: { keep_days: 1, archive_dir: './archive' }, proof: { key_path: keyPath } }))
    await runArchive({ livePath: live, retention: { keepDays: 1, archiveDir: join(copyDir, 'archive'), archiveKeepDays: 0, maxDbMb: 512 }, syncConfigured: false, now: () => Date.now() + 3 * 86_400_000 })
    expect(readRows(live)).toHaveLength(0)
    const config = ['--config', join(copyDir, 'witness.yaml')]
    expect(verify(config).out).toContain('(use --archives)')
    const ok = verify([...config, '--archives'])
    expect(ok.out).toContain('verified')
    expect(ok.code).toBe(0)

    const archive = join(copyDir, 'archive', readdirSync(join(copyDir, 'archive')).find((f) => f.endsWith('.db'))!)
    const victim = readRows(archive)[1]!.id
    exec(archive, 'UPDATE request_log SET tokens_out = 999 WHERE id = ?', victim)
    const bad = verify([...config, '--archives'])
    expect(bad.code).toBe(1)
    expect(bad.out).toContain(`row ${victim} was changed after it was chained: tokens_out was`)
  })

  test('a git export verifies with --repo, and an edited line in it is named', async () => {
    const remote = join(tempDir(), 'remote.git')
    Bun.spawnSync(['git', 'init', '-q', '--bare', '-b', 'main', remote])
    const workDir = join(tempDir(), 'sync')
    const copyDir = tempDir()
    const live = join(copyDir, 'witness.db')
    new Database(dbPath, { readonly: true }).exec(`VACUUM INTO '${live}'`)
    const report = await runSync({ livePath: live, archiveDir: join(copyDir, 'archive'), sync: { remote, branch: 'main', workDir, everyMs: 0 }, machine: 'forge-01', keyPath, now: Date.now })
    expect(report.remoteError).toBeNull()
    const clone = join(tempDir(), 'clone')
    Bun.spawnSync(['git', 'clone', '-q', remote, clone])
    expect(existsSync(join(clone, 'forge-01', 'public-key.json'))).toBe(true)
    const ok = verify(['--repo', clone])
    expect(ok.out).toContain(`verified ${clone}/forge-01`)
    expect(ok.code).toBe(0)
    expect(verify(['--repo', clone, '--receipt', encodeReceipt({ ...decodeReceipt(receipts[1]!)!, machine: 'forge-01' })]).code).toBe(0)

    const day = join(clone, 'forge-01', readdirSync(join(clone, 'forge-01')).find((f) => /^\d{4}$/.test(f))!)
    const file = (function find(d: string): string {
      for (const name of readdirSync(d)) {
        const p = join(d, name)
        if (name.endsWith('.ndjson')) return p
        if (!name.includes('.')) {
          const found = find(p)
          if (found) return found
        }
      }
      return ''
    })(day)
    const lines = readFileSync(file, 'utf8').trim().split('\n')
    const edited = JSON.parse(lines[0]!) as { id: number; model: string }
    lines[0] = JSON.stringify({ ...edited, model: 'mimo-v2.5-pro' })
    writeFileSync(file, `${lines.join('\n')}\n`)
    const bad = verify(['--repo', clone])
    expect(bad.code).toBe(1)
    expect(bad.out).toContain(`row ${edited.id} was changed after it was chained: model was "${edited.model}" when chained, is now "mimo-v2.5-pro"`)
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
    await Bun.sleep(60)
    first.proc.kill('SIGKILL')
    await first.proc.exited
    await Promise.all(calls)
    const db = join(crashDir, 'witness.db')
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
