/**
 * The read commands (query, did-call, stats) and `token new`, run as real
 * subprocesses against a database file while no server runs.
 */
import { beforeAll, describe, expect, test } from 'bun:test'
import { Database } from 'bun:sqlite'
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { hashToken, ownerOf } from '../src/auth/tokens.ts'
import { parseConfig } from '../src/config.ts'
import { LOG_COLUMNS } from '../src/telemetry/queries.ts'
import { BUN, ROOT, holdWriteLock } from './support/process.ts'
import { seed, seedStore } from './support/seed-requests.ts'
import { tempDir } from './support/temp.ts'

let dir: string
let dbPath: string
const recent = new Date(Date.now() - 10 * 60_000).toISOString()
const old = new Date(Date.now() - 3 * 3_600_000).toISOString()

function witness(args: string[], cwd = ROOT, env: Record<string, string> = {}) {
  const proc = Bun.spawnSync([BUN, join(ROOT, 'src/cli.ts'), ...args], { cwd, env: { PATH: process.env.PATH ?? '', ...env } })
  return { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() }
}

beforeAll(async () => {
  const seeded = seedStore()
  dir = seeded.dir
  dbPath = seeded.path
  await seed(seeded.store, [
    { agent: 'ezra', at: recent, rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 800, tokensIn: 10, tokensOut: 20 }] },
    { agent: 'ezra', at: recent, rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'timeout', latencyMs: 20000 }, { provider: 'mimo', status: 'fallback' }, { provider: 'mimo', status: 'fallback' }] },
    { agent: 'bezalel', at: old, rows: [{ provider: 'groq', model: 'llama', status: 'success', latencyMs: 300, tokensIn: 1, tokensOut: 2 }] },
  ])
  seeded.store.close()
  writeFileSync(join(dir, 'witness.yaml'), 'database: ./witness.db\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: kimi-k2.5 } ] }\npricing: { "kimi/kimi-k2.5": { input_per_mtok: 1000, output_per_mtok: 1000 } }\n')
})

