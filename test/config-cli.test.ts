/**
 * What `witness check-config` and `witness serve` say about real config files in temp dirs, run as
 * real subprocesses: the problems they refuse (each with its path), the warnings they give, and
 * that they say it in a line, not a stack trace.
 */
import { Database } from 'bun:sqlite'
import { describe, expect, test } from 'bun:test'
import { mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { SCHEMA_VERSION } from '../src/telemetry/schema.ts'
import { RUNTIME_ENV } from '../src/runtime-env.ts'
import { BUN, ROOT, runWitness, spawnWitness, waitForLine } from './support/process.ts'
import { tempDir } from './support/temp.ts'

/** A config file in a fresh temp dir holding `text`; returns its path. */
function configFile(text: string): string {
  const path = join(tempDir(), 'witness.yaml')
  writeFileSync(path, text)
  return path
}

describe('api_key_env', () => {
  // Made up, but shaped like the real thing: each matched the old check (letters, digits, "_").
  const pasted = {
    groq: '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',
    huggingface: 'hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789',
    github: 'ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R',
    gemini: 'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q',
    // Capitals and digits only, as an AWS access key id (Bedrock behind a gateway): a name by its letters.
    bedrock: 'AKIA2E0A8F3B244C9986',
  }

  test('a provider key pasted in place of the variable name is refused by check-config and serve, and never echoed', async () => {
    const providers = Object.entries(pasted).map(([name, key]) => `  ${name}: { type: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: ${key} }`)
    const path = configFile(`providers:\n${providers.join('\n')}\nchains:\n  default: [ { provider: groq, model: m } ]\n`)
    for (const command of ['check-config', 'serve']) {
      const result = await runWitness([command, '--config', path, ...(command === 'serve' ? ['--port', '0'] : [])])
      expect(result.code).toBe(2)
      for (const [name, key] of Object.entries(pasted)) {
        expect(result.stderr).toContain(`providers.${name}.api_key_env: must name the environment variable that holds the key (like GROQ_API_KEY), not the key itself`)
        expect(result.stderr).toContain(`starts ${JSON.stringify(key.slice(0, 4))} and is ${key.length} characters long`)
        // Nothing past its first 4 characters, anywhere.
        expect(`${result.stdout}${result.stderr}`).not.toContain(key.slice(0, 5))
      }
    }
  })

  test('a name must be written as operators write them, in capitals: a lower-case one is refused, GROQ_API_KEY is not', async () => {
    const lower = configFile('providers:\n  groq: { api_key_env: groq_api_key }\nchains:\n  default: [ { provider: groq, model: m } ]\n')
    const refused = await runWitness(['check-config', '--config', lower])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('providers.groq.api_key_env: must name the environment variable that holds the key')
    const upper = configFile('providers:\n  groq: { api_key_env: GROQ_API_KEY_2 }\nchains:\n  default: [ { provider: groq, model: m } ]\n')
    const passed = await runWitness(['check-config', '--config', upper], { GROQ_API_KEY_2: 'x' })
    expect(passed.stderr).toBe('')
    expect(passed.code).toBe(0)
  })
})

describe('the signing key file (proof.key_path)', () => {
  /** A config with its database and key in a fresh temp dir; the key file holds `key` when given. */
  function keyed(key?: string | Uint8Array): { path: string; dir: string; keyPath: string } {
    const path = configFile('database: ./w.db\nproof: { key_path: ./keys/k.json }\nproviders:\n  e: { type: openai, base_url: "http://127.0.0.1:9/v1" }\nchains:\n  default: [ { provider: e, model: m } ]\n')
    const dir = dirname(path)
    const keyPath = join(dir, 'keys', 'k.json')
    if (key !== undefined) {
      mkdirSync(join(dir, 'keys'))
      writeFileSync(keyPath, key)
    }
    return { path, dir, keyPath }
  }

  test('empty, cut short or not a key: serve says so in one line naming the file and what to do, and check-config warns of it', async () => {
    const whole = keyed()
    expect((await runWitness(['init', '--config', whole.path])).code).toBe(0)
    const good = readFileSync(whole.keyPath)
    const cases = { empty: ['', 'is empty (0 bytes)'], cut: [good.subarray(0, 100), 'is not JSON (100 bytes: cut short, or not a key file)'], other: ['{"kid":1}\n', 'does not hold an Ed25519 key pair (private_jwk and public_jwk)'] } as const
    for (const [key, said] of Object.values(cases)) {
      const { path, keyPath } = keyed(key)
      const served = await runWitness(['serve', '--config', path, '--port', '0'])
      expect(served.code).toBe(1)
      expect(served.stderr).toBe(`witness: the signing key ${keyPath} ${said}: restore it from a backup. A new key would not verify the checkpoints this one signed; only if no copy is left, move the file aside and run witness init to make a new key\n`)
      const checked = await runWitness(['check-config', '--config', path])
      expect(checked.code).toBe(0)
      expect(checked.stderr).toContain(`witness: warning: the signing key ${keyPath} ${said}: restore it from a backup`)
      // Left as it was, for the operator to restore.
      expect(readFileSync(keyPath).length).toBe(key.length)
    }
  })

  test.skipIf(!Bun.which('strace'))('a new key is fsynced before it is renamed into place, and its directory after', async () => {
    const { path, dir, keyPath } = keyed()
    const trace = join(dir, 'trace')
    const proc = Bun.spawn(['strace', '-f', '-qq', '-y', '-o', trace, '-e', 'trace=fsync,fdatasync,rename,renameat,renameat2', BUN, join(ROOT, 'src/cli.ts'), 'init', '--config', path], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '' },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    expect(await proc.exited).toBe(0)
    const lines = readFileSync(trace, 'utf8').split('\n')
    const renamed = lines.findIndex((l) => /rename/.test(l) && l.includes(`"${keyPath}"`))
    expect(renamed).toBeGreaterThan(-1)
    const temp = /"([^"]+)", [^"]*"/.exec(lines[renamed]!.slice(lines[renamed]!.indexOf('rename')))![1]!
    expect(lines.slice(0, renamed).some((l) => /fsync|fdatasync/.test(l) && l.includes(`<${temp}>`))).toBe(true)
    expect(lines.slice(renamed).some((l) => /fsync/.test(l) && l.includes(`<${join(dir, 'keys')}>`))).toBe(true)
    expect(statSync(keyPath).mode & 0o777).toBe(0o600)
  })
})

