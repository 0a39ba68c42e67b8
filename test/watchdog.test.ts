/**
 * `witness watchdog` as a real subprocess against real routers (running,
 * stopped, hung): counting failures, restoring the last-known-good
 * snapshot, running restart_command, recording the rollback through the
 * router or straight into SQLite, and refusing rollbacks that cannot help.
 */
import { describe, expect, test } from 'bun:test'
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { hashToken } from '../src/auth/tokens.ts'
import { sha256 } from '../src/hash.ts'
import { KEPT_ROLLED_BACK, promoteLastGood, restoreLastGood } from '../src/deadman/last-good.ts'
import { RUNTIME_ENV } from '../src/runtime-env.ts'
import { BUN, ROOT, eventually, holdJobLock, holdWriteLock, runWitness, spawnWitness, waitForLine } from './support/process.ts'
import { readRollbackFacts, readRows } from './support/rows.ts'
import { seedStore } from './support/seed-requests.ts'
import { useSimulator } from './support/sim-suite.ts'
import { tempDir } from './support/temp.ts'
import { manualClock, simConfig, writeConfigFile } from './support/witness.ts'

const suite = useSimulator()

async function watchdog(args: string[], env: Record<string, string> = {}, prefix: string[] = []): Promise<{ code: number; stderr: string }> {
  const proc = Bun.spawn([...prefix, BUN, join(ROOT, 'src/cli.ts'), 'watchdog', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited])
  return { code, stderr }
}

/** The text of a stream up to (and including) the first `word`, within `timeoutMs`. */
async function readUntil(stream: ReadableStream<Uint8Array>, word: string, timeoutMs: number): Promise<string> {
  const reader = stream.getReader()
  const decoder = new TextDecoder()
  let text = ''
  const deadline = Date.now() + timeoutMs
  while (!text.includes(word) && Date.now() < deadline) {
    const { value, done } = await Promise.race([reader.read(), Bun.sleep(Math.max(0, deadline - Date.now())).then(() => ({ value: undefined, done: true }))])
    if (done) break
    text += decoder.decode(value, { stream: true })
  }
  reader.releaseLock()
  return text
}

/** A loopback port nothing listens on. */
function deadPort(): number {
  const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response() })
  const port = server.port!
  server.stop(true)
  return port
}

const deadUrl = () => `http://127.0.0.1:${deadPort()}`

/** The failing window of the tests' configs: short, so a chain is failing after a moment of failed calls. */
const FAILING_WINDOW_S = 0.3

/** Calls the router at `url`, whose chain fails, a call every tenth of FAILING_WINDOW_S for longer than it: the chain is then failing. */
async function failFor(url: string, headers: Record<string, string> = {}): Promise<void> {
  let first: number | null = null
  while (true) {
    await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ agent: 'a', messages: [{ role: 'user', content: 'hi' }] }) })
    // Counted from the first failure's answer (a first call can be slow), with a margin.
    first ??= performance.now()
    if (performance.now() - first > FAILING_WINDOW_S * 1000 + 50) return
    await Bun.sleep(FAILING_WINDOW_S * 100)
  }
}

const BROKEN = 'providers: { kimi: {} }\nchains: { default: [ { provider: ghost, model: m } ] }\n'
const short = (hash: string) => `${hash.slice(0, 12)}…`
/** The config hash the server noted it ran (`<config>.serve.json`). */
const servedHash = (configPath: string): string => JSON.parse(readFileSync(`${configPath}.serve.json`, 'utf8')).config_hash