describe('witness query', () => {
  test('prints a readable table, newest first, from the configured database when --db is not given', () => {
    const result = witness(['query', '--agent', 'ezra', '--since', '1h'], dir)
    expect(result.code).toBe(0)
    const lines = result.stdout.trimEnd().split('\n')
    expect(lines[0]).toMatch(/^id\s+timestamp\s+agent_name\s+provider\s+model\s+status\s+tokens_in\s+tokens_out\s+latency_ms\s+error_message$/)
    expect(lines.slice(2).map((l) => l.split(/\s+/)[5])).toEqual(['fallback', 'fallback', 'timeout', 'success'])
  })

  test('--json prints one JSON object per row with the 11 columns; --status filters; --limit pages with a cursor hint', () => {
    const result = witness(['query', '--db', dbPath, '--json', '--status', 'success'])
    expect(result.code).toBe(0)
    const rows = result.stdout.trimEnd().split('\n').map((l) => JSON.parse(l))
    expect(rows.map((r) => [r.agent_name, r.provider])).toEqual([['ezra', 'kimi'], ['bezalel', 'groq']])
    expect(Object.keys(rows[0])).toEqual([...LOG_COLUMNS])
    const paged = witness(['query', '--db', dbPath, '--json', '--limit', '2'])
    expect(paged.stdout.trimEnd().split('\n')).toHaveLength(2)
    const cursor = /--cursor (\S+)/.exec(paged.stderr)![1]!
    const rest = witness(['query', '--db', dbPath, '--json', '--limit', '1000', '--cursor', cursor])
    expect(rest.stdout.trimEnd().split('\n')).toHaveLength(3)
  })

  test('reads while another process holds the write lock (the file is opened read-only)', async () => {
    const lock = await holdWriteLock(dbPath)
    try {
      const result = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'query', '--db', dbPath, '--json'], { stdout: 'pipe', env: { PATH: process.env.PATH ?? '' } })
      expect(await result.exited).toBe(0)
      expect((await new Response(result.stdout).text()).trimEnd().split('\n')).toHaveLength(5)
    } finally {
      await lock.release()
    }
  })

  test("the owner's group reads it while the server is down, though it may not write the folder (where SQLite would make the -shm it wants)", () => {
    const runs = Bun.spawnSync(['setpriv', '--reuid=65534', '--regid=0', '--clear-groups', BUN, '--version'], { stderr: 'pipe' })
    if (process.getuid?.() !== 0 || runs.exitCode !== 0) {
      console.log(`skipped: needs root and setpriv, and bun runnable as uid 65534 with gid 0 (${runs.exitCode === null ? 'setpriv missing' : runs.stderr.toString().trim() || 'not root'})`)
      return
    }
    const home = tempDir()
    chmodSync(home, 0o755)
    const data = join(home, 'data')
    mkdirSync(data, { mode: 0o750 })
    const copy = join(data, 'witness.db')
    copyFileSync(dbPath, copy)
    chmodSync(copy, 0o640)
    const asGroup = (args: string[]) => Bun.spawnSync(['setpriv', '--reuid=65534', '--regid=0', '--clear-groups', BUN, join(ROOT, 'src/cli.ts'), ...args], { cwd: home, env: { PATH: process.env.PATH ?? '' } })
    const query = asGroup(['query', '--db', copy, '--json'])
    expect(query.stderr.toString()).toBe('')
    expect(query.stdout.toString().trimEnd().split('\n')).toHaveLength(5)
    const did = asGroup(['did-call', '--db', copy, '--agent', 'ezra', '--provider', 'kimi', '--since', '1h'])
    expect(did.exitCode).toBe(0)
    expect(existsSync(`${copy}-shm`)).toBe(false)
  })

  test('bad flags and a missing database exit 2, and the missing file is not created', () => {
    expect(witness(['query', '--db', dbPath, '--since', 'yesterday']).code).toBe(2)
    // Worded as the command's flags, not as the HTTP route's parameters.
    expect(witness(['query', '--db', dbPath, '--status', 'done', '--request-id', '']).stderr).toBe(
      'witness: --status must be one of: pending, success, error, timeout, fallback, rollback; --request-id must not be empty\n',
    )
    expect(witness(['did-call', '--db', dbPath, '--agent', 'ezra']).stderr).toBe('witness: --provider is required\n')
    expect(witness(['stats', '--db', dbPath, '--by', 'colour']).stderr).toBe('witness: --by must be one of: provider, model, agent, chain\n')
    const missing = join(tempDir(), 'none.db')
    const result = witness(['query', '--db', missing])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(`no database at ${missing}`)
    expect(existsSync(missing)).toBe(false)
  })
})

describe('reading with --db while the config is broken (the server may be down for just that)', () => {
  test('query, did-call and verify read the file, warning that the config was set aside; a config named with --config must load', () => {
    const broken = tempDir()
    writeFileSync(join(broken, 'witness.yaml'), 'providers: { kimi: {} }\nchains: { default: [ { provider: ghost, model: m } ] }\n')
    const env = { WITNESS_CONFIG: join(broken, 'witness.yaml') } // as the deployed wrapper sets it
    const query = witness(['query', '--db', dbPath], broken, env)
    expect(query.code).toBe(0)
    expect(query.stdout).toContain('kimi-k2.5')
    expect(query.stderr).toContain('without the config, which does not load (1 problem(s)')
    expect(witness(['did-call', '--db', dbPath, '--agent', 'ezra', '--provider', 'kimi'], broken, env).code).toBe(0)
    const verified = witness(['verify', '--db', dbPath], broken, env)
    expect(verified.stderr).toContain('without the config, which does not load')
    expect(verified.stdout).toContain('verified')
    expect(witness(['query', '--db', dbPath, '--config', join(broken, 'witness.yaml')], broken).code).toBe(2)
  })
})