describe('a database from a newer witness', () => {
  test('serve and init say its schema version is newer than this witness in one line, with a failure exit, and leave it as it was', async () => {
    const path = configFile('database: ./w.db\nproviders:\n  e: { type: openai, base_url: "http://127.0.0.1:9/v1" }\nchains:\n  default: [ { provider: e, model: m } ]\n')
    const dbPath = join(dirname(path), 'w.db')
    expect((await runWitness(['init', '--config', path])).code).toBe(0)
    const db = new Database(dbPath)
    db.exec(`PRAGMA user_version = ${SCHEMA_VERSION + 7}`)
    db.close()
    const said = `witness: database schema version ${SCHEMA_VERSION + 7} (${dbPath}) is newer than this witness (${SCHEMA_VERSION}); upgrade witness\n`
    for (const args of [['serve', '--config', path, '--port', '0'], ['init', '--db', dbPath]]) {
      const result = await runWitness(args)
      expect(result.stderr).toBe(said)
      expect(result.code).toBe(1)
    }
    const after = new Database(dbPath, { readonly: true })
    expect(after.query('PRAGMA user_version').get()).toEqual({ user_version: SCHEMA_VERSION + 7 })
    after.close()
  })
})

describe('auth', () => {
  const base = 'listen: { host: 0.0.0.0 }\nproviders:\n  e: { type: openai, base_url: "http://127.0.0.1:9/v1" }\nchains:\n  default: [ { provider: e, model: m } ]\n'

  test('an auth that lists no agent and no operator (every endpoint would answer 401) is refused by check-config and serve, with the other problems', async () => {
    for (const auth of ['auth: {}', 'auth: { agents: {}, operators: {} }']) {
      const path = configFile(`${base}${auth}\npolicy: { backoff_min_ms: 0 }\n`)
      for (const command of ['check-config', 'serve']) {
        const result = await runWitness([command, '--config', path, ...(command === 'serve' ? ['--port', '0'] : [])])
        expect(result.code).toBe(2)
        expect(result.stderr).toContain('  - auth: lists no agent and no operator, so every endpoint would answer 401: list at least one (see `witness token new`); to run open, leave `auth` out')
        expect(result.stderr).toContain('  - policy.backoff_min_ms: ')
      }
    }
  })

  test('one operator is enough', async () => {
    const path = configFile(`${base}auth: { operators: { alex: { token_sha256: "${'ab'.repeat(32)}" } } }\n`)
    const result = await runWitness(['check-config', '--config', path])
    expect(result.code).toBe(0)
  })
})