describe('against a stopped router', () => {
  test('after --failures N it restores the snapshot, runs restart_command and writes the row straight into SQLite, leaving pending rows alone', async () => {
    const dir = tempDir()
    const marker = join(dir, 'restarted')
    const configPath = writeConfigFile(
      join(dir, 'witness.yaml'),
      simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+hang' }] }, {
        deadman: { restart_command: `echo "$WITNESS_OLD_CONFIG_HASH $WITNESS_NEW_CONFIG_HASH $WITNESS_CONFIG" > ${marker}; echo restarting` },
      }),
    )
    // The router dies mid-call: its pending row is the next router's to finish, never the watchdog's.
    const { proc, url } = await spawnWitness(configPath)
    void fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'bezalel', messages: [{ role: 'user', content: 'hi' }] }) }).catch(() => null)
    while (suite.sim.count() === 0) await Bun.sleep(5)
    proc.kill('SIGKILL')
    await proc.exited

    const good = readFileSync(configPath)
    promoteLastGood(configPath, good)
    writeFileSync(configPath, BROKEN) // someone broke the config; the router would not start on it
    // Readable by its group and others: the watchdog's own umask (027) must not narrow it on restore.
    chmodSync(configPath, 0o644)
    const [goodHash, brokenHash] = [sha256(good), sha256(BROKEN)]

    const args = ['--config', configPath, '--url', url, '--failures', '3', '--wait', '200ms']
    const first = await watchdog(args)
    expect(first.code).toBe(1)
    expect(first.stderr).toContain('heartbeat failed (1 of 3 before a rollback): connection refused')
    expect((await watchdog(args)).code).toBe(1)
    expect(readFileSync(configPath, 'utf8')).toBe(BROKEN)
    expect(existsSync(marker)).toBe(false)

    // Nothing restarted the router (the command only echoes): the rollback is recorded, as not in effect.
    const third = await watchdog(args)
    expect(third.code).toBe(2)
    expect(third.stderr).toContain(`straight into ${join(dir, 'witness.db')}`)
    expect(readFileSync(configPath)).toEqual(good)
    expect(statSync(configPath).mode & 0o777).toBe(0o644)
    expect(statSync(`${configPath}.rolled-back-${brokenHash.slice(0, 12)}`).mode & 0o777).toBe(0o644)
    expect(readFileSync(marker, 'utf8')).toBe(`${brokenHash} ${goodHash} ${configPath}\n`)

    const rows = readRows(join(dir, 'witness.db'))
    expect(rows.map((r) => r.status)).toEqual(['pending', 'rollback'])
    expect(rows[1]).toMatchObject({ agent_name: 'witness', provider: 'deadman', model: goodHash, endpoint: configPath })
    expect(rows[1]!.error_message).toBe(`rolled back config ${short(brokenHash)} → ${short(goodHash)} after 3 failed health checks (connection refused); restart_command exited 0; NOT IN EFFECT: the router did not answer within 0.2 s, so it is not known to run the snapshot`)
    expect(readRollbackFacts(join(dir, 'witness.db'))).toEqual([
      {
        log_id: rows[1]!.id, agent: 'witness', old_config_hash: brokenHash, new_config_hash: goodHash,
        reason: 'after 3 failed health checks (connection refused); restart_command exited 0; NOT IN EFFECT: the router did not answer within 0.2 s, so it is not known to run the snapshot',
        command: 'restart_command', exit_status: 0, timed_out: 0, output: 'restarting', recorded_by: 'watchdog',
        rollback_id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      },
    ])
    expect(JSON.parse(readFileSync(`${configPath}.watchdog.json`, 'utf8')).failures).toBe(0)

    // The watchdog chained its row into the one chain; the next router chains the row it recovers after it.
    const next = await spawnWitness(configPath)
    next.proc.kill('SIGTERM')
    expect(await next.proc.exited).toBe(0)
    const verified = Bun.spawnSync([BUN, join(ROOT, 'src/cli.ts'), 'verify', '--config', configPath], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' } })
    expect(verified.stdout.toString()).toContain(`verified ${join(dir, 'witness.db')}: chain entries 1-2, 2 rows checked`)
    expect(verified.exitCode).toBe(0)
  })

  test('an unreadable state file (edited by hand, a failing disk) is a fresh start, and the run says what it forgets', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    promoteLastGood(configPath, readFileSync(configPath))
    const args = ['--config', configPath, '--url', deadUrl(), '--failures', '3', '--wait', '200ms']
    expect((await watchdog(args)).stderr).toContain('(1 of 3 before a rollback)')
    expect((await watchdog(args)).stderr).toContain('(2 of 3 before a rollback)')
    const statePath = `${configPath}.watchdog.json`
    for (const [text, why] of [['{"failures": 2, "last_fail', 'JSON Parse error'], ['{"failures": -1}', 'failures: ']] as const) {
      writeFileSync(statePath, text)
      const run = await watchdog(args)
      expect(run.stderr).toContain(`${statePath} cannot be read (${why}`)
      expect(run.stderr).toContain('starting from a fresh state, so a streak of failed checks or a rollback begun and not yet recorded in it is forgotten')
      expect(run.stderr).toContain('(1 of 3 before a rollback)')
      expect(JSON.parse(readFileSync(statePath, 'utf8')).failures).toBe(1)
    }
  })

  test('a router stopped on purpose (SIGTERM) is not rolled back, nor restarted; one that started again and then died is', async () => {
    const dir = tempDir()
    const marker = join(dir, 'restarted')
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { restart_command: `touch ${marker}` } }))
    promoteLastGood(configPath, readFileSync(configPath))
    writeConfigFile(configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500' }] }, { deadman: { restart_command: `touch ${marker}` } }))
    const pushed = readFileSync(configPath)
    const stopped = await spawnWitness(configPath)
    stopped.proc.kill('SIGTERM')
    expect(await stopped.proc.exited).toBe(0)
    const args = ['--config', configPath, '--url', stopped.url, '--failures', '1', '--wait', '100ms', '--state', join(dir, 'state.json')]
    const refused = await watchdog(args)
    expect(refused.stderr).toMatch(/NOT ROLLING BACK .* \(connection refused\): the router was stopped on purpose at \d{4}-\d\d-\d\dT[\d:.]+Z \(a clean stop, not a crash\)/)
    expect(refused.code).toBe(2)
    expect(readFileSync(configPath)).toEqual(pushed)
    expect(existsSync(marker)).toBe(false)

    const died = await spawnWitness(configPath)
    died.proc.kill('SIGKILL')
    await died.proc.exited
    const rolled = await watchdog([...args.slice(0, 2), '--url', died.url, ...args.slice(4)])
    expect(rolled.stderr).toContain(`restored ${configPath}.last-good over ${configPath}`)
    expect(existsSync(marker)).toBe(true)
  })

  test('a router stopped on purpose, then started again on a file it cannot read as a config (and dead of it), is rolled back: that start ended the stop', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const good = readFileSync(configPath)
    promoteLastGood(configPath, good)
    const stopped = await spawnWitness(configPath)
    stopped.proc.kill('SIGTERM')
    expect(await stopped.proc.exited).toBe(0)
    writeFileSync(configPath, 'providers: [not, a: config\n')
    const start = await runWitness(['serve', '--config', configPath])
    expect(start.code).not.toBe(0)
    expect(start.stderr).toContain('not valid YAML')
    const served = JSON.parse(readFileSync(`${configPath}.serve.json`, 'utf8'))
    expect(served.stopped_at).toBeUndefined()
    expect(served.config_hash).toBe(sha256(readFileSync(configPath)))
    const rolled = await watchdog(['--config', configPath, '--url', stopped.url, '--failures', '1', '--wait', '100ms', '--state', join(dir, 'state.json')])
    expect(rolled.stderr).toContain(`restored ${configPath}.last-good over ${configPath}`)
    expect(readFileSync(configPath)).toEqual(good)

    // A one-off start (--port) on a broken file is not the router's: a clean stop stays noted.
    const again = await spawnWitness(configPath)
    again.proc.kill('SIGTERM')
    expect(await again.proc.exited).toBe(0)
    writeFileSync(configPath, 'providers: [not, a: config\n')
    expect((await runWitness(['serve', '--config', configPath, '--port', '0'])).code).not.toBe(0)
    expect(JSON.parse(readFileSync(`${configPath}.serve.json`, 'utf8')).stopped_at).toBeString()
  })

  test('a valid config in the file that the router never ran (pushed, not applied, before it went down) is not overwritten; one it ran is rolled back, and what the rollback replaced is kept', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const good = readFileSync(configPath)
    promoteLastGood(configPath, good)
    let router = await spawnWitness(configPath)
    writeConfigFile(configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }], extra: [{ provider: 'sim', model: 'm' }] }))
    const pushed = readFileSync(configPath)
    // A second server started on it by mistake finds the router's lock held: it is not the router, and the push did not run.
    expect((await runWitness(['serve', '--config', configPath])).code).not.toBe(0)
    expect(servedHash(configPath)).toBe(sha256(good))
    router.proc.kill('SIGKILL') // an OOM kill, a crash: nothing to do with the push
    await router.proc.exited

    const refused = await watchdog(['--config', configPath, '--url', router.url, '--failures', '1', '--wait', '100ms'])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain(`the router does not answer, and ${configPath} (${short(sha256(pushed))}) is not a config it has run (it last ran ${short(sha256(good))}`)
    expect(readFileSync(configPath)).toEqual(pushed)
    expect(existsSync(join(dir, 'witness.db')) ? readRows(join(dir, 'witness.db')).filter((r) => r.status === 'rollback') : []).toEqual([])

    // Applied (the router started on it), and the router goes down on it: that one is rolled back.
    router = await spawnWitness(configPath)
    router.proc.kill('SIGKILL')
    await router.proc.exited
    const rolled = await watchdog(['--config', configPath, '--url', router.url, '--failures', '1', '--wait', '100ms'])
    expect(rolled.stderr).toContain(`restored ${configPath}.last-good over ${configPath} (${short(sha256(pushed))} → ${short(sha256(good))})`)
    const kept = `${configPath}.rolled-back-${sha256(pushed).slice(0, 12)}`
    expect(rolled.stderr).toContain(`the config it replaced is kept as ${kept}`)
    expect(readFileSync(configPath)).toEqual(good)
    expect(readFileSync(kept)).toEqual(pushed)
  })

  test('a router started with serve --db OTHER: with it down, the row goes into OTHER (noted by the server beside its config), or into the database --db names, never a new file at the config\'s database', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'var'))
    const other = join(dir, 'var', 'witness.db')
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    promoteLastGood(configPath, readFileSync(configPath))
    const router = await spawnWitness(configPath, {}, ['--db', other])
    router.proc.kill('SIGKILL')
    await router.proc.exited
    const rollbacks = () => readRows(other).filter((r) => r.status === 'rollback')

    writeFileSync(configPath, BROKEN)
    const noted = await watchdog(['--config', configPath, '--url', router.url, '--failures', '1', '--wait', '100ms', '--state', join(dir, 'first.json')])
    expect(noted.stderr).toContain(`rollback recorded (log id 1, straight into ${other})`)
    expect(rollbacks()).toHaveLength(1)
    // Without the server's note (another machine's server, a note deleted), --db says where.
    rmSync(`${configPath}.serve.json`)
    writeFileSync(configPath, BROKEN)
    const named = await watchdog(['--config', configPath, '--url', router.url, '--db', other, '--failures', '1', '--wait', '100ms', '--state', join(dir, 'second.json')])
    expect(named.stderr).toContain(`straight into ${other}`)
    expect(rollbacks()).toHaveLength(2)
    expect(existsSync(join(dir, 'witness.db'))).toBe(false)
  })

  test('a config the router died starting on, before it held its database (a data directory it cannot make), is rolled back: the server noted it first', async () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'not-a-dir'), '')
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const good = readFileSync(configPath)
    promoteLastGood(configPath, good)
    const router = await spawnWitness(configPath)
    router.proc.kill('SIGKILL')
    await router.proc.exited
    writeConfigFile(configPath, { ...simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }), database: join(dir, 'not-a-dir', 'new', 'w.db') })
    const pushed = readFileSync(configPath)
    const died = await runWitness(['serve', '--config', configPath])
    expect(died.code).not.toBe(0)
    expect(servedHash(configPath)).toBe(sha256(pushed))
    const rolled = await watchdog(['--config', configPath, '--url', router.url, '--failures', '1', '--wait', '100ms'])
    expect(rolled.stderr).toContain(`restored ${configPath}.last-good over ${configPath} (${short(sha256(pushed))} → ${short(sha256(good))})`)
    expect(readFileSync(configPath)).toEqual(good)
  })

  test("a start that fails on the config's own port, taken by another service, notes that config; a one-off start given --db or --port does not", async () => {
    const dir = tempDir()
    const other = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('another service') })
    try {
      const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
      const router = await spawnWitness(configPath)
      router.proc.kill('SIGKILL')
      await router.proc.exited
      const ran = servedHash(configPath)
      writeConfigFile(configPath, { ...simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }), listen: { host: '127.0.0.1', port: other.port } })
      const pushed = sha256(readFileSync(configPath))
      writeFileSync(join(dir, 'copy.db'), 'not a database')
      expect((await runWitness(['serve', '--config', configPath, '--db', join(dir, 'copy.db')])).code).not.toBe(0)
      expect(servedHash(configPath)).toBe(ran)
      expect((await runWitness(['serve', '--config', configPath])).code).not.toBe(0)
      expect(servedHash(configPath)).toBe(pushed)
    } finally {
      other.stop(true)
    }
  })

  test('a one-off (serve --db COPY --port) beside the running router neither notes its config or address for the watchdog, nor promotes, nor runs agents\' rollback_commands; once the router stops, it acts as the router', async () => {
    const dir = tempDir()
    const [marker, copy] = [join(dir, 'agent-rolled-back'), join(dir, 'copy.db')]
    const port = deadPort()
    const configPath = writeConfigFile(
      join(dir, 'witness.yaml'),
      simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, {
        listen: { host: '127.0.0.1', port },
        deadman: { check_every_s: 0.1, promote_after_s: 0.3, agents: { a1: { max_silence_s: 1, rollback_command: `echo "$WITNESS_AGENT" >> ${marker}` } } },
      }),
    )
    const router = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'serve', '--config', configPath], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...RUNTIME_ENV }, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' })
    let beating = true
    let oneOff: ReturnType<typeof Bun.spawn<'ignore', 'ignore', 'pipe'>> | undefined
    try {
      await waitForLine(router.stderr, /listening on/)
      const routerUrl = `http://127.0.0.1:${port}`
      const beats = (async () => {
        while (beating) {
          await fetch(`${routerUrl}/heartbeat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'a1' }) }).catch(() => null)
          await Bun.sleep(200)
        }
      })()
      const notedBefore = readFileSync(`${configPath}.serve.json`, 'utf8')
      oneOff = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'serve', '--config', configPath, '--db', copy, '--port', '0'], { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...RUNTIME_ENV }, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' })
      let said = ''
      const heard = (async () => {
        for await (const chunk of oneOff.stderr) said += new TextDecoder().decode(chunk)
      })()
      await eventually(() => /listening on http/.test(said), 10_000)
      expect(said).toContain('a router runs on this config: this server runs as a one-off')
      const oneOffUrl = /listening on (http:\/\/[\d.]+:\d+)/.exec(said)![1]!
      // A successful call on the one-off, and longer than promote_after_s and max_silence_s of its checks.
      expect((await fetch(`${oneOffUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'a1', messages: [{ role: 'user', content: 'hi' }] }) })).status).toBe(200)
      await Bun.sleep(2_000)
      expect(existsSync(marker)).toBe(false)
      expect(existsSync(`${configPath}.last-good`)).toBe(false)
      expect(readFileSync(`${configPath}.serve.json`, 'utf8')).toBe(notedBefore)
      expect(readFileSync(`${configPath}.serve.url`, 'utf8').trim()).toBe(routerUrl)
      // The watchdog checks the router, not the one-off.
      const check = await watchdog(['--config', configPath, '--state', join(dir, 'state.json')])
      expect(check.stderr).toContain(`heartbeat ok at ${routerUrl}`)

      beating = false
      await beats
      router.kill('SIGTERM')
      await router.exited
      await eventually(() => said.includes('the router on this config has stopped: this server acts as its router'), 5_000)
      await eventually(() => existsSync(`${configPath}.last-good`), 5_000)
      oneOff.kill('SIGTERM')
      await heard
    } finally {
      beating = false
      router.kill('SIGKILL')
      oneOff?.kill('SIGKILL')
    }
  })

  test("a start that finds its database's lock held by a server on another config (it names that router's database by mistake) notes its config; a second start on the same config does not", async () => {
    const dir = tempDir()
    const otherConfig = writeConfigFile(join(dir, 'other.yaml'), { ...simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }), database: join(dir, 'other.db') })
    const other = await spawnWitness(otherConfig)
    try {
      const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
      const mine = await spawnWitness(configPath)
      expect((await runWitness(['serve', '--config', configPath])).code).not.toBe(0) // its own lock, held: not noted
      const ran = sha256(readFileSync(configPath))
      expect(servedHash(configPath)).toBe(ran)
      mine.proc.kill('SIGKILL')
      await mine.proc.exited
      writeConfigFile(configPath, { ...simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }), database: join(dir, 'other.db') })
      expect((await runWitness(['serve', '--config', configPath])).code).not.toBe(0)
      expect(servedHash(configPath)).toBe(sha256(readFileSync(configPath)))
    } finally {
      other.proc.kill('SIGTERM')
      await other.proc.exited
    }
  })

  test("a copy served once with serve --db and removed since is not where the row goes, nor made anew: the config's database is", async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    promoteLastGood(configPath, readFileSync(configPath))
    mkdirSync(join(dir, 'scratch'))
    const copy = await spawnWitness(configPath, {}, ['--db', join(dir, 'scratch', 'copy.db')])
    copy.proc.kill('SIGKILL')
    await copy.proc.exited
    rmSync(join(dir, 'scratch'), { recursive: true })
    writeFileSync(configPath, BROKEN)
    const result = await watchdog(['--config', configPath, '--url', copy.url, '--failures', '1', '--wait', '100ms'])
    expect(result.stderr).toContain(`straight into ${join(dir, 'witness.db')}`)
    expect(existsSync(join(dir, 'scratch'))).toBe(false)
    expect(readRows(join(dir, 'witness.db')).filter((r) => r.status === 'rollback')).toHaveLength(1)
  })

  test('check-config --not-rolled-back finds a rollback recorded in the database the router was given with serve --db', async () => {
    const dir = tempDir()
    mkdirSync(join(dir, 'var'))
    const other = join(dir, 'var', 'witness.db')
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    promoteLastGood(configPath, readFileSync(configPath))
    writeConfigFile(configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500' }] }))
    const bad = readFileSync(configPath)
    const router = await spawnWitness(configPath, {}, ['--db', other])
    router.proc.kill('SIGKILL')
    await router.proc.exited
    expect((await watchdog(['--config', configPath, '--url', router.url, '--failures', '1', '--wait', '100ms'])).stderr).toContain(`straight into ${other}`)
    writeFileSync(configPath, bad) // the same push again
    const check = await runWitness(['check-config', '--config', configPath, '--not-rolled-back'])
    expect(check.stderr).toContain(`the config ${short(sha256(bad))} was rolled back on this machine`)
    expect(check.code).toBe(1)
  })

  test('the copies of configs a rollback replaced are bounded: the newest ten are kept', () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const snapshot = promoteLastGood(configPath, readFileSync(configPath))
    for (let i = 0; i < 12; i++) {
      writeFileSync(configPath, `${readFileSync(snapshot.path, 'utf8')}# push ${i}\n`)
      restoreLastGood(configPath, snapshot)
    }
    expect(readdirSync(dir).filter((f) => f.includes('.rolled-back-'))).toHaveLength(KEPT_ROLLED_BACK)
  })

  test("a restore removes the temp copies a restore killed -9 left (a dead process's), not a live one's", async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const snapshot = promoteLastGood(configPath, readFileSync(configPath))
    const exited = Bun.spawn(['true'])
    await exited.exited
    const dead = [`${configPath}.tmp-${exited.pid}`, `${configPath}.rolled-back-0123456789ab.tmp-${exited.pid}`]
    const live = `${configPath}.tmp-${process.ppid}`
    for (const path of [...dead, live]) writeFileSync(path, 'half a config')
    writeFileSync(configPath, BROKEN)
    restoreLastGood(configPath, snapshot)
    expect(dead.filter((path) => existsSync(path))).toEqual([])
    expect(existsSync(live)).toBe(true)
  })

  test('a failing restart_command is recorded with its exit status, and the run exits 2', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { restart_command: 'echo "unit not found"; exit 7', name: 'witness-east' } }))
    promoteLastGood(configPath, readFileSync(configPath))
    writeFileSync(configPath, BROKEN)
    const result = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1', '--wait', '100ms'])
    expect(result.code).toBe(2)
    const [row] = readRows(join(dir, 'witness.db'))
    expect(row).toMatchObject({ agent_name: 'witness-east', status: 'rollback' })
    expect(row!.error_message).toEndWith('after 1 failed health check (connection refused); restart_command exited 7 (unit not found); NOT IN EFFECT: the router did not answer within 0.1 s, so it is not known to run the snapshot')
    expect(readRollbackFacts(join(dir, 'witness.db'))[0]).toMatchObject({ exit_status: 7, output: 'unit not found', recorded_by: 'watchdog' })
  })
})

