/**
 * SQL injection attempts in every read parameter, over HTTP and on the
 * command line: each gets a 400 (or exit 2), or an empty answer, and the
 * database is byte-for-byte what it was.
 */
import { Database } from 'bun:sqlite'
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { BUN, ROOT } from './support/process.ts'
import { seed, seedStore } from './support/seed-requests.ts'
import { startWitness, type TestWitness } from './support/witness.ts'

const PAYLOADS = [
  "' OR '1'='1",
  "x' OR 1=1 --",
  "'; DROP TABLE request_log; --",
  '" OR ""="',
  '1; DELETE FROM request_log',
  "ezra' UNION SELECT * FROM request_log_meta --",
  "%' OR status LIKE '%",
  ')) OR ((1=1',
  '1 OR 1=1',
  "' || (SELECT sqlite_version()) || '",
  '1h; DROP TABLE request_log',
  'provider=kimi&agent=ezra',
]

const PARAMS: Record<string, string[]> = {
  '/requests': ['agent', 'provider', 'model', 'status', 'chain', 'request_id', 'since', 'until', 'limit', 'cursor', 'format', 'archives'],
  '/requests/did-call': ['agent', 'provider', 'model', 'since', 'until', 'archives'],
  '/stats': ['since', 'until', 'by', 'agent', 'archives'],
}
// Valid values for the other required parameters, so only the one under attack is wrong.
const REQUIRED: Record<string, Record<string, string>> = { '/requests/did-call': { agent: 'ezra', provider: 'kimi' } }

let w: TestWitness

function snapshot(path: string): string {
  const db = new Database(path, { readonly: true })
  try {
    return JSON.stringify([
      db.query('SELECT * FROM request_log ORDER BY id').all(),
      db.query('SELECT * FROM request_log_meta ORDER BY log_id').all(),
      db.query('SELECT type, name, sql FROM sqlite_master ORDER BY name').all(),
    ])
  } finally {
    db.close()
  }
}

beforeAll(async () => {
  const { dir, store } = seedStore()
  const at = new Date(Date.now() - 60_000).toISOString()
  await seed(store, [
    { agent: 'ezra', at, rows: [{ provider: 'kimi', status: 'error' }, { provider: 'groq', status: 'fallback' }, { provider: 'groq', status: 'success', latencyMs: 5 }] },
    { agent: 'bezalel', at, rows: [{ provider: 'kimi', status: 'success', latencyMs: 9 }] },
  ])
  store.close()
  w = await startWitness({ providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'k' }] } }, { dir })
})
afterAll(async () => {
  await w.stop(0)
})

/** True when the body is an answer with nothing in it. */
function isEmpty(path: string, body: Record<string, unknown>): boolean {
  if (path === '/requests') return Array.isArray(body.rows) && body.rows.length === 0
  if (path === '/requests/did-call') return body.called === false && body.calls === 0
  return Array.isArray(body.groups) && body.groups.length === 0
}

describe('SQL injection attempts', () => {
  test('in every query parameter: a 400 or an empty answer, never a 500 and never a change', async () => {
    const before = snapshot(w.dbPath)
    let refused = 0
    let empty = 0
    for (const [path, params] of Object.entries(PARAMS)) {
      for (const param of params) {
        for (const payload of PAYLOADS) {
          const query = new URLSearchParams({ ...REQUIRED[path], [param]: payload })
          const res = await fetch(`${w.url}${path}?${query}`)
          const label = `${path} ${param}=${payload}`
          expect([200, 400], label).toContain(res.status)
          if (res.status === 400) {
            const { error } = await res.json()
            expect(error.type, label).toBe('invalid_request')
            expect(error.issues.map((i: { path: string }) => i.path), label).toContain(param)
            refused++
          } else {
            expect(isEmpty(path, await res.json()), label).toBe(true)
            empty++
          }
        }
      }
    }
    // A cursor that decodes to an injection attempt, and one in the row id of /requests/:id.
    const cursor = Buffer.from("2026-11-25T10:00:00.000Z/1 OR 1=1").toString('base64url')
    expect((await fetch(`${w.url}/requests?cursor=${cursor}`)).status).toBe(400)
    for (const payload of PAYLOADS) expect([400, 404]).toContain((await fetch(`${w.url}/requests/${encodeURIComponent(payload)}`)).status)
    expect(refused).toBeGreaterThan(0)
    expect(empty).toBeGreaterThan(0)
    expect(snapshot(w.dbPath)).toBe(before)
    // And the rows are all still there to be read.
    expect((await (await fetch(`${w.url}/requests`)).json()).rows).toHaveLength(4)
  })

  test('in every flag of the read commands: exit 2 or nothing found, and no change', () => {
    const before = snapshot(w.dbPath)
    const run = (args: string[]) => Bun.spawnSync([BUN, join(ROOT, 'src/cli.ts'), ...args, '--db', w.dbPath], { env: { PATH: process.env.PATH ?? '' } })
    for (const payload of PAYLOADS.slice(0, 2)) {
      for (const flag of ['--agent', '--provider', '--model', '--status', '--chain', '--request-id', '--since', '--until', '--limit']) {
        const result = run(['query', flag, payload, '--json'])
        expect([0, 2], `query ${flag} ${payload}`).toContain(result.exitCode)
        if (result.exitCode === 0) expect(result.stdout.toString()).toBe('')
      }
      expect([1, 2]).toContain(run(['did-call', '--agent', 'ezra', '--provider', 'kimi', '--model', payload]).exitCode)
      expect(run(['did-call', '--agent', payload, '--provider', 'kimi']).exitCode).toBe(2)
      expect(run(['stats', '--by', payload]).exitCode).toBe(2)
    }
    expect(snapshot(w.dbPath)).toBe(before)
  }, 60_000) // 24 command-line runs, each a process of its own: 6 s here, past the 20 s default on a loaded machine
})