describe('provider keys missing from the environment', () => {
  // groq: its preset's GROQ_API_KEY, unset; blank: its own variable, set empty; keyed: set; ollama: needs none.
  const text = 'providers:\n  groq: {}\n  blank: { type: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: BLANK_KEY }\n  keyed: { type: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: KEYED_KEY }\n  ollama: {}\nchains:\n  default: [ { provider: groq, model: m }, { provider: keyed, model: m } ]\n'
  const env = { BLANK_KEY: '  ', KEYED_KEY: 'sk-the-secret-value' }
  const warnings = [
    'provider "groq": its API key variable GROQ_API_KEY is not set in this environment, so its steps will be skipped',
    'provider "blank": its API key variable BLANK_KEY is empty in this environment, so its steps will be skipped',
  ]

  test('check-config warns of each, naming the variable, and still passes', async () => {
    const path = configFile(text)
    const result = await runWitness(['check-config', '--config', path], env)
    expect(result.code).toBe(0)
    expect(result.stdout).toContain('is valid')
    expect(result.stderr).toBe(warnings.map((w) => `witness: warning: ${w}\n`).join(''))
  })

  test('check-config --require-keys refuses the providers a chain calls without their key, and only those', async () => {
    const path = configFile(text)
    const refused = await runWitness(['check-config', '--config', path, '--require-keys'], env)
    expect(refused.code).toBe(1)
    expect(refused.stdout).toBe('')
    // groq is in a chain; blank (empty) is in none, so its key is not needed.
    expect(refused.stderr).toBe(
      'witness: provider "groq" (chains: default) has no API key: its variable GROQ_API_KEY is not set in this environment; set it, or take the provider out of its chains\n',
    )
    const keyed = await runWitness(['check-config', '--config', path, '--require-keys'], { ...env, GROQ_API_KEY: 'gsk-set' })
    expect(keyed.code).toBe(0)
    expect(keyed.stderr).toBe(`witness: warning: ${warnings[1]}\n`)
  })

  test('serve logs one line for each at start, and serves', async () => {
    const path = configFile(`database: ./w.db\n${text}`)
    const proc = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'serve', '--config', path, '--port', '0'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...RUNTIME_ENV, ...env },
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'pipe',
    })
    const [watched, whole] = proc.stderr.tee()
    try {
      const [, url] = await waitForLine(watched, /listening on (http:\S+) [\s\S]*provider "blank"[^\n]*\n/)
      expect((await fetch(`${url}/heartbeat`)).status).toBe(200)
    } finally {
      proc.kill('SIGTERM')
    }
    await proc.exited
    const lines = (await new Response(whole).text()).split('\n')
    const listening = lines.findIndex((l) => l.includes('listening on'))
    expect(lines.slice(listening + 1, listening + 3)).toEqual(warnings.map((w) => `witness: ${w}`))
    expect(lines.filter((l) => l.includes('keyed') || l.includes('ollama') || l.includes('secret'))).toEqual([])
  })
})