describe('a rollback that cannot be done or recorded exits 2', () => {
  test('router down and the database cannot take the row (a directory, a garbage file, a lock held past the budget): the rollback is done, NOT RECORDED is said and alerted, exit 2', async () => {
    const cases: [string, string, (dbPath: string) => Promise<() => Promise<void>>][] = [
      ['a directory', 'it is a directory, not a database file', async (dbPath) => {
        mkdirSync(dbPath)
        return async () => {}
      }],
      ['a garbage file', 'file is not a database', async (dbPath) => {
        writeFileSync(dbPath, Buffer.alloc(8192, 0x5a))
        return async () => {}
      }],
      ['locked by another process', 'database is locked', async (dbPath) => {
        seedStore(join(dbPath, '..')).store.close()
        const lock = await holdWriteLock(dbPath)
        return () => lock.release()
      }],
    ]
    for (const [what, why, prepare] of cases) {
      const dir = tempDir()
      const [marker, alerts, dbPath] = [join(dir, 'restarted'), join(dir, 'alerts'), join(dir, 'witness.db')]
      const configPath = writeConfigFile(
        join(dir, 'witness.yaml'),
        simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, {
          database_busy_timeout_ms: 200,
          deadman: { restart_command: `touch ${marker}`, alert_command: `echo "$1" >> ${alerts}` },
        }),
      )
      const good = readFileSync(configPath)
      promoteLastGood(configPath, good)
      writeFileSync(configPath, BROKEN)
      const release = await prepare(dbPath)
      try {
        const result = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1', '--wait', '100ms'])
        expect(result.code, what).toBe(2)
        // A database SQLite cannot open is named; the others fail past the open, with SQLite's words alone.
        const named = what === 'a directory' ? `cannot open the database ${dbPath}: ` : ''
        expect(result.stderr, what).toContain(`ROLLBACK NOT RECORDED: ${named}${why}`)
        // The rollback itself was carried out: only its record is missing, and a human is told.
        expect(readFileSync(configPath), what).toEqual(good)
        expect(existsSync(marker), what).toBe(true)
        expect(readFileSync(alerts, 'utf8'), what).toMatch(/^rolled back config .* after 1 failed health check \(connection refused\); restart_command exited 0; NOT IN EFFECT: .*; NOT RECORDED: .+\n$/)
        if (what === 'locked by another process') {
          // The next run, the lock still held: it checks on (the rollback kept), and does not alert NOT RECORDED again.
          const again = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1', '--wait', '100ms'])
          expect(again.stderr).toContain('AN INTERRUPTED ROLLBACK NOT RECORDED: database is locked')
          expect(again.stderr).toContain('after 1 failed health check (connection refused)')
          expect(readFileSync(alerts, 'utf8').split('\n').filter((line) => line.includes('NOT RECORDED'))).toHaveLength(1)
        }
      } finally {
        await release()
      }
      if (what !== 'locked by another process') continue
      expect(readRows(dbPath)).toEqual([])
      // The lock gone, the next run records that rollback (it was kept in the state file), once,
      // though a config was pushed to the file meanwhile (that run did restore the snapshot).
      writeFileSync(configPath, `${good}# pushed again\n`)
      await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1', '--wait', '100ms'])
      await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1', '--wait', '100ms'])
      // (The pushed config, which no router ran, is then rolled back in its turn: a row of its own.)
      const rows = readRows(dbPath).filter((row) => row.status === 'rollback' && row.error_message!.endsWith('recorded by the next run'))
      expect(rows).toHaveLength(1)
      expect(rows[0]!.error_message).toMatch(/after 1 failed health check \(connection refused\); restart_command exited 0; NOT IN EFFECT: .*; recorded by the next run$/)
    }
  })

  test('a rollback kept unrecorded while the database stays locked, the router down on the config it ran: later streaks retry its restart, start no other rollback, alert NOT RECORDED once; it is recorded once the lock goes', async () => {
    const dir = tempDir()
    const [restarts, alerts, dbPath, state] = [join(dir, 'restarts'), join(dir, 'alerts'), join(dir, 'witness.db'), join(dir, 'state.json')]
    const extra = { database_busy_timeout_ms: 200, deadman: { restart_command: `echo tried >> ${restarts}`, alert_command: `echo "$1" >> ${alerts}` } }
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, extra))
    promoteLastGood(configPath, readFileSync(configPath))
    writeConfigFile(configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500' }] }, extra))
    const router = await spawnWitness(configPath)
    router.proc.kill('SIGKILL')
    await router.proc.exited
    const args = ['--config', configPath, '--url', router.url, '--failures', '1', '--wait', '100ms', '--state', state]
    const ids = new Set<string>()
    const lock = await holdWriteLock(dbPath)
    try {
      for (let i = 0; i < 3; i++) {
        expect((await watchdog(args)).code).toBe(2)
        ids.add(JSON.parse(readFileSync(state, 'utf8')).rollback?.id)
      }
    } finally {
      await lock.release()
    }
    expect([...ids].filter(Boolean)).toHaveLength(1)
    expect(readFileSync(alerts, 'utf8').split('\n').filter((line) => line.includes('NOT RECORDED'))).toHaveLength(1)
    expect(readFileSync(restarts, 'utf8').split('\n').filter(Boolean).length).toBeGreaterThanOrEqual(3)
    await watchdog(args)
    await watchdog(args)
    const rows = readRows(dbPath).filter((row) => row.status === 'rollback')
    expect(rows).toHaveLength(1)
    expect(rows[0]!.error_message).toEndWith('recorded by the next run')
    expect(JSON.parse(readFileSync(state, 'utf8')).rollback).toBeNull()
  })

  test('the snapshot cannot be restored over the config file: exit 2, the config untouched, nothing restarted, an alert', async () => {
    const dir = tempDir()
    const [marker, alerts] = [join(dir, 'restarted'), join(dir, 'alerts')]
    const configPath = writeConfigFile(
      join(dir, 'witness.yaml'),
      simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { restart_command: `touch ${marker}`, alert_command: `echo "$1" >> ${alerts}` } }),
    )
    promoteLastGood(configPath, readFileSync(configPath))
    writeFileSync(configPath, BROKEN)
    // The snapshot is copied to <config>.tmp-<pid> and renamed over the config. The shell puts a
    // directory at that name for its own pid, then execs the watchdog under that same pid: the
    // copy cannot be written (as a read-only directory would refuse it, but also for root).
    const args = ['--config', configPath, '--url', deadUrl(), '--failures', '1', '--wait', '100ms']
    const result = await watchdog(args, {}, ['/bin/sh', '-c', 'mkdir "$0.tmp-$$" && exec "$@"', configPath])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(`ALERT rollback of ${configPath} failed after 1 failed health check (connection refused): cannot restore the snapshot: `)
    expect(result.stderr).toContain('EISDIR')
    expect(readFileSync(configPath, 'utf8')).toBe(BROKEN)
    expect(existsSync(marker)).toBe(false)
    expect(readFileSync(alerts, 'utf8')).toStartWith(`rollback of ${configPath} failed`)
    expect(existsSync(join(dir, 'witness.db'))).toBe(false)
  })

  test('a watchdog that fails (its config path is a directory) exits 2, never the 1 of a check below the threshold', async () => {
    const dir = tempDir()
    const configPath = join(dir, 'witness.yaml')
    mkdirSync(configPath)
    writeConfigFile(`${configPath}.last-good`, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    promoteLastGood(configPath, readFileSync(`${configPath}.last-good`)) // and its .sha256
    const result = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1', '--wait', '100ms'])
    expect(result.stderr).toContain('witness: watchdog failed: EISDIR')
    expect(result.code).toBe(2)
  })

  test('a restart_command that hangs is killed at command_timeout_s, with all it started, and the row records it as timed out', async () => {
    const dir = tempDir()
    const pidFile = join(dir, 'restart.pid')
    const configPath = writeConfigFile(
      join(dir, 'witness.yaml'),
      simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { command_timeout_s: 0.3, restart_command: `echo $$ > ${pidFile}; echo "stopping witness"; sleep 30; echo never` } }),
    )
    const good = readFileSync(configPath)
    promoteLastGood(configPath, good)
    writeFileSync(configPath, BROKEN)
    const started = performance.now()
    const result = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1', '--wait', '100ms'])
    expect(performance.now() - started).toBeLessThan(10_000)
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('restart_command timed out after 0.3 s (killed) (stopping witness)')
    expect(readFileSync(configPath)).toEqual(good)
    // The command's whole process group (the shell and its 30 s sleep) is gone, once the dead are reaped.
    const pgid = Number(readFileSync(pidFile, 'utf8'))
    const groupAlive = () => {
      try {
        return process.kill(-pgid, 0)
      } catch {
        return false
      }
    }
    for (const deadline = Date.now() + 5_000; groupAlive() && Date.now() < deadline; ) await Bun.sleep(20)
    expect(groupAlive()).toBe(false)
    const [row] = readRows(join(dir, 'witness.db'))
    expect(row).toMatchObject({ status: 'rollback', provider: 'deadman', model: sha256(good) })
    expect(row!.error_message).toEndWith('after 1 failed health check (connection refused); restart_command timed out after 0.3 s (killed) (stopping witness); NOT IN EFFECT: the router did not answer within 0.1 s, so it is not known to run the snapshot')
    expect(readRollbackFacts(join(dir, 'witness.db'))[0]).toMatchObject({ command: 'restart_command', exit_status: null, timed_out: 1, output: 'stopping witness', recorded_by: 'watchdog' })
  })
})