describe('ordinary failures', () => {
  test('are one line naming what failed, never a stack trace: a file that is no database, a repo that is a file', () => {
    const here = tempDir()
    writeFileSync(join(here, 'notes.txt'), 'not a database')
    const verify = witness(['verify', '--db', join(here, 'notes.txt')], here)
    expect(verify.code).toBe(2)
    expect(verify.stderr).toStartWith(`witness: cannot read ${join(here, 'notes.txt')} as a witness database: file is not a database`)
    const fleet = witness(['fleet', '--repo', join(here, 'notes.txt'), '--out', join(here, 'fleet.db')], here)
    expect(fleet.stderr.trim()).toBe(`witness: fleet failed: ENOTDIR: not a directory, scandir '${join(here, 'notes.txt')}'`)
    for (const result of [verify, fleet]) expect(result.stderr).not.toContain('    at ')
  })
})

describe('witness did-call', () => {
  test('yes: exit 0 and one sentence with the counts and the last call time', () => {
    const result = witness(['did-call', '--db', dbPath, '--agent', 'ezra', '--provider', 'kimi', '--since', '1h'])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/^yes: agent ezra called provider kimi 2 times since \S+Z \(1 success, 1 timeout\); last call at \S+Z\n$/)
  })

  test('no: exit 1, even when fallback rows name the provider, and when the call is outside the window', () => {
    const named = witness(['did-call', '--db', dbPath, '--agent', 'ezra', '--provider', 'mimo', '--since', '1h'])
    expect(named.code).toBe(1)
    expect(named.stdout).toMatch(/^no: agent ezra made no call to provider mimo since \S+Z; 2 fallback rows named it, but no call was attempted\n$/)
    expect(witness(['did-call', '--db', dbPath, '--agent', 'bezalel', '--provider', 'groq', '--since', '1h']).code).toBe(1)
    expect(witness(['did-call', '--db', dbPath, '--agent', 'bezalel', '--provider', 'groq', '--since', '4h']).code).toBe(0)
  })

  test('a provider the config has not and no row names is a typo, exit 2, not a confident "no"; an agent no row names gets a note beside its "no"', () => {
    const typo = witness(['did-call', '--agent', 'ezra', '--provider', 'kimmi', '--since', '30d'], dir)
    expect(typo.stderr).toBe('witness: no provider "kimmi": the config has none of that name (it has kimi), and no row names one; a typo?\n')
    expect(typo.code).toBe(2)
    // One the config has, never called yet: a true "no".
    writeFileSync(join(dir, 'groqless.yaml'), 'database: ./witness.db\nproviders: { kimi: {}, openrouter: {} }\nchains: { default: [ { provider: kimi, model: kimi-k2.5 } ] }\n')
    const never = witness(['did-call', '--config', 'groqless.yaml', '--agent', 'ezra', '--provider', 'openrouter'], dir)
    expect(never.code).toBe(1)
    // With --db alone there is no config to tell a typo from a provider never called: a "no".
    expect(witness(['did-call', '--db', dbPath, '--agent', 'ezra', '--provider', 'kimmi']).code).toBe(1)
    const agent = witness(['did-call', '--db', dbPath, '--agent', 'ezzra', '--provider', 'kimi', '--json'])
    expect(agent.code).toBe(1)
    expect(JSON.parse(agent.stdout).never_seen).toEqual(['agent'])
    const noted = witness(['did-call', '--db', dbPath, '--agent', 'ezzra', '--provider', 'kimi'])
    expect(noted.stderr).toBe('note: no row in the files read names agent "ezzra": check its spelling\n')
    // Rows were moved to archives this short window does not open: a provider since taken out of the
    // config may be named there alone, so it is a "no" with a note, not a typo.
    const archived = tempDir('witness-cli-archived-')
    const copy = new Database(dbPath, { readonly: true })
    copy.exec(`VACUUM INTO '${join(archived, 'copy.db')}'`)
    copy.close()
    const moved = new Database(join(archived, 'copy.db'))
    moved.query("INSERT INTO witness_state (key, value, updated_at) VALUES ('archive.through', $at, $at)").run({ at: new Date(Date.now() - 40 * 86_400_000).toISOString() })
    moved.close()
    writeFileSync(join(archived, 'witness.yaml'), 'database: ./copy.db\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: kimi-k2.5 } ] }\n')
    const unread = witness(['did-call', '--agent', 'ezra', '--provider', 'kimmi', '--since', '1h'], archived)
    expect(unread.code).toBe(1)
    expect(unread.stdout).toStartWith('no: agent ezra made no call to provider kimmi')
    expect(unread.stderr).toMatch(/^note: no row in the files read names provider "kimmi", and the config has none of that name \(it has kimi\): a typo\? Rows archived through \S+ were not read \(--archives reads them\)\n$/)
    // A "no" for names that have rows carries no such field.
    expect(JSON.parse(witness(['did-call', '--db', dbPath, '--agent', 'bezalel', '--provider', 'groq', '--since', '1h', '--json']).stdout).never_seen).toBeUndefined()
  })

  test('usage errors exit 2: a missing flag, a bad time, an unknown flag', () => {
    expect(witness(['did-call', '--db', dbPath, '--agent', 'ezra']).code).toBe(2)
    expect(witness(['did-call', '--db', dbPath, '--agent', 'ezra', '--provider', 'kimi', '--since', '1 hour']).code).toBe(2)
    expect(witness(['did-call', '--db', dbPath, '--agent', 'ezra', '--provider', 'kimi', '--frobnicate']).code).toBe(2)
  })

  test('a database it cannot read exits 2, never 1: a garbage file, and a file that opens but is corrupt where the answer is read', async () => {
    const args = ['--agent', 'ezra', '--provider', 'kimi', '--since', '1h']
    const garbage = join(tempDir(), 'garbage.db')
    writeFileSync(garbage, Buffer.alloc(64 * 1024, 0x5a))
    const unreadable = witness(['did-call', '--db', garbage, ...args])
    expect(unreadable.code).toBe(2)
    expect(unreadable.stderr).toContain(`cannot read ${garbage} as a witness database`)
    // What the flag names is wrong, not the flags: no usage line that would read as a flag mistake.
    expect(unreadable.stderr).not.toContain('usage:')

    // A real database whose request_log reads fine, with the index did-call reads overwritten on disk.
    const corrupt = seedStore()
    await seed(corrupt.store, [{ agent: 'ezra', at: recent, rows: [{ provider: 'kimi', model: 'kimi-k2.5', status: 'success', latencyMs: 5 }] }])
    corrupt.store.close()
    expect(witness(['did-call', '--db', corrupt.path, ...args]).code).toBe(0)
    const db = new Database(corrupt.path, { readonly: true })
    const { rootpage } = db.query("SELECT rootpage FROM sqlite_master WHERE name = 'request_log_agent_provider_time'").get() as { rootpage: number }
    const { page_size: pageSize } = db.query('PRAGMA page_size').get() as { page_size: number }
    db.close()
    const fd = openSync(corrupt.path, 'r+')
    writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (rootpage - 1) * pageSize)
    closeSync(fd)
    const crashed = witness(['did-call', '--db', corrupt.path, ...args])
    expect(crashed.code).toBe(2)
    expect(crashed.stderr.trim()).toBe('witness: did-call failed: database disk image is malformed (SQLITE_CORRUPT)')
    expect(crashed.stdout).toBe('')
    // Other commands keep 1 for a failure.
    expect(witness(['query', '--db', corrupt.path, '--agent', 'ezra', '--provider', 'kimi']).code).toBe(1)
  })
})

