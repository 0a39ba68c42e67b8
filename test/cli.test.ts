/** The witness command line, run as a real subprocess. */
import { Database } from 'bun:sqlite'
import { describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { BUN, ROOT, waitForLine } from './support/process.ts'
import { readRows } from './support/rows.ts'
import { tempDir } from './support/temp.ts'

function witness(args: string[], cwd = ROOT) {
  const proc = Bun.spawnSync([BUN, join(ROOT, 'src/cli.ts'), ...args], { cwd, env: { PATH: process.env.PATH ?? '' } })
  return { code: proc.exitCode, stdout: proc.stdout.toString(), stderr: proc.stderr.toString() }
}

describe('witness init', () => {
  test('creates the database with the schema, and is safe to run twice', () => {
    const db = join(tempDir(), 'sub', 'w.db')
    const first = witness(['init', '--db', db])
    expect(first.code).toBe(0)
    expect(first.stdout).toContain(`database ${db} ready`)
    const second = witness(['init', '--db', db])
    expect(second.code).toBe(0)
    const conn = new Database(db, { readonly: true })
    expect((conn.query('PRAGMA table_info(request_log)').all() as unknown[]).length).toBe(11)
    conn.close()
  })

  test('a database path that is a symbolic link (/var/lib/witness/witness.db -> /data/…) is its target: created there, and one server holds it by either name', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'data'))
    mkdirSync(join(dir, 'etc'))
    const link = join(dir, 'etc', 'w.db')
    symlinkSync(join(dir, 'data', 'w.db'), link)
    const made = witness(['init', '--db', link])
    expect(made.stderr).toBe('')
    expect(made.code).toBe(0)
    const conn = new Database(join(dir, 'data', 'w.db'), { readonly: true })
    expect((conn.query('PRAGMA table_info(request_log)').all() as unknown[]).length).toBe(11)
    conn.close()

    const config = join(dir, 'w.yaml')
    writeFileSync(config, `providers: { kimi: {} }\nchains: { default: [ { provider: kimi, model: kimi-k2.5 } ] }\ndatabase: ${link}\n`)
    const server = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'serve', '--config', config, '--port', '0'], { cwd: dir, env: { PATH: process.env.PATH ?? '' }, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' })
    try {
      await waitForLine(server.stderr, /listening on/)
      const second = witness(['serve', '--config', config, '--port', '0', '--db', join(dir, 'data', 'w.db')], dir)
      expect(second.code).not.toBe(0)
      expect(second.stderr).toContain('serve')
      expect(existsSync(join(dir, 'data', 'w.db.serve.lock'))).toBe(true)
    } finally {
      server.kill('SIGTERM')
      await server.exited
    }
  })

  test("another program's SQLite file is left alone: not turned to WAL, not given witness's tables", () => {
    const db = join(tempDir(), 'other.db')
    const other = new Database(db, { create: true })
    other.exec('CREATE TABLE foo (x); INSERT INTO foo VALUES (1)')
    other.close()
    const result = witness(['init', '--db', db])
    expect(result.stderr).toBe(`witness: ${db} is a SQLite database of something else (its tables: foo), not a witness log: witness does not add its tables to it; give another path\n`)
    expect(result.code).not.toBe(0)
    const after = new Database(db, { readonly: true })
    expect((after.query("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name)).toEqual(['foo'])
    expect((after.query('PRAGMA journal_mode').get() as { journal_mode: string }).journal_mode).toBe('delete')
    after.close()
  })

  test('creates the signing key readable only by its owner (mode 0600), and keeps it on a second run', () => {
    const dir = tempDir()
    const db = join(dir, 'w.db')
    const keyPath = join(dir, 'witness-key.json')
    const first = witness(['init', '--db', db])
    expect(first.stdout).toContain(`signing key ${keyPath} created`)
    expect(statSync(keyPath).mode & 0o777).toBe(0o600)
    const key = readFileSync(keyPath, 'utf8')
    const second = witness(['init', '--db', db])
    expect(second.stdout).toContain(`signing key ${keyPath} kept`)
    expect(statSync(keyPath).mode & 0o777).toBe(0o600)
    expect(readFileSync(keyPath, 'utf8')).toBe(key)
  })

  test("what it creates is not readable by other users, whatever the umask: the database, its WAL, the folder made for it", () => {
    const dir = tempDir()
    const db = join(dir, 'data', 'w.db')
    // The shell's usual umask, 022, which would leave them world-readable.
    const proc = Bun.spawnSync(['sh', '-c', `umask 022 && exec "$0" "$@"`, BUN, join(ROOT, 'src/cli.ts'), 'init', '--db', db], { env: { PATH: process.env.PATH ?? '' } })
    expect(proc.exitCode).toBe(0)
    const writer = new Database(db)
    writer.exec("INSERT INTO witness_state (key, value, updated_at) VALUES ('k', 'v', 'now')") // a WAL, as the running server has
    for (const file of [db, `${db}-wal`, join(dir, 'data')]) expect({ file, other: statSync(file).mode & 0o007 }).toEqual({ file, other: 0 })
    expect(statSync(db).mode & 0o040).toBe(0o040) // the group keeps read
    writer.close()
  })

  test('without --db it uses the database the config names', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'witness.yaml'), 'database: ./here.db\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\n')
    expect(witness(['init'], dir).code).toBe(0)
    expect(Bun.file(join(dir, 'here.db')).size).toBeGreaterThan(0)
  })

  test('a database that cannot be opened is named in the message', () => {
    const dir = tempDir()
    const blocked = join(dir, 'a-directory.db')
    mkdirSync(blocked)
    const result = witness(['init', '--db', blocked], dir)
    expect(result.code).toBe(1)
    expect(result.stderr).toContain(`witness: init failed: cannot open the database ${blocked}: `)
    expect(result.stderr).not.toContain('    at ')
  })

  test('a config named that is not there is an error: nothing is set up elsewhere', () => {
    const dir = tempDir()
    const result = witness(['init', '--config', join(dir, 'witnes.yaml')], dir)
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('cannot read file')
    expect(existsSync(join(dir, 'data'))).toBe(false)
  })
})