describe('one run at a time, and a run cut short', () => {
  test('a run while another holds the lock checks nothing and exits 1', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    promoteLastGood(configPath, readFileSync(configPath))
    writeFileSync(configPath, BROKEN)
    const held = await holdJobLock('watchdog', `${configPath}.watchdog.json.lock`)
    try {
      const result = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1'])
      expect(result.code).toBe(1)
      expect(result.stderr).toContain('another run holds the lock')
      expect(readFileSync(configPath, 'utf8')).toBe(BROKEN)
    } finally {
      await held.release()
    }
  })

  test('a run killed during its restart_command leaves the rollback to the next run, which records it', async () => {
    const dir = tempDir()
    const started = join(dir, 'started')
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { restart_command: `touch ${started}; sleep 5` } }))
    const good = readFileSync(configPath)
    promoteLastGood(configPath, good)
    writeFileSync(configPath, BROKEN)
    const url = deadUrl()
    const args = [BUN, join(ROOT, 'src/cli.ts'), 'watchdog', '--config', configPath, '--url', url, '--failures', '1', '--wait', '100ms']
    const killed = Bun.spawn(args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdout: 'ignore', stderr: 'ignore' })
    while (!existsSync(started)) await Bun.sleep(20)
    killed.kill('SIGKILL') // systemd's TimeoutStartSec, an OOM kill, a reboot
    await killed.exited
    expect(readFileSync(configPath)).toEqual(good)
    expect(existsSync(join(dir, 'witness.db'))).toBe(false)

    const next = await watchdog(['--config', configPath, '--url', url, '--failures', '1', '--wait', '100ms'])
    expect(next.stderr).toContain('an interrupted rollback recorded (log id 1, straight into')
    const [fact] = readRollbackFacts(join(dir, 'witness.db'))
    expect(fact).toMatchObject({ old_config_hash: sha256(Buffer.from(BROKEN)), new_config_hash: sha256(good), recorded_by: 'watchdog' })
    expect(fact!.reason).toContain('the watchdog was stopped before it finished (the restart outcome is unknown); recorded by the next run')
    // Recorded once: a third run finds nothing left to record.
    await watchdog(['--config', configPath, '--url', url, '--failures', '1', '--wait', '100ms'])
    expect(readRollbackFacts(join(dir, 'witness.db'))).toHaveLength(1)
  })

  test('a run stopped (SIGTERM, SIGINT) while its restart_command runs ends that command, which would otherwise act later, outside any run', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const dir = tempDir()
      const [started, late] = [join(dir, 'started'), join(dir, 'late')]
      const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { restart_command: `echo $$ > ${started}; sleep 1.5; touch ${late}`, command_timeout_s: 30 } }))
      promoteLastGood(configPath, readFileSync(configPath))
      writeFileSync(configPath, BROKEN)
      const args = [BUN, join(ROOT, 'src/cli.ts'), 'watchdog', '--config', configPath, '--url', deadUrl(), '--failures', '1', '--wait', '100ms']
      const run = Bun.spawn(args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdout: 'ignore', stderr: 'pipe' })
      while (!existsSync(started) || readFileSync(started, 'utf8') === '') await Bun.sleep(20)
      run.kill(signal)
      expect(await run.exited).toBe(signal === 'SIGTERM' ? 143 : 130)
      expect(await new Response(run.stderr).text()).toContain(`stopped (${signal}), ending the commands it ran`)
      await Bun.sleep(2_000)
      expect(existsSync(late)).toBe(false)
    }
  })

  test('a run killed after its restart applied the snapshot is recorded by the next run, though a new config was written to the file meanwhile', async () => {
    const dir = tempDir()
    const started = join(dir, 'started')
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman: { failing_window_s: FAILING_WINDOW_S } }))
    const { proc, url } = await spawnWitness(configPath)
    try {
      const good = readFileSync(writeConfigFile(join(dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { restart_command: `kill -HUP ${proc.pid}; touch ${started}; sleep 5` } })))
      promoteLastGood(configPath, good)
      await failFor(url)
      const args = [BUN, join(ROOT, 'src/cli.ts'), 'watchdog', '--config', configPath, '--url', url, '--failures', '1', '--wait', '100ms']
      const killed = Bun.spawn(args, { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdout: 'ignore', stderr: 'ignore' })
      while (!existsSync(started)) await Bun.sleep(20)
      killed.kill('SIGKILL')
      await killed.exited
      while ((await (await fetch(`${url}/heartbeat`)).json()).config_hash !== sha256(good)) await Bun.sleep(20)
      // The next push lands before the next run (not yet reloaded).
      writeFileSync(configPath, `${good}\n# pushed again\n`)

      const next = await watchdog(['--config', configPath, '--url', url, '--failures', '1', '--wait', '1s'])
      expect(next.stderr).toContain('the router runs the snapshot it restored: recording it')
      expect(next.stderr).toContain('an interrupted rollback recorded (log id')
      expect(readRollbackFacts(join(dir, 'witness.db'))).toMatchObject([{ new_config_hash: sha256(good), recorded_by: 'endpoint' }])
    } finally {
      proc.kill('SIGTERM')
      await proc.exited
    }
  })

  test('a report the router took too long to answer (its database locked) and the direct write that followed are one row', async () => {
    const dir = tempDir()
    const base = simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman: { restart_command: 'true', failing_window_s: FAILING_WINDOW_S } })
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), base)
    promoteLastGood(configPath, readFileSync(configPath))
    writeConfigFile(configPath, { ...base, max_body_mb: 16 }) // another config, failing its calls
    const router = await spawnWitness(configPath)
    await failFor(router.url)
    const lock = await holdWriteLock(join(dir, 'witness.db')) // a backup or a sqlite3 shell, for a few seconds
    try {
      const proc = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'watchdog', '--config', configPath, '--url', router.url, '--failures', '1', '--timeout', '2s', '--wait', '3s'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '' },
        stdout: 'ignore',
        stderr: 'pipe',
      })
      const said = await readUntil(proc.stderr, 'writing the row directly', 20_000)
      expect(said).toContain('writing the row directly')
      await Bun.sleep(300)
      await lock.release()
      await proc.exited
      // The router's queued write commits too, after the watchdog's (or before it): one row either way.
      await Bun.sleep(1_500)
      expect(readRows(join(dir, 'witness.db')).filter((r) => r.status === 'rollback')).toHaveLength(1)
    } finally {
      router.proc.kill('SIGTERM')
      await router.proc.exited
    }
  })

  test('a symlinked config is restored through its link: the link stays, its target gets the snapshot', async () => {
    const dir = tempDir()
    const target = writeConfigFile(join(dir, 'release-1.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const configPath = join(dir, 'witness.yaml')
    symlinkSync(target, configPath)
    const good = readFileSync(configPath)
    promoteLastGood(configPath, good)
    writeFileSync(target, BROKEN)
    await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1', '--wait', '100ms'])
    expect(lstatSync(configPath).isSymbolicLink()).toBe(true)
    expect(readFileSync(target)).toEqual(good)
  })
})