describe('witness stats', () => {
  test('prints the comparison as a table with the rankings, priced from the config', () => {
    const result = witness(['stats', '--since', '24h', '--by', 'provider'], dir)
    expect(result.code).toBe(0)
    const lines = result.stdout.split('\n')
    expect(lines[2]).toMatch(/^provider\s+attempts\s+success\s+error\s+timeout\s+success_rate\s+requests\s+request_success_rate\s+p50_ms\s+p95_ms\s+p99_ms\s+tokens_in\s+tokens_out\s+cost_usd$/)
    expect(lines.find((l) => l.startsWith('kimi '))!.split(/\s+/)).toEqual(['kimi', '2', '1', '0', '1', '0.5', '2', '0.5', '800', '800', '800', '10', '20', '0.03'])
    expect(result.stdout).toContain('fastest (p50 ms):                   groq 300, kimi 800')
    expect(result.stdout).toContain('cheapest (USD per million tokens):  kimi 1000')
  })

  test('a file of the specified table alone (a log from before witness) is a clear exit 2 for stats, which query still reads', () => {
    const bare = join(tempDir(), 'bare.db')
    const db = new Database(bare)
    db.exec(`CREATE TABLE request_log (id INTEGER PRIMARY KEY AUTOINCREMENT, timestamp TEXT NOT NULL, agent_name TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL, endpoint TEXT NOT NULL, tokens_in INTEGER, tokens_out INTEGER, latency_ms INTEGER, status TEXT NOT NULL, error_message TEXT)`)
    db.query("INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status, latency_ms) VALUES (?, 'ezra', 'kimi', 'k', 'e', 'success', 12)").run(recent)
    db.close()
    const stats = witness(['stats', '--db', bare])
    expect(stats.code).toBe(2)
    expect(stats.stderr).toContain('holds request_log alone')
    expect(stats.stderr).not.toContain('SQLITE')
    expect(witness(['query', '--db', bare, '--json']).stdout).toContain('"agent_name":"ezra"')
  })

  test('--json prints the same object as GET /stats', () => {
    const result = witness(['stats', '--db', dbPath, '--by', 'agent', '--json'])
    expect(result.code).toBe(0)
    const body = JSON.parse(result.stdout)
    expect(body.by).toBe('agent')
    expect(body.groups.map((g: { agent: string }) => g.agent)).toEqual(['ezra', 'bezalel'])
    expect(Object.keys(body.rankings)).toEqual(['fastest', 'most_reliable', 'cheapest'])
  })
})

