/**
 * The Ansible role's releases and restarts (deploy/ansible): real `ansible-playbook -c local` runs
 * into a temporary prefix of this file's own, as in test/ansible.test.ts (a file apart so that the
 * test runner's two workers share the role's runs). New code becomes a release beside the running
 * one; a failed build installs and restarts nothing; a run stopped before its handlers is finished
 * by the next; restarts and reloads are waited for on /heartbeat. Skips, saying why, where a tool
 * it needs is missing.
 */
import { describe, expect, test } from 'bun:test'
import { cpSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { RUN_TIMEOUT_MS, recap, rolePrefix, runReason, skipUnless } from './support/ansible.ts'
import { ROOT, freePort, waitForLine } from './support/process.ts'
import { tempDir } from './support/temp.ts'

describe.skipIf(skipUnless('the runs of the role for its releases', runReason))('releases and restarts by the role', () => {
  const { path, work, secrets, configPath, witnessCommand, playbook, overVars } = rolePrefix('ansible-release')

  test('a first run installs this checkout as a release', async () => {
    const result = await playbook()
    if (result.code !== 0) console.log(result.output)
    expect(result.code).toBe(0)
    expect(recap(result.output).changed).toBeGreaterThan(0)
    expect(readlinkSync(path('opt/witness/app'))).toMatch(new RegExp(`^${path('opt/witness/releases')}/[0-9a-f]{16}$`))
  }, RUN_TIMEOUT_MS)

  const releases = path('opt/witness/releases')
  const installed = () => readlinkSync(path('opt/witness/app'))
  const restarted = (output: string) => output.includes('RUNNING HANDLER [witness : Restart witness]')
  /** A copy of what runs from this checkout, with a file that makes it another release. */
  const codeCopy = (name: string, marker: string) => {
    const dir = join(work, name)
    mkdirSync(dir)
    for (const part of ['src', 'providers', 'package.json', 'package-lock.json', 'bunfig.toml', 'tsconfig.json']) cpSync(join(ROOT, part), join(dir, part), { recursive: true })
    writeFileSync(join(dir, 'src/release-marker.txt'), marker)
    return dir
  }

  test('new code is built into a release of its own beside the running one, then app is switched to it and the server restarted; older releases are pruned', async () => {
    const first = installed()
    // And a database without its signing key (a lost key, a restored database) gets one: the play runs init again.
    const key = path('var/lib/witness/witness-key.json')
    rmSync(key)
    const result = await playbook(...overVars('release', { witness_checkout_dir: codeCopy('code-1', 'one'), witness_keep_releases: 1 }))
    if (result.code !== 0) console.log(result.output)
    expect(result.code).toBe(0)
    const second = installed()
    expect(second).not.toBe(first)
    expect(readFileSync(join(second, 'src/release-marker.txt'), 'utf8')).toBe('one')
    expect(statSync(join(second, 'node_modules/.bin/bun')).isFile()).toBe(true)
    expect(restarted(result.output)).toBe(true)
    // witness_keep_releases: 1 keeps the installed release alone (and one a server still ran, were there a server).
    expect(readdirSync(releases)).toEqual([second.slice(releases.length + 1)])
    expect(statSync(key).mode & 0o777).toBe(0o600)
  }, RUN_TIMEOUT_MS)

  test('a release whose npm ci fails is not installed: app keeps its release and nothing is restarted', async () => {
    const before = installed()
    const code = codeCopy('code-2', 'one')
    // Another lockfile (the same, reformatted): the release needs npm ci, which cannot reach a registry.
    writeFileSync(join(code, 'package-lock.json'), JSON.stringify(JSON.parse(readFileSync(join(code, 'package-lock.json'), 'utf8'))))
    const offline = {
      witness_checkout_dir: code,
      witness_keep_releases: 1,
      witness_tool_env: { PATH: process.env.PATH, npm_config_registry: 'http://127.0.0.1:9/', npm_config_cache: tempDir('witness-empty-npm-cache-'), npm_config_fetch_retries: '0' },
    }
    const failed = await playbook(...overVars('offline', offline))
    expect(failed.code).not.toBe(0)
    expect(failed.output).toContain('Build the release')
    expect(installed()).toBe(before)
    expect(statSync(join(before, 'node_modules/.bin/bun')).isFile()).toBe(true)
    expect(restarted(failed.output)).toBe(false)
  }, RUN_TIMEOUT_MS)

  let heartbeatUp: string[] = []
  test('a restart or reload is waited for on /heartbeat; a server on older code than installed (a run stopped before its handlers) is restarted by the next run', async () => {
    const port = freePort()
    const url = `http://127.0.0.1:${port}/heartbeat`
    // Back to this checkout's release, on a port of its own: a change applied with a restart (a reload
    // cannot move the socket). No server answers: the play waits 2 s for one, then says so.
    const down = await playbook(...overVars('heartbeat-down', { witness_listen_port: port, witness_heartbeat_wait_s: 2 }), '-v')
    expect(down.code).not.toBe(0)
    expect(down.output).toContain('witness: to apply: restart (listen)')
    expect(down.output).toContain('RUNNING HANDLER [witness : Apply witness config]')
    expect(down.output).toContain(`did not answer ${url} with 200 and the installed config`)
    expect(down.output).toContain('no answer (')
    // The release of this checkout is back; the unfinished build the last test left stays while the
    // play fails (old releases go only once the handlers have run).
    expect(readFileSync(join(installed(), 'src/cli.ts'))).toEqual(readFileSync(join(ROOT, 'src/cli.ts')))
    expect(readdirSync(releases).filter((name) => name.endsWith('.building'))).toHaveLength(1)

    const server = Bun.spawn([witnessCommand, 'serve', '--config', configPath], { env: { PATH: process.env.PATH ?? '' }, stdin: 'ignore', stdout: 'ignore', stderr: 'pipe' })
    try {
      await waitForLine(server.stderr, /listening on /, 20_000)
      // The server notes the real path of the release it runs.
      const served = () => JSON.parse(readFileSync(`${configPath}.serve.json`, 'utf8')) as Record<string, string>
      expect(served().code_dir).toBe(realpathSync(path('opt/witness/app')))
      writeFileSync(`${configPath}.serve.json`, JSON.stringify({ ...served(), code_dir: join(releases, 'an-older-one') }))
      // A change applied with a reload: the test plays the service manager, reloading the server when the file changes.
      const before = readFileSync(configPath, 'utf8')
      const reloader = setInterval(() => {
        if (readFileSync(configPath, 'utf8') !== before) {
          clearInterval(reloader)
          server.kill('SIGHUP')
        }
      }, 100)
      heartbeatUp = overVars('heartbeat-up', { witness_listen_port: port, witness_heartbeat_wait_s: 20, witness_retention: { keep_days: 31, max_db_mb: 256 } })
      const up = await playbook(...heartbeatUp, '-v')
      clearInterval(reloader)
      if (up.code !== 0) console.log(up.output)
      expect(up.code).toBe(0)
      expect(up.output).toContain('witness runs other code than the last run installed')
      expect(restarted(up.output)).toBe(true)
      expect(up.output).toContain('witness: to apply: reload')
      expect(up.output).toContain('RUNNING HANDLER [witness : Wait for witness to answer /heartbeat on the installed config]')
      expect(served().config_hash).toBe(new Bun.CryptoHasher('sha256').update(readFileSync(configPath)).digest('hex'))
      // Then the unfinished build is gone, and the release the server runs is kept with the installed one.
      expect(readdirSync(releases).filter((name) => name.endsWith('.building'))).toEqual([])
      // The copy of the previous config used for the comparison is gone.
      expect(readdirSync(path('etc/witness')).filter((n) => n.endsWith('~'))).toEqual([])
    } finally {
      server.kill('SIGTERM')
      await server.exited
    }
  }, 2 * RUN_TIMEOUT_MS)

  // The same check runs before anything is installed in a real run (the banned chain's test below shows it).
  test('--check refuses a provider key missing from the secrets, as the run would, and changes nothing', async () => {
    const envPath = path('etc/witness/witness.env')
    const [envBefore, configBefore] = [readFileSync(envPath), readFileSync(configPath)]
    const result = await playbook(...overVars('keyless', { witness_provider_api_keys: { OPENROUTER_API_KEY: secrets.OPENROUTER_API_KEY }, witness_listen_port: 8789 }), '--check')
    expect(result.code).not.toBe(0)
    expect(result.output).toContain('failed validation and was NOT installed')
    expect(result.output).toContain('provider \\"kimi\\" (chains: default) has no API key: its variable KIMI_API_KEY is not set in this environment')
    expect(readFileSync(envPath)).toEqual(envBefore)
    expect(readFileSync(configPath)).toEqual(configBefore)
  }, RUN_TIMEOUT_MS)

})