describe('config problems stop start-up, every one listed', () => {
  test('check-config passes a good file and prints its hash', () => {
    const result = witness(['check-config', '--config', join(ROOT, 'witness.yaml')])
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(/is valid \(sha256 [0-9a-f]{64}; chains: default, fast\)/)
  })

  test('check-config --against OLD says whether a server running OLD applies the file with a reload or needs a restart', () => {
    const dir = tempDir()
    const write = (name: string, extra: string) => {
      const path = join(dir, name)
      writeFileSync(path, `providers: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\n${extra}`)
      return path
    }
    const old = write('old.yaml', 'listen: { host: 127.0.0.1, port: 8787 }\n')
    const apply = (path: string, against: string) => witness(['check-config', '--config', path, '--against', against]).stdout.split('\n').find((l) => l.includes('to apply'))
    expect(apply(write('chain.yaml', 'listen: { host: 127.0.0.1, port: 8787 }\npolicy: { cooldown_s: 30 }\n'), old)).toBe('witness: to apply: reload')
    expect(apply(write('port.yaml', 'listen: { host: 127.0.0.1, port: 8788 }\ndatabase: ./other.db\n'), old)).toBe('witness: to apply: restart (database, listen, proof.key_path)')
    expect(apply(old, join(dir, 'missing.yaml'))).toBe('witness: to apply: restart (no previous config)')
    writeFileSync(join(dir, 'broken.yaml'), 'providers: [')
    expect(apply(old, join(dir, 'broken.yaml'))).toBe('witness: to apply: restart (the previous config is not valid)')
  })

  test('check-config --not-rolled-back refuses a config the deadman switch rolled back on this machine (a deploy would push it again at every run)', () => {
    const dir = tempDir()
    const path = join(dir, 'w.yaml')
    writeFileSync(path, 'providers: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\ndatabase: ./w.db\n')
    expect(witness(['check-config', '--config', path, '--not-rolled-back']).code).toBe(0) // no database yet
    expect(witness(['init', '--config', path]).code).toBe(0)
    expect(witness(['check-config', '--config', path, '--not-rolled-back']).code).toBe(0) // nothing rolled back
    const hash = new Bun.CryptoHasher('sha256').update(readFileSync(path)).digest('hex')
    const db = new Database(join(dir, 'w.db'))
    db.run("INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status, error_message) VALUES ('2026-12-06T10:00:00.000Z', 'witness', 'deadman', 'x', ?, 'rollback', 'rolled back')", [path])
    db.run("INSERT INTO deadman_rollback (log_id, agent, old_config_hash, new_config_hash, reason, recorded_by) VALUES (last_insert_rowid(), 'witness', ?, 'x', 'after 3 failed health checks (connection refused)', 'watchdog')", [hash])
    db.close()
    const refused = witness(['check-config', '--config', path, '--not-rolled-back'])
    expect(refused.code).toBe(1)
    expect(refused.stderr).toContain(`the config ${hash.slice(0, 12)}… was rolled back on this machine at 2026-12-06T10:00:00.000Z (after 3 failed health checks (connection refused))`)
    expect(witness(['check-config', '--config', path]).code).toBe(0) // deliberately, without the flag
  })

  test('serve and check-config refuse a bad file with every problem and its path', () => {
    const dir = tempDir()
    const path = join(dir, 'bad.yaml')
    writeFileSync(path, 'database_sync: sometimes\nproviders: { claude: { preset: anthropic } }\nchains: { default: [ { provider: claude, model: m } ], other: [ { provider: ghost, model: m } ] }\npolicy: { banned_providers: [anthropic] }\n')
    for (const command of ['serve', 'check-config']) {
      const result = witness([command, '--config', path])
      expect(result.code).toBe(2)
      expect(result.stderr).toContain('database_sync')
    }
    writeFileSync(path, 'providers: { claude: { preset: anthropic } }\nchains: { default: [ { provider: claude, model: m } ], other: [ { provider: ghost, model: m } ] }\npolicy: { banned_providers: [anthropic] }\n')
    const result = witness(['serve', '--config', path])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('chains.default[0].provider: provider "claude" is banned')
    expect(result.stderr).toContain('chains.other[0].provider: unknown provider "ghost"')
  })
})