describe('witness token new', () => {
  test('prints a token once and a config line holding its sha256, which then authenticates that agent', () => {
    const result = witness(['token', 'new', '--agent', 'bezalel'])
    expect(result.code).toBe(0)
    const token = result.stdout.split('\n')[1]!
    const hash = /"bezalel": \{ token_sha256: "([0-9a-f]{64})" \}/.exec(result.stdout)![1]!
    expect(hashToken(token)).toBe(hash)
    const yaml = result.stdout.slice(result.stdout.indexOf('auth:'))
    const config = parseConfig({ ...(Bun.YAML.parse(yaml) as object), providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'k' }] } })
    expect(ownerOf(token, config.auth!)).toEqual({ kind: 'agent', name: 'bezalel' })
    expect(witness(['token', 'new', '--operator', 'alexander']).stdout).toContain('  operators:\n    "alexander": { token_sha256: "')
  })

  test('a name YAML would read as a number (007, 1e3) is printed quoted, and reads back as that name', () => {
    for (const name of ['007', '1e3', '0x10']) {
      const result = witness(['token', 'new', '--agent', name])
      const yaml = result.stdout.slice(result.stdout.indexOf('auth:'))
      const config = parseConfig({ ...(Bun.YAML.parse(yaml) as object), providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'k' }] } })
      expect(ownerOf(result.stdout.split('\n')[1]!, config.auth!)).toEqual({ kind: 'agent', name })
    }
  })

  test('exactly one of --agent or --operator, with a valid name', () => {
    expect(witness(['token', 'new']).code).toBe(2)
    expect(witness(['token', 'new', '--agent', 'a', '--operator', 'b']).code).toBe(2)
    expect(witness(['token', 'new', '--agent', 'two words']).code).toBe(2)
    expect(witness(['token', 'old', '--agent', 'a']).code).toBe(2)
  })
})