describe('against a running router', () => {
  test('the rollback row goes through POST /deadman/rollback, and the restarted (reloaded) router runs the snapshot', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(
      join(dir, 'witness.yaml'),
      simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman: { failing_window_s: FAILING_WINDOW_S } }),
    )
    const { proc, url } = await spawnWitness(configPath)
    try {
      // The last known good config restarts this router by asking it to reload.
      const goodPath = writeConfigFile(join(dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { restart_command: `kill -HUP ${proc.pid}` } }))
      const good = readFileSync(goodPath)
      promoteLastGood(configPath, good)
      const badHash = sha256(readFileSync(configPath))
      const infer = () => fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'a', messages: [{ role: 'user', content: 'hi' }] }) })
      expect((await infer()).status).toBe(502)
      await failFor(url)

      const result = await watchdog(['--config', configPath, '--url', url, '--failures', '1', '--wait', '2s'])
      expect(result.stderr).toContain('through POST /deadman/rollback')
      expect(result.code).toBe(0)
      const rows = readRows(join(dir, 'witness.db'))
      const rollback = rows.find((r) => r.status === 'rollback')!
      expect(rollback).toMatchObject({ agent_name: 'witness', provider: 'deadman', model: sha256(good), endpoint: configPath })
      expect(rollback.error_message).toStartWith(`rolled back config ${short(badHash)} → ${short(sha256(good))} after 1 failed health check (every chain called has failed`)
      expect(readRollbackFacts(join(dir, 'witness.db'))[0]).toMatchObject({ old_config_hash: badHash, command: 'restart_command', exit_status: 0, recorded_by: 'endpoint' })

      let heartbeat = await (await fetch(`${url}/heartbeat`)).json()
      for (let i = 0; i < 100 && heartbeat.config_hash !== sha256(good); i++) {
        await Bun.sleep(20)
        heartbeat = await (await fetch(`${url}/heartbeat`)).json()
      }
      expect(heartbeat).toMatchObject({ status: 'ok', config_hash: sha256(good), last_known_good: sha256(good) })
      expect((await infer()).status).toBe(200)
    } finally {
      proc.kill('SIGTERM')
      await proc.exited
    }
  })

  test('without a restart_command, a router that answers is asked to reload the restored config', async () => {
    const clock = manualClock()
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman: { failing_window_s: 60 } }), { clock })
    const goodPath = writeConfigFile(join(w.dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    promoteLastGood(w.configPath, readFileSync(goodPath))
    for (let i = 0; i < 3; i++) {
      expect((await w.infer({})).status).toBe(502)
      if (i < 2) clock.advance(40_000)
    }

    const result = await watchdog(['--config', w.configPath, '--url', w.url, '--failures', '1'])
    expect(result.stderr).toContain('no restart_command; reloaded through POST /admin/reload')
    expect(result.code).toBe(0)
    expect(w.config().hash).toBe(sha256(readFileSync(goodPath)))
    expect(readRollbackFacts(w.dbPath)).toMatchObject([{ command: null, exit_status: null, recorded_by: 'endpoint' }])
    expect((await w.infer({})).status).toBe(200)
  })

  test("another service answering where the router should listen (its port taken) is said to be no witness, not just its HTTP status", async () => {
    const other = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: () => new Response('not found', { status: 404 }) })
    try {
      const dir = tempDir()
      const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
      const run = await watchdog(['--config', configPath, '--url', `http://127.0.0.1:${other.port}`, '--failures', '3'])
      expect(run.stderr).toContain(`heartbeat failed (1 of 3 before a rollback): HTTP 404, not an answer of witness's (another service on 127.0.0.1:${other.port}?)`)
    } finally {
      other.stop(true)
    }
  })

  test('a passing check resets the count of failures', async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const state = join(w.dir, 'state.json')
    writeFileSync(state, JSON.stringify({ failures: 2, last_failure: 'connection refused', updated_at: new Date().toISOString() }))
    // Given with /heartbeat on it, the URL means the same router.
    const ok = await watchdog(['--config', w.configPath, '--url', `${w.url}/heartbeat`, '--failures', '3', '--state', state])
    expect(ok.code).toBe(0)
    expect(ok.stderr).toContain(`heartbeat ok at ${w.url}`)
    expect(JSON.parse(readFileSync(state, 'utf8')).failures).toBe(0)
    const failed = await watchdog(['--config', w.configPath, '--url', deadUrl(), '--failures', '3', '--state', state])
    expect(failed.code).toBe(1)
    expect(failed.stderr).toContain('heartbeat failed (1 of 3')
  })

  test("without --url it probes where the running router listens, not a listen address changed in the file since (that waits for a restart)", async () => {
    const config = simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] })
    const w = await suite.start(config)
    const state = join(w.dir, 'state.json')
    writeConfigFile(w.configPath, { ...JSON.parse(readFileSync(w.configPath, 'utf8')), listen: { port: deadPort() } })
    const ok = await watchdog(['--config', w.configPath, '--failures', '1', '--state', state])
    expect(ok.stderr).toContain(`heartbeat ok at ${w.url}`)
    expect(ok.code).toBe(0)
  })

  test('without --url, with the config file unreadable and no last known good yet, it probes where the running router said it listens', async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    writeFileSync(w.configPath, 'chains: [\n')
    const ok = await watchdog(['--config', w.configPath, '--failures', '1', '--state', join(w.dir, 'state.json')])
    expect(ok.stderr).toContain(`heartbeat ok at ${w.url}`)
    expect(ok.code).toBe(0)
  })

  test('without --url it probes the running router after a reload that moved both listen and database in the file (both wait for a restart)', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { listen: { host: '127.0.0.1', port: deadPort() } }))
    const { proc, url } = await spawnWitness(configPath)
    try {
      writeConfigFile(configPath, { ...JSON.parse(readFileSync(configPath, 'utf8')), listen: { host: '127.0.0.1', port: deadPort() }, database: join(dir, 'moved.db') })
      proc.kill('SIGHUP')
      const ok = await watchdog(['--config', configPath, '--failures', '1', '--state', join(dir, 'state.json')])
      expect(ok.stderr).toContain(`heartbeat ok at ${url}`)
      expect(ok.code).toBe(0)
    } finally {
      proc.kill('SIGTERM')
      await proc.exited
    }
    // Stopped, it leaves no address behind for the next run to probe.
    expect(existsSync(`${configPath}.serve.url`)).toBe(false)
  })

  test("a stale <config>.serve.url (another server on the same config, killed) does not send the check away from the database's server", async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    writeFileSync(`${w.configPath}.serve.url`, `${deadUrl()}\n`)
    const ok = await watchdog(['--config', w.configPath, '--failures', '1', '--state', join(w.dir, 'state.json')])
    expect(ok.stderr).toContain(`heartbeat ok at ${w.url}`)
    expect(ok.code).toBe(0)
  })

  test('an HTTP proxy in the environment (for the providers) does not carry the check to the router on loopback', async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const state = join(w.dir, 'state.json')
    const proxy = `http://127.0.0.1:${deadPort()}`
    const ok = await watchdog(['--config', w.configPath, '--url', w.url, '--failures', '3', '--state', state], { HTTP_PROXY: proxy, HTTPS_PROXY: proxy, NO_PROXY: 'internal.example' })
    expect(ok.stderr).toContain(`heartbeat ok at ${w.url}`)
    expect(ok.code).toBe(0)
  })

  test('sends Authorization: Bearer $WITNESS_TOKEN, and a router that never answers fails the check within --timeout', async () => {
    const seen: (string | null)[] = []
    const hung = Bun.serve({
      port: 0,
      hostname: '127.0.0.1',
      fetch: async (req) => {
        seen.push(req.headers.get('authorization'))
        await Bun.sleep(5_000)
        return new Response('late')
      },
    })
    try {
      const dir = tempDir()
      const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
      const result = await watchdog(['--config', configPath, '--url', `http://127.0.0.1:${hung.port}`, '--timeout', '200ms'], { WITNESS_TOKEN: 'op-token-123' })
      expect(result.code).toBe(1)
      expect(result.stderr).toContain('heartbeat failed (1 of 3 before a rollback): no answer within 0.2 s')
      expect(seen).toEqual(['Bearer op-token-123'])
    } finally {
      hung.stop(true)
    }
  })
})