describe('witness serve and sim', () => {
  test('serve takes its config from WITNESS_CONFIG and --db overrides the database it names; sim answers on its port', async () => {
    const dir = tempDir()
    const sim = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'sim', '--port', '0'], { cwd: dir, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' })
    const simUrl = (await waitForLine(sim.stderr, /OpenAI at (http:\/\/[\d.]+:\d+)\/v1\/chat\/completions/))[1]!
    writeFileSync(join(dir, 'other.yaml'), `database: ./named.db\nproviders: { sim: { type: openai, base_url: "${simUrl}/v1" } }\nchains: { default: [ { provider: sim, model: m } ] }\n`)
    const chosen = join(dir, 'chosen.db')
    const server = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'serve', '--port', '0', '--db', chosen], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '', WITNESS_CONFIG: join(dir, 'other.yaml') },
      stdin: 'ignore',
      stdout: 'ignore',
      stderr: 'pipe',
    })
    try {
      const url = (await waitForLine(server.stderr, /listening on (http:\/\/[\d.]+:\d+) \(pid \d+, config [^,]*other\.yaml, database [^,]*chosen\.db/))[1]!
      const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'a', messages: [{ role: 'user', content: 'hi' }] }) })
      expect(res.status).toBe(200)
      expect(readRows(chosen).map((r) => r.status)).toEqual(['success'])
      expect(existsSync(join(dir, 'named.db'))).toBe(false)
    } finally {
      server.kill('SIGTERM')
      sim.kill('SIGTERM')
      await Promise.all([server.exited, sim.exited])
    }
  })
})

describe('usage', () => {
  test('an unknown command or bad flag exits 2 with the usage', () => {
    const unknown = witness(['frobnicate'])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('usage: witness')
    const badPort = witness(['serve', '--port', 'abc'])
    expect(badPort.code).toBe(2)
    expect(badPort.stderr).toContain('--port must be 0-65535')
    // An unset $PORT in a script: not port 0 (a random one), nor the simulator's either.
    for (const command of ['serve', 'sim']) {
      const empty = witness([command, '--port', ''])
      expect(empty.code).toBe(2)
      expect(empty.stderr).toContain('--port must be 0-65535, got ""')
    }
  })

  test('<command> --help prints that command\'s usage and exits 0, whatever else is on the line', () => {
    for (const name of ['did-call', 'verify', 'watchdog', 'archive']) {
      const help = witness([name, '--help', '--no-such-flag'])
      expect(help.code).toBe(0)
      expect(help.stdout).toStartWith(`usage: witness ${name}`)
    }
  })
})

describe('npm start', () => {
  test("stopping npm (a supervisor's kill of the pid it started) stops witness too, not leaving it on the port", async () => {
    const dir = tempDir()
    const configPath = join(dir, 'witness.yaml')
    writeFileSync(configPath, `database: ./w.db\nproviders: { k: { type: openai, base_url: "http://127.0.0.1:9/v1" } }\nchains: { d: [ { provider: k, model: m } ] }\n`)
    const npm = Bun.spawn(['npm', 'start', '--silent', '--', '--config', configPath, '--port', '0'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? dir },
      stdout: 'pipe',
      stderr: 'pipe',
    })
    const [, url, pid] = await waitForLine(npm.stderr, /listening on (http:\/\/[\d.]+:\d+) \(pid (\d+)/)
    try {
      expect((await fetch(`${url}/heartbeat`)).status).toBe(200)
      npm.kill('SIGTERM')
      await npm.exited
      const deadline = Date.now() + 10_000
      let up = true
      while (up && Date.now() < deadline) {
        up = await fetch(`${url}/heartbeat`).then(() => true, () => false)
        if (up) await Bun.sleep(100)
      }
      expect(up).toBe(false)
    } finally {
      try {
        process.kill(Number(pid), 'SIGKILL') // left running only if the test failed
      } catch {
        // gone, as it should be
      }
    }
  })
})