describe('lists of names in messages', () => {
  const providers = Array.from({ length: 300 }, (_, i) => `  p${i}: { type: openai, base_url: "http://127.0.0.1:9/v1" }`).join('\n')
  const first20 = Array.from({ length: 20 }, (_, i) => `p${i}`).join(', ')

  test('2,000 steps naming unknown providers each list the first 20 defined, and how many more: the output grows with the config, not its square', async () => {
    const steps = Array.from({ length: 2000 }, (_, i) => `    - { provider: ghost${i}, model: m }`).join('\n')
    const path = configFile(`providers:\n${providers}\nchains:\n  default:\n${steps}\n`)
    const result = await runWitness(['check-config', '--config', path])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(`  - chains.default[1999].provider: unknown provider "ghost1999"; defined: ${first20} and 280 more\n`)
    expect(result.stderr.split('\n').filter((l) => l.includes('unknown provider'))).toHaveLength(2000)
    // About 170 bytes a problem; every name each time was 1,890 more.
    expect(result.stderr.length).toBeLessThan(2000 * 200)
  })

  test('a call to an unknown chain names the first 20 configured, and how many more', async () => {
    const chains = Array.from({ length: 300 }, (_, i) => `  c${i}: [ { provider: p0, model: m } ]`).join('\n')
    const path = configFile(`database: ./w.db\nproviders:\n${providers}\nchains:\n${chains}\n`)
    const { proc, url } = await spawnWitness(path)
    try {
      const response = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'a', chain: 'nope', messages: [{ role: 'user', content: 'hi' }] }) })
      expect(response.status).toBe(404)
      const { error } = (await response.json()) as { error: { message: string } }
      expect(error.message).toBe(`unknown chain "nope"; configured chains: ${Array.from({ length: 20 }, (_, i) => `c${i}`).join(', ')} and 280 more`)
    } finally {
      proc.kill('SIGTERM')
      await proc.exited
    }
  })
})