/** The lines of a file appended to by alert_command, once `count` are there (the router alerts after it answers). */
async function alertLines(path: string, count: number): Promise<string[]> {
  const read = () => (existsSync(path) ? readFileSync(path, 'utf8').trim().split('\n').filter(Boolean) : [])
  for (const deadline = Date.now() + 5_000; read().length < count && Date.now() < deadline; ) await Bun.sleep(20)
  return read()
}

describe('a rollback the router did not take is recorded once, as not in effect', () => {
  test('a restart_command that exits 0 without restarting anything: one row and one alert, exit 2; later streaks try the restart again with no new row; once the router runs the snapshot, that is said', async () => {
    const dir = tempDir()
    const alerts = join(dir, 'alerts')
    const deadman = { failing_window_s: FAILING_WINDOW_S, alert_command: `echo "$1" >> ${alerts}` }
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman }), { dir })
    const good = readFileSync(writeConfigFile(join(dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { ...deadman, restart_command: 'echo restart requested' } })))
    promoteLastGood(w.configPath, good)
    const [badHash, goodHash] = [w.config().hash, sha256(good)]
    const args = ['--config', w.configPath, '--url', w.url, '--failures', '1', '--wait', '300ms', '--state', join(dir, 'state.json')]
    const rollbacks = () => readRows(w.dbPath).filter((r) => r.status === 'rollback')
    await failFor(w.url)

    const first = await watchdog(args)
    expect(first.code).toBe(2)
    expect(first.stderr).toContain(`restart_command exited 0; NOT IN EFFECT: the router still runs config ${short(badHash)}, not the snapshot`)
    expect(rollbacks()).toHaveLength(1)
    expect(rollbacks()[0]!.error_message).toStartWith(`rolled back config ${short(badHash)} → ${short(goodHash)} after 1 failed health check`)
    expect(rollbacks()[0]!.error_message).toEndWith(`; restart_command exited 0; NOT IN EFFECT: the router still runs config ${short(badHash)}, not the snapshot`)
    expect(await alertLines(alerts, 1)).toEqual([expect.stringContaining('NOT IN EFFECT: the router still runs')])

    // A check that passes with the router still on the config the rollback replaced (after a quiet
    // spell past six windows, one failure starts a new episode, not yet failing): the rollback stays
    // not in effect.
    await Bun.sleep(FAILING_WINDOW_S * 6 * 1000 + 200)
    await fetch(`${w.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ agent: 'a', messages: [{ role: 'user', content: 'hi' }] }) })
    const passing = await watchdog(args)
    expect(passing.code).toBe(0)
    expect(passing.stderr).toContain(`is still not in effect: ${w.configPath} holds ${short(goodHash)}, the router still runs ${short(badHash)}`)
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).unapplied.new_hash).toBe(goodHash)

    for (let i = 0; i < 2; i++) {
      await failFor(w.url)
      const again = await watchdog(args)
      expect(again.code).toBe(2)
      expect(again.stderr).toContain('restart_command exited 0; NOT IN EFFECT')
      expect(again.stderr).toContain('is still not in effect: not recorded again')
    }
    expect(rollbacks()).toHaveLength(1)
    await Bun.sleep(200) // an alert the router would send after its answer
    expect(await alertLines(alerts, 1)).toHaveLength(1)

    // Restarted by hand: the next check finds the router on the snapshot, and says so once.
    w.reload()
    const ok = await watchdog(args)
    expect(ok.code).toBe(0)
    expect(w.config().hash).toBe(goodHash)
    expect((await alertLines(alerts, 2))[1]).toMatch(/^the rollback of .* to [0-9a-f]{12}…, recorded at .* as not in effect, is in effect now: the router runs it$/)
    expect(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')).unapplied).toBeNull()
  })

  test('a watchdog killed while its restart_command runs: the next run records that rollback once and, the router still on the old config, tries its restart again without a second row', async () => {
    const dir = tempDir()
    const [slow, started] = [join(dir, 'slow'), join(dir, 'started')]
    writeFileSync(slow, '')
    const deadman = { failing_window_s: FAILING_WINDOW_S, restart_command: `if [ -e ${slow} ]; then echo $$ > ${started}; exec sleep 30; fi` }
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman }), { dir })
    const good = readFileSync(writeConfigFile(join(dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman })))
    promoteLastGood(w.configPath, good)
    const [badHash, goodHash] = [w.config().hash, sha256(good)]
    const args = ['--config', w.configPath, '--url', w.url, '--failures', '1', '--wait', '300ms', '--state', join(dir, 'state.json')]
    const rollbacks = () => readRows(w.dbPath).filter((r) => r.status === 'rollback')
    await failFor(w.url)

    const killed = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'watchdog', ...args], { cwd: ROOT, env: { PATH: process.env.PATH ?? '' }, stdout: 'ignore', stderr: 'ignore' })
    await eventually(() => existsSync(started) && readFileSync(started, 'utf8').trim() !== '', 15_000)
    killed.kill('SIGKILL')
    await killed.exited
    process.kill(Number(readFileSync(started, 'utf8')), 'SIGKILL')
    rmSync(slow)
    expect(sha256(readFileSync(w.configPath))).toBe(goodHash)

    await failFor(w.url)
    const next = await watchdog(args)
    expect(next.stderr).toContain('an interrupted rollback recorded (log id')
    expect(next.stderr).toContain('is still not in effect: not recorded again')
    expect(next.code).toBe(2)
    expect(rollbacks()).toHaveLength(1)
    expect(rollbacks()[0]!.error_message).toStartWith(`rolled back config ${short(badHash)} → ${short(goodHash)}`)
    expect(rollbacks()[0]!.error_message).toContain('the restart outcome is unknown')
    expect(w.config().hash).toBe(badHash)
  })

  test('with the router down, a rollback not in effect is tried again by the next streak (the router last ran the config it replaced), not refused as already the last known good', async () => {
    const dir = tempDir()
    const count = join(dir, 'restarts')
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { restart_command: `echo tried >> ${count}` } }))
    promoteLastGood(configPath, readFileSync(configPath))
    writeConfigFile(configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500' }] }, { deadman: { restart_command: `echo tried >> ${count}` } }))
    const router = await spawnWitness(configPath)
    router.proc.kill('SIGKILL')
    await router.proc.exited
    const args = ['--config', configPath, '--url', router.url, '--failures', '1', '--wait', '100ms', '--state', join(dir, 'state.json')]
    const first = await watchdog(args)
    expect([first.code, first.stderr]).toEqual([2, expect.stringContaining('NOT IN EFFECT')])
    const again = await watchdog(args)
    expect(again.code).toBe(2)
    expect(again.stderr).not.toContain('already is the last known good')
    expect(again.stderr).toContain('is still not in effect: not recorded again')
    expect(readFileSync(count, 'utf8')).toBe('tried\ntried\n')
  })

  test("a restart_command that stops the router cleanly and fails to start it: that stop is the rollback's own, so the next streak tries the restart again; a stop after the rollback was recorded is an operator's", async () => {
    const dir = tempDir()
    const [tries, pidFile] = [join(dir, 'tries'), join(dir, 'pid')]
    const deadman = { failing_window_s: FAILING_WINDOW_S, restart_command: `kill -TERM $(cat ${pidFile}) 2>/dev/null; echo tried >> ${tries}; exit 1` }
    const configPath = writeConfigFile(join(dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman }))
    promoteLastGood(join(dir, 'witness.yaml'), readFileSync(configPath))
    writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman }))
    const router = await spawnWitness(join(dir, 'witness.yaml'))
    writeFileSync(pidFile, String(router.proc.pid))
    await failFor(router.url)
    const args = ['--config', join(dir, 'witness.yaml'), '--url', router.url, '--failures', '1', '--wait', '300ms', '--state', join(dir, 'state.json')]
    const first = await watchdog(args)
    expect([first.code, first.stderr]).toEqual([2, expect.stringContaining('restart_command exited 1')])
    expect(await router.proc.exited).toBe(0) // stopped cleanly by the restart: its stop is noted
    expect(JSON.parse(readFileSync(join(dir, 'witness.yaml.serve.json'), 'utf8')).stopped_at).toBeString()

    const again = await watchdog(args)
    expect(again.stderr).not.toContain('stopped on purpose')
    expect(again.stderr).toContain('is still not in effect: not recorded again')
    expect(readFileSync(tries, 'utf8')).toBe('tried\ntried\n')
    expect(readRows(join(dir, 'witness.db')).filter((r) => r.status === 'rollback')).toHaveLength(1)

    // Started again by hand, then stopped on purpose: that stop is respected.
    const restarted = await spawnWitness(join(dir, 'witness.yaml'))
    restarted.proc.kill('SIGTERM')
    expect(await restarted.proc.exited).toBe(0)
    const stopped = await watchdog(args)
    expect(stopped.stderr).toContain('stopped on purpose')
    expect(readFileSync(tries, 'utf8')).toBe('tried\ntried\n')
  })

  test("a reload refused with 401 (the config under trial rotated the watchdog's operator token): recorded once as not in effect, straight into SQLite", async () => {
    const dir = tempDir()
    const [agentToken, oldOperator, newOperator] = ['agent-token-0123456789', 'operator-token-one-0123456789', 'operator-token-two-0123456789']
    const auth = (operator: string) => ({ agents: { a: { token_sha256: hashToken(agentToken) } }, operators: { ops: { token_sha256: hashToken(operator) } } })
    const w = await suite.start(
      simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { auth: auth(newOperator), deadman: { failing_window_s: FAILING_WINDOW_S } }),
      { dir },
    )
    const good = readFileSync(writeConfigFile(join(dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { auth: auth(oldOperator) })))
    promoteLastGood(w.configPath, good)
    const badHash = w.config().hash
    const args = ['--config', w.configPath, '--url', w.url, '--failures', '1', '--wait', '300ms', '--state', join(dir, 'state.json')]
    for (let i = 0; i < 2; i++) {
      await failFor(w.url, { authorization: `Bearer ${agentToken}` })
      const run = await watchdog(args, { WITNESS_TOKEN: oldOperator })
      expect(run.code).toBe(2)
      expect(run.stderr).toContain(`no restart_command, and POST /admin/reload failed (HTTP 401); NOT IN EFFECT: the router still runs config ${short(badHash)}, not the snapshot`)
      if (i === 0) expect(run.stderr).toContain(`rollback recorded (log id`)
      else expect(run.stderr).toContain('is still not in effect: not recorded again')
    }
    expect(w.config().hash).toBe(badHash)
    const rollbacks = readRows(w.dbPath).filter((r) => r.status === 'rollback')
    expect(rollbacks).toHaveLength(1)
    expect(rollbacks[0]!.error_message).toEndWith(`; no restart_command, and POST /admin/reload failed (HTTP 401); NOT IN EFFECT: the router still runs config ${short(badHash)}, not the snapshot`)
  })

  test('a last known good without auth (it ran open, on loopback) is reloaded by a router running with auth; a config without auth pushed meanwhile (which a reload refuses) is no reason not to roll back', async () => {
    const dir = tempDir()
    const [agentToken, operator] = ['agent-token-open-0123456789', 'operator-token-open-0123456789']
    const auth = { agents: { a: { token_sha256: hashToken(agentToken) } }, operators: { ops: { token_sha256: hashToken(operator) } } }
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { auth, deadman: { failing_window_s: FAILING_WINDOW_S } }), { dir })
    const good = readFileSync(writeConfigFile(join(dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] })))
    promoteLastGood(w.configPath, good)
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm2' }] }))
    expect(() => w.reload()).toThrow('a reload does not open witness')
    await failFor(w.url, { authorization: `Bearer ${agentToken}` })
    const run = await watchdog(['--config', w.configPath, '--url', w.url, '--failures', '1', '--wait', '300ms', '--state', join(dir, 'state.json')], { WITNESS_TOKEN: operator })
    expect(run.stderr).toContain('no restart_command; reloaded through POST /admin/reload; the router runs the snapshot')
    expect(run.code).toBe(0)
    expect(w.config().hash).toBe(sha256(good))
    expect(w.config().auth).toBeNull()
  })

  test('a reload that applies the snapshot but lists restart_required settings (the database busy timeout) is no full success: recorded, exit 2', async () => {
    const dir = tempDir()
    const w = await suite.start(
      simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { database_busy_timeout_ms: 250, deadman: { failing_window_s: FAILING_WINDOW_S } }),
      { dir },
    )
    const good = readFileSync(writeConfigFile(join(dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] })))
    promoteLastGood(w.configPath, good)
    await failFor(w.url)
    const result = await watchdog(['--config', w.configPath, '--url', w.url, '--failures', '1', '--wait', '300ms', '--state', join(dir, 'state.json')])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('reloaded through POST /admin/reload, but database_busy_timeout_ms of the snapshot take effect only at a restart (the router keeps the ones it started with); the router runs the snapshot')
    expect(w.config().hash).toBe(sha256(good))
    expect(readRows(w.dbPath).filter((r) => r.status === 'rollback')).toHaveLength(1)
  })
})

describe('rollbacks that cannot help are refused, loudly', () => {
  test('no rollback without a snapshot: exit 2, nothing touched, nothing restarted', async () => {
    const dir = tempDir()
    const marker = join(dir, 'restarted')
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { restart_command: `touch ${marker}` } }))
    const before = readFileSync(configPath)
    const result = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain(`NOT ROLLING BACK ${configPath} after 1 failed health check (connection refused): no last-known-good snapshot (${configPath}.last-good)`)
    expect(readFileSync(configPath)).toEqual(before)
    expect(existsSync(marker)).toBe(false)
    expect(existsSync(join(dir, 'witness.db'))).toBe(false)
  })

  test("run as root over another user's config, it refuses before writing anything beside it (root-owned state and locks would lock that user's watchdog out)", async () => {
    if (process.getuid?.() !== 0) {
      console.log('skipped: needs root (to own files as another user)')
      return
    }
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    chownSync(configPath, 65534, 65534)
    const result = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1'])
    expect(result.stderr).toContain(`run as root, and ${configPath} belongs to uid 65534`)
    expect(result.code).toBe(2)
    expect(readdirSync(dir).sort()).toEqual(['witness.yaml'])
  })

  test('no rollback from a snapshot that cannot be read (a directory there): said and exit 2, not a crash', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    mkdirSync(`${configPath}.last-good`)
    const before = readFileSync(configPath)
    const result = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1'])
    expect(result.stderr).toContain(`NOT ROLLING BACK ${configPath} after 1 failed health check (connection refused): the last-known-good snapshot ${configPath}.last-good cannot be read: EISDIR`)
    expect(result.code).toBe(2)
    expect(readFileSync(configPath)).toEqual(before)
  })

  test('no rollback from a snapshot that does not match its .sha256 (changed after it was promoted) or has none', async () => {
    const dir = tempDir()
    const marker = join(dir, 'restarted')
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { restart_command: `touch ${marker}` } }))
    promoteLastGood(configPath, readFileSync(configPath))
    writeFileSync(`${configPath}.last-good`, `${readFileSync(`${configPath}.last-good`, 'utf8')}# changed by someone\n`)
    writeFileSync(configPath, BROKEN)
    const changed = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1'])
    expect(changed.code).toBe(2)
    expect(changed.stderr).toContain(`${configPath}.last-good does not match witness.yaml.last-good.sha256 (it was changed after it was promoted)`)
    rmSync(`${configPath}.last-good.sha256`)
    const missing = await watchdog(['--config', configPath, '--url', deadUrl(), '--failures', '1'])
    expect(missing.code).toBe(2)
    expect(missing.stderr).toContain(`${configPath}.last-good.sha256 is missing or unreadable`)
    expect(readFileSync(configPath, 'utf8')).toBe(BROKEN)
    expect(existsSync(marker)).toBe(false)
  })

  test("no rollback when the router's only trouble is its database (locked by another process): no config cures that", async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const bytes = readFileSync(w.configPath)
    promoteLastGood(w.configPath, readFileSync(writeConfigFile(join(w.dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'older' }] }))))
    const lock = await holdWriteLock(w.dbPath) // a backup, an operator's sqlite3 shell
    try {
      const heartbeat = await fetch(`${w.url}/heartbeat`)
      expect(heartbeat.status).toBe(503)
      expect(await heartbeat.json()).toMatchObject({ rollback_may_help: false })
      const result = await watchdog(['--config', w.configPath, '--url', w.url, '--failures', '1', '--state', join(w.dir, 'state.json')])
      expect(result.stderr).toContain('NOT ROLLING BACK')
      expect(result.stderr).toContain('the router says its config is not the cause (its database is)')
      expect(result.code).toBe(2)
      expect(readFileSync(w.configPath)).toEqual(bytes)
    } finally {
      await lock.release()
    }
  })

  test("unless the snapshot's database settings differ (the running config lowered database_max_mb, say): then it may cure it", async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_busy_timeout_ms: 200 }))
    const good = readFileSync(writeConfigFile(join(w.dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] })))
    promoteLastGood(w.configPath, good)
    const lock = await holdWriteLock(w.dbPath)
    try {
      const result = await watchdog(['--config', w.configPath, '--url', w.url, '--failures', '1', '--wait', '100ms', '--state', join(w.dir, 'state.json')])
      expect(result.stderr).toContain(`restored ${w.configPath}.last-good over ${w.configPath}`)
      expect(readFileSync(w.configPath)).toEqual(good)
    } finally {
      await lock.release()
    }
  })

  test("nor when they differ only in ways that cure neither a lock nor a full file (a raised size cap, a shorter busy timeout, database_sync)", async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_max_mb: 4096, database_busy_timeout_ms: 200, database_sync: 'normal' }))
    const bytes = readFileSync(w.configPath)
    promoteLastGood(w.configPath, readFileSync(writeConfigFile(join(w.dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { database_max_mb: 2048, database_busy_timeout_ms: 100 }))))
    const lock = await holdWriteLock(w.dbPath)
    try {
      const result = await watchdog(['--config', w.configPath, '--url', w.url, '--failures', '1', '--wait', '100ms', '--state', join(w.dir, 'state.json')])
      expect(result.stderr).toContain('the router says its config is not the cause (its database is)')
      expect(result.code).toBe(2)
      expect(readFileSync(w.configPath)).toEqual(bytes)
    } finally {
      await lock.release()
    }
  })

  test('no rollback over a config written to the file but not applied yet (a push before its reload): it was never tried', async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman: { failing_window_s: FAILING_WINDOW_S } }))
    promoteLastGood(w.configPath, readFileSync(writeConfigFile(join(w.dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))))
    await failFor(w.url)
    const pushed = writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'fixed' }] }))
    const bytes = readFileSync(pushed)
    const result = await watchdog(['--config', w.configPath, '--url', w.url, '--failures', '1', '--state', join(w.dir, 'state.json')])
    expect(result.stderr).toContain('is not the config the router runs')
    expect(result.stderr).toContain('it has not been applied yet, and a rollback would overwrite it untried')
    expect(result.code).toBe(2)
    expect(readFileSync(w.configPath)).toEqual(bytes)
    // A file that does not parse is no candidate: that one is rolled back over.
    writeFileSync(w.configPath, BROKEN)
    const rolled = await watchdog(['--config', w.configPath, '--url', w.url, '--failures', '1', '--state', join(w.dir, 'state.json')])
    expect(rolled.stderr).toContain('restored')
  })

  test('the snapshot already in the file while the router still runs the bad config (a rollback whose restart failed) is restored and restarted again', async () => {
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm+status-500', retries: 0 }] }, { deadman: { failing_window_s: FAILING_WINDOW_S } }))
    const good = readFileSync(writeConfigFile(join(w.dir, 'good.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] })))
    promoteLastGood(w.configPath, good)
    await failFor(w.url)
    writeFileSync(w.configPath, good) // restored by the last run, whose restart failed
    const result = await watchdog(['--config', w.configPath, '--url', w.url, '--failures', '1', '--state', join(w.dir, 'state.json')])
    expect(result.stderr).toContain('no restart_command; reloaded through POST /admin/reload')
    expect(result.code).toBe(0)
    expect(w.config().hash).toBe(sha256(good))
  })

  test('no rollback when the running config already is the last known good; the alert is sent once per streak', async () => {
    const dir = tempDir()
    const [marker, alerts] = [join(dir, 'restarted'), join(dir, 'alerts')]
    const port = deadPort()
    const configPath = writeConfigFile(
      join(dir, 'witness.yaml'),
      simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, {
        listen: { host: '127.0.0.1', port },
        deadman: { restart_command: `touch ${marker}`, alert_command: `echo "$1" >> ${alerts}` },
      }),
    )
    promoteLastGood(configPath, readFileSync(configPath))
    for (let i = 0; i < 2; i++) {
      // Without --url: the configured listen address.
      const result = await watchdog(['--config', configPath, '--failures', '1'])
      expect(result.code).toBe(2)
      expect(result.stderr).toContain('already is the last known good; a rollback cannot cure this')
    }
    expect(existsSync(marker)).toBe(false)
    expect(readFileSync(alerts, 'utf8').trim().split('\n')).toHaveLength(1)
    expect(existsSync(join(dir, 'witness.db'))).toBe(false)
  })

  test('--every runs the check in a loop, counting failures across rounds, and goes on after it acts', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const proc = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'watchdog', '--config', configPath, '--url', deadUrl(), '--failures', '3', '--every', '50ms', '--timeout', '500ms'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '' },
      stdout: 'ignore',
      stderr: 'pipe',
    })
    // No snapshot to roll back to: at the third failure the rollback is refused loudly, and the loop goes on.
    const text = await readUntil(proc.stderr, 'after 4 failed health checks', 10_000)
    proc.kill('SIGTERM')
    await proc.exited
    expect(text).toContain('heartbeat failed (1 of 3 before a rollback): connection refused')
    expect(text).toContain('heartbeat failed (2 of 3 before a rollback): connection refused')
    expect(text).toContain('ALERT NOT ROLLING BACK')
    expect(text).toContain('after 3 failed health checks (connection refused): no last-known-good snapshot')
    expect(text).toContain('NOT ROLLING BACK') // the next round says it again, without a second alert
  })

  test('--every goes on after a round that fails (its state file cannot be written), saying why', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    writeFileSync(join(dir, 'blocker'), '') // a file where the state's directory should be: every write fails
    const state = join(dir, 'blocker', 'state.json')
    const proc = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'watchdog', '--config', configPath, '--url', deadUrl(), '--every', '50ms', '--timeout', '500ms', '--state', state], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '' },
      stdout: 'ignore',
      stderr: 'pipe',
    })
    let text: string
    let more: string
    try {
      text = await readUntil(proc.stderr, 'this round failed', 10_000)
      rmSync(join(dir, 'blocker')) // mended
      more = await readUntil(proc.stderr, 'heartbeat failed', 10_000)
    } finally {
      proc.kill('SIGTERM') // a loop left running would outlive the suite
      await proc.exited
    }
    expect(text).toContain('this round failed')
    expect(more).toContain('heartbeat failed (1 of 3 before a rollback)')
  })

  test('bad flags exit 2 with the usage', async () => {
    const result = await watchdog(['--failures', '0'])
    expect(result.code).toBe(2)
    expect(result.stderr).toContain('--failures must be a whole number')
    expect((await watchdog(['--every', 'soon'])).stderr).toContain('--every must be a duration')
    // A directory as the state file: refused before anything is put beside it.
    const dir = tempDir()
    const state = join(dir, 'state')
    mkdirSync(state)
    const onDirectory = await watchdog(['--state', state, '--url', deadUrl()])
    expect(onDirectory.code).toBe(2)
    expect(onDirectory.stderr).toContain(`--state must be a file, and ${state} is a directory`)
    expect(readdirSync(dir)).toEqual(['state'])
  })
})