describe('messages that say what is wrong', () => {
  const minimal = 'providers:\n  e: { type: openai, base_url: "http://127.0.0.1:9/v1" }\nchains:\n  default: [ { provider: e, model: m } ]\n'

  /** A fresh database made by `witness init`; returns its path. */
  async function initDb(): Promise<string> {
    const dbPath = join(tempDir(), 'w.db')
    expect((await runWitness(['init', '--db', dbPath])).code).toBe(0)
    return dbPath
  }

  test('an empty or comment-only config is said to be empty, needing providers: and chains:', async () => {
    for (const text of ['', '# to be written\n\n', '\n   \n']) {
      const path = configFile(text)
      for (const command of ['check-config', 'serve']) {
        const result = await runWitness([command, '--config', path])
        expect(result.code).toBe(2)
        expect(result.stderr).toBe(`witness: invalid config ${path}:\n  - (root): is empty (nothing but blank lines or comments): a config needs at least providers: and chains: (see the README's Config section)\n`)
      }
    }
    const scalar = await runWitness(['check-config', '--config', configFile('null\n')])
    expect(scalar.stderr).toContain('(root): holds a single value, not a mapping; a config is one mapping (providers:, chains:, …)')
  })

  test('stats: a window out of order blames the bound given, and says what the one not given stands for', async () => {
    const dbPath = await initDb()
    const since = await runWitness(['stats', '--db', dbPath, '--since', '0s'])
    expect(since.code).toBe(2)
    expect(since.stderr).toMatch(/^witness: --since must be before until, which is now when not given \(\d{4}-[^)]+\)\n$/)
    const until = await runWitness(['stats', '--db', dbPath, '--until', '48h'])
    expect(until.stderr).toMatch(/^witness: --until must be after since, which is 24 hours back when not given \(\d{4}-[^)]+\)\n$/)
    const both = await runWitness(['stats', '--db', dbPath, '--since', '1h', '--until', '2h'])
    expect(both.stderr).toMatch(/^witness: --until must be after since \(\d{4}-[^)]+\)\n$/)
  })

  test('a duration further back than ten years is told the limit, not that it must be a duration', async () => {
    const dbPath = await initDb()
    for (const command of [['stats'], ['query'], ['did-call', '--agent', 'a', '--provider', 'p']]) {
      const result = await runWitness([...command, '--db', dbPath, '--since', '100000d'])
      expect(result.code).toBe(2)
      expect(result.stderr).toBe('witness: --since must be at most 3650d (ten years) back from now\n')
    }
  })

  test('token new with an argument too many says which argument is unexpected', async () => {
    const result = await runWitness(['token', 'new', '--agent', 'a', 'extra'])
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
    expect(result.stderr.split('\n')[0]).toBe('witness: token new: unexpected argument "extra" (names go after --agent or --operator)')
    expect((await runWitness(['token', 'old'])).stderr.split('\n')[0]).toBe('witness: token: the only subcommand is "new"')
  })

  test('an empty --db is a usage error, for init, serve and the readers', async () => {
    const path = configFile(minimal)
    for (const args of [['init'], ['serve', '--config', path], ['query'], ['stats'], ['verify']]) {
      const result = await runWitness([...args, '--db', ''])
      expect(result.code).toBe(2)
      expect(result.stderr.split('\n')[0]).toBe('witness: --db must name a database file, got an empty path')
    }
  })

  test('a directory given as the database is said to be one', async () => {
    const parent = tempDir()
    const dir = join(parent, 'a-directory')
    mkdirSync(dir)
    const path = configFile(minimal)
    for (const command of ['init', 'serve']) {
      const result = await runWitness([command, ...(command === 'serve' ? ['--config', path, '--port', '0'] : []), '--db', dir])
      expect(result.code).toBe(1)
      expect(result.stderr).toBe(`witness: ${command} failed: cannot open the database ${dir}: it is a directory, not a database file\n`)
    }
    // Refused before serve's lock is taken: no lock file is left beside it.
    expect(readdirSync(parent)).toEqual(['a-directory'])
    for (const command of [['query'], ['stats'], ['did-call', '--agent', 'a', '--provider', 'p'], ['verify']]) {
      const result = await runWitness([...command, '--db', dir])
      expect(result.code).toBe(2)
      expect(result.stderr).toBe(`witness: cannot read ${dir} as a witness database: it is a directory, not a database file\n`)
    }
  })

  test('serve --host listens on the address given, as the README says; one that is not an address is a usage error', async () => {
    const path = configFile(`database: ./w.db\nlisten: { host: localhost }\n${minimal}`)
    const { proc, url } = await spawnWitness(path, {}, ['--host', '127.0.0.1'])
    try {
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect((await fetch(`${url}/heartbeat`)).status).toBe(200)
    } finally {
      proc.kill('SIGTERM')
      await proc.exited
    }
    const open = await runWitness(['serve', '--config', path, '--port', '0', '--host', '0.0.0.0'])
    expect(open.code).toBe(2)
    expect(open.stderr).toContain('"0.0.0.0" is not a loopback address, and without `auth` witness runs open')
    const wrong = await runWitness(['serve', '--config', path, '--port', '0', '--host', 'http://127.0.0.1'])
    expect(wrong.code).toBe(2)
    expect(wrong.stderr.split('\n')[0]).toBe('witness: --host must be an IP address or a host name, without a scheme, port or spaces (127.0.0.1, ::1, 0.0.0.0, witness.internal), got "http://127.0.0.1"')
  })
})
