/**
 * The Ansible role (deploy/ansible): ansible-lint and a syntax check, then a
 * real `ansible-playbook -c local` run of the role into a temporary prefix
 * (test mode: no service user, no packages, no services, nothing outside the
 * prefix), deploying this checkout and running `npm ci --omit=dev` in it.
 * Each test skips, saying why, where a tool it needs is missing.
 */
import { Database } from 'bun:sqlite'
import { describe, expect, test } from 'bun:test'
import { chmodSync, cpSync, mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { RUNTIME_ENV } from '../src/runtime-env.ts'
import { REQUEST_LOG_COLUMNS } from './support/request-log-columns.ts'
import { RUN_TIMEOUT_MS, ansibleEnv, missing, recap, renderTemplate, rolePrefix, run, runPlaybook, runReason, skipUnless } from './support/ansible.ts'
import { ROOT, freePort, waitForLine } from './support/process.ts'
import { tempDir } from './support/temp.ts'

describe('the Ansible role, statically', () => {
  test.skipIf(skipUnless('ansible-lint', missing('ansible-lint')))('passes ansible-lint --offline', async () => {
    const result = await run(['ansible-lint', '--offline'])
    if (result.code !== 0) console.log(result.output)
    expect(result.code).toBe(0)
  }, 120_000)

  test.skipIf(skipUnless('the syntax check', missing('ansible-playbook')))('site.yml passes ansible-playbook --syntax-check', async () => {
    const result = await run(['ansible-playbook', '--syntax-check', '-i', 'localhost,', 'site.yml'])
    expect(result.output).toContain('playbook: site.yml')
    expect(result.code).toBe(0)
  }, 60_000)
})

// The witness command run as root (sudo witness sync) must not leave root's files in the service's
// directories, nor source as root the environment file the service can reach.
describe.skipIf(skipUnless('rendering the witness command', missing('ansible')))('the witness command for a service user that is not root', () => {
  const work = tempDir('witness-ansible-wrapper-')
  chmodSync(work, 0o755) // the service user runs what is in it
  const bin = join(work, 'bin')
  mkdirSync(bin)
  const wrapper = join(bin, 'witness')
  const render = (dest: string, vars: Record<string, unknown>) =>
    renderTemplate(work, 'witness.sh.j2', dest, { witness_bin_dir: bin, witness_env_path: join(work, 'witness.env'), ...vars })

  const asRootReason = process.getuid!() !== 0 ? 'not run as root' : (missing('runuser') ?? (Bun.spawnSync(['id', '-u', 'nobody']).exitCode === 0 ? null : 'no user nobody'))
  test.skipIf(skipUnless('the witness command run as root', asRootReason))('run as root, it becomes the service user before it reads the environment file', async () => {
    const cli = join(work, 'cli.sh')
    writeFileSync(cli, 'printf "%s %s" "$(id -un)" "$SOURCED_AS"; printf " [%s]" "$@"\n')
    writeFileSync(join(work, 'witness.env'), 'SOURCED_AS=$(id -un)\n', { mode: 0o644 })
    await render(wrapper, { ansible_facts: { system: 'Linux' }, witness_user: 'nobody', witness_bun: '/bin/sh', witness_cli: cli })
    chmodSync(wrapper, 0o755)
    const result = await run([wrapper, 'sync', 'two words'])
    expect(result.output).toBe('nobody nobody [sync] [two words]')
    expect(result.code).toBe(0)
    // From cron, whose PATH has no sbin (where runuser is): the same.
    const fromCron = await run(['env', '-i', 'PATH=/usr/bin:/bin', wrapper, 'sync'])
    expect(fromCron.output).toBe('nobody nobody [sync]')
  }, 60_000)

  test('the switch is runuser on Linux, sudo on macOS, before the environment file; none for a root service user', async () => {
    const rendered = async (name: string, vars: Record<string, unknown>) => {
      const dest = join(work, name)
      await render(dest, vars)
      expect((await run(['sh', '-n', dest])).code).toBe(0)
      return readFileSync(dest, 'utf8')
    }
    const linux = await rendered('linux.sh', { ansible_facts: { system: 'Linux' }, witness_user: 'witness' })
    expect(linux).toContain(`[ -x "$runuser" ] && exec "$runuser" -u witness -- ${wrapper} "$@"\n`)
    expect(linux.indexOf('exec "$runuser"')).toBeLessThan(linux.indexOf('witness.env'))
    const mac = await rendered('mac.sh', { ansible_facts: { system: 'Darwin' }, witness_user: 'witness' })
    // sudo resets the environment: the admin's WITNESS_* settings are kept by name.
    expect(mac).toContain(`  exec /usr/bin/sudo -u witness --preserve-env=WITNESS_CONFIG,WITNESS_TOKEN,WITNESS_SYNC_TOKEN,WITNESS_SYNC_USER,BUN_CONFIG_MAX_HTTP_REQUESTS -- ${wrapper} "$@"\n`)
    const root = await rendered('root.sh', { ansible_facts: { system: 'Linux' }, witness_user: 'root' })
    expect(root).not.toContain('id -u')
  }, 60_000)
})

describe.skipIf(skipUnless('the run of the role', runReason))('a run of the role against localhost into a temporary prefix', () => {
  const { work, path, vars, varsFile, secrets, configPath, witnessCommand, playbook, overVars } = rolePrefix('ansible')

  test('deploys this checkout, installs Bun with npm ci and creates the database with the exact request_log schema', async () => {
    // An installation by the role before releases: the code in app itself, which becomes a release.
    mkdirSync(path('opt/witness/app/src'), { recursive: true })
    writeFileSync(path('opt/witness/app/src/cli.ts'), '// the code of an earlier role\n')
    const result = await playbook()
    if (result.code !== 0) console.log(result.output)
    expect(result.code).toBe(0)
    expect(recap(result.output).changed).toBeGreaterThan(0)
    // app is a link to the release built from this checkout, named by its files' checksum.
    expect(readlinkSync(path('opt/witness/app'))).toMatch(new RegExp(`^${path('opt/witness/releases')}/[0-9a-f]{16}$`))
    expect(statSync(path('opt/witness/app/src/cli.ts')).isFile()).toBe(true)
    expect(statSync(path('opt/witness/app/node_modules/.bin/bun')).isFile()).toBe(true)
    const earlier = readdirSync(path('opt/witness/releases')).filter((name) => name.startsWith('pre-releases-'))
    expect(earlier).toHaveLength(1)
    expect(readFileSync(path(`opt/witness/releases/${earlier[0]}/src/cli.ts`), 'utf8')).toBe('// the code of an earlier role\n')
    expect(readlinkSync(path('usr/local/bin/witness'))).toBe(witnessCommand)
    const db = new Database(path('var/lib/witness/witness.db'), { readonly: true })
    try {
      expect(db.query('PRAGMA table_info(request_log)').all()).toEqual(REQUEST_LOG_COLUMNS)
    } finally {
      db.close()
    }
  }, RUN_TIMEOUT_MS)

  test('the rendered config validates with the deployed witness check-config and carries the variables', async () => {
    const check = await run([witnessCommand, 'check-config', '--config', configPath])
    expect(check.output).toMatch(/is valid \(sha256 [0-9a-f]{64}; chains: default\)/)
    expect(check.code).toBe(0)
    const config = Bun.YAML.parse(readFileSync(configPath, 'utf8')) as Record<string, any>
    expect(config.policy.banned_providers).toEqual(['anthropic'])
    expect(config.database).toBe(path('var/lib/witness/witness.db'))
    expect(config.retention).toEqual({ archive_dir: path('var/lib/witness/archive'), keep_days: 30, max_db_mb: 256 })
    expect(config.sync.work_dir).toBe(path('var/lib/witness/sync'))
    expect(config.deadman.restart_command).toBe('sudo -n /usr/bin/systemctl restart witness.service')
    expect(config.deadman.agents.bezalel.max_silence_s).toBe(300)
    // Only token hashes reach the config; prices as given.
    expect(config.auth).toEqual({ agents: { bezalel: { token_sha256: 'a'.repeat(64) } }, operators: { alexander: { token_sha256: 'b'.repeat(64) } } })
    expect(config.pricing['kimi-k2.5']).toEqual({ input_per_mtok: 0.6, output_per_mtok: 2.5 })
  })

  test('the signing key exists, readable by the service user only, and the config names it', () => {
    const key = path('var/lib/witness/witness-key.json')
    expect(statSync(key).mode & 0o777).toBe(0o600)
    expect((Bun.YAML.parse(readFileSync(configPath, 'utf8')) as { proof: { key_path: string } }).proof.key_path).toBe(key)
  })

  test("the secrets go to an environment file of mode 0640 (root's, read by the service's group) and nowhere else", () => {
    const envPath = path('etc/witness/witness.env')
    const stat = statSync(envPath)
    expect(stat.mode & 0o777).toBe(0o640)
    expect(stat.uid).toBe(process.getuid!()) // in test mode the admin user and the service user are both the runner
    expect(stat.gid).toBe(process.getgid!())
    const envText = readFileSync(envPath, 'utf8')
    expect(envText).toContain('KIMI_API_KEY=sk-test-kimi-0123\n')
    expect(envText).toContain(`OPENROUTER_API_KEY='sk-or-'"'"'quoted'"'"' key'\n`)
    expect(envText).toContain('WITNESS_SYNC_TOKEN=sync-token-4567\n')
    expect(envText).toContain('WITNESS_TOKEN=watchdog-token-89ab\n')
    const config = readFileSync(configPath, 'utf8')
    for (const secret of [...Object.values(secrets), 'sync-token-4567', 'watchdog-token-89ab']) expect(config).not.toContain(secret)
  })

  test('the environment file reads back the exact values in a shell, quotes included', async () => {
    const script = 'set -a; . "$1"; printf "%s\\n%s" "$OPENROUTER_API_KEY" "$WITNESS_TOKEN"'
    const result = await run(['sh', '-c', script, 'sh', path('etc/witness/witness.env')])
    expect(result.output).toBe(`${secrets.OPENROUTER_API_KEY}\nwatchdog-token-89ab`)
  })

  test('the unit and timer files are rendered: the server, the watchdog service and its timer every minute', () => {
    const unit = readFileSync(path('etc/systemd/system/witness.service'), 'utf8')
    expect(unit).toContain(`ExecStart="${path('opt/witness/app/node_modules/.bin/bun')}" "${path('opt/witness/app/src/cli.ts')}" serve --config "${configPath}"\n`)
    expect(unit).toContain(`EnvironmentFile=${path('etc/witness/witness.env')}\n`)
    // What Bun reads at start only (src/runtime-env.ts), and a descriptor per connection and call.
    for (const [name, value] of Object.entries(RUNTIME_ENV)) expect(unit).toContain(`Environment="${name}=${value}"\n`)
    expect(unit).toContain('LimitNOFILE=65536\n')
    const wrapper = readFileSync(witnessCommand, 'utf8')
    for (const [name, value] of Object.entries(RUNTIME_ENV)) expect(wrapper).toContain(`${name}="\${${name}:-${value}}"\nexport ${name}\n`)
    const watchdog = readFileSync(path('etc/systemd/system/witness-watchdog.service'), 'utf8')
    expect(watchdog).toContain('Type=oneshot')
    expect(watchdog).toMatch(/ExecStart="\S+" "\S+" watchdog --config "\S+" --failures 3 --timeout 5s --wait 5s\n/)
    const timer = readFileSync(path('etc/systemd/system/witness-watchdog.timer'), 'utf8')
    expect(timer).toContain('OnUnitActiveSec=60\n')
    expect(timer).toContain('Unit=witness-watchdog.service\n')
  })

  test.skipIf(skipUnless('systemd-analyze verify', missing('systemd-analyze')))('the units pass systemd-analyze verify', async () => {
    const units = ['witness.service', 'witness-watchdog.service', 'witness-watchdog.timer'].map((u) => path(`etc/systemd/system/${u}`))
    const result = await run(['systemd-analyze', 'verify', ...units])
    expect(result.output.trim()).toBe('')
    expect(result.code).toBe(0)
  }, 30_000)

  test('the launchd plists are valid property lists: the server kept alive, the watchdog every 60 s', async () => {
    const load = async (label: string) => {
      const file = path(`Library/LaunchDaemons/${label}.plist`)
      const result = await run(['python3', '-c', 'import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], "rb"))))', file])
      expect(result.code).toBe(0)
      return JSON.parse(result.output) as Record<string, any>
    }
    const server = await load('net.witness.server')
    expect(server.ProgramArguments).toEqual([witnessCommand, 'serve', '--config', configPath])
    expect(server.KeepAlive).toEqual({ SuccessfulExit: false })
    expect(server.RunAtLoad).toBe(true)
    const watchdog = await load('net.witness.watchdog')
    expect(watchdog.ProgramArguments.slice(0, 4)).toEqual([witnessCommand, 'watchdog', '--config', configPath])
    expect(watchdog.StartInterval).toBe(60)
  }, 30_000)

  test('the sudo rules allow exactly the restart commands, and visudo accepts them', async () => {
    const sudoers = path('etc/sudoers.d/witness')
    expect(statSync(sudoers).mode & 0o777).toBe(0o440)
    expect(readFileSync(sudoers, 'utf8')).toContain(
      'Cmnd_Alias WITNESS_ROOT_COMMANDS = /usr/bin/systemctl restart witness.service, /usr/bin/systemctl restart hermes-bezalel.service\n',
    )
    // An agent's checkout is restored as the agent that owns it.
    expect(readFileSync(sudoers, 'utf8')).toMatch(/\n\S+ ALL = \(bezalel\) NOPASSWD: \/usr\/bin\/git -C \/srv\/wizards\/bezalel checkout last-good -- config\.yaml\n/)
    const result = await run(['visudo', '-cf', sudoers])
    expect(result.code).toBe(0)
  })

  test('a second run changes nothing', async () => {
    const result = await playbook()
    if (result.code !== 0 || recap(result.output).changed !== 0) console.log(result.output)
    expect(recap(result.output)).toEqual({ changed: 0, failed: 0 })
    expect(result.code).toBe(0)
  }, RUN_TIMEOUT_MS)

  test('only what runs is copied: not the inventory, a vault, the tests or the docs', () => {
    const app = path('opt/witness/app')
    expect(readdirSync(app).sort()).toEqual(['bunfig.toml', 'node_modules', 'package-lock.json', 'package.json', 'providers', 'src', 'tsconfig.json'])
  })

  test('--check on the deployed machine runs through and changes nothing', async () => {
    const result = await playbook('--check')
    if (result.code !== 0) console.log(result.output)
    expect(recap(result.output)).toEqual({ changed: 0, failed: 0 })
    expect(result.code).toBe(0)
  }, RUN_TIMEOUT_MS)

  test('--check on a new machine (an empty prefix) runs through and writes nothing', async () => {
    const fresh = tempDir('witness-ansible-fresh-')
    const freshVars = join(work, 'fresh.json')
    writeFileSync(freshVars, JSON.stringify({ ...vars, witness_prefix: fresh }))
    const result = await runPlaybook(work, freshVars, '--check')
    if (result.code !== 0) console.log(result.output)
    expect(recap(result.output).failed).toBe(0)
    expect(result.code).toBe(0)
    expect(readdirSync(fresh)).toEqual([])
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

  const port = freePort()
  const heartbeatUrl = `http://127.0.0.1:${port}/heartbeat`

  test('new code is built into a release of its own beside the running one, then app is switched to it and the server restarted; the play waits for its /heartbeat', async () => {
    const first = installed()
    // And a database without its signing key (a lost key, a restored database) gets one: the play runs init again.
    const key = path('var/lib/witness/witness-key.json')
    rmSync(key)
    // A new port too: a config change a reload cannot apply (the socket), so a restart. No server
    // answers here: the play waits 2 s for its /heartbeat, then fails the host and says so.
    const release = { witness_checkout_dir: codeCopy('code-1', 'one'), witness_keep_releases: 1, witness_listen_port: port, witness_heartbeat_wait_s: 2 }
    const result = await playbook(...overVars('release', release), '-v')
    expect(result.code).not.toBe(0)
    const second = installed()
    expect(second).not.toBe(first)
    expect(readFileSync(join(second, 'src/release-marker.txt'), 'utf8')).toBe('one')
    expect(statSync(join(second, 'node_modules/.bin/bun')).isFile()).toBe(true)
    expect(restarted(result.output)).toBe(true)
    expect(result.output).toContain('witness: to apply: restart (listen)')
    expect(result.output).toContain('RUNNING HANDLER [witness : Apply witness config]')
    expect(result.output).toContain(`did not answer ${heartbeatUrl} with 200 and the installed config`)
    expect(result.output).toContain('no answer (')
    expect(statSync(key).mode & 0o777).toBe(0o600)
    // Old releases go only once the handlers passed: the first is still there.
    expect(readdirSync(releases)).toContain(first.slice(releases.length + 1))
  }, RUN_TIMEOUT_MS)

  test('a release whose npm ci fails is not installed: app keeps its release and nothing is restarted', async () => {
    const before = installed()
    const code = codeCopy('code-2', 'one')
    // Another lockfile (the same, reformatted): the release needs npm ci, which cannot reach a registry.
    writeFileSync(join(code, 'package-lock.json'), JSON.stringify(JSON.parse(readFileSync(join(code, 'package-lock.json'), 'utf8'))))
    const offline = {
      witness_checkout_dir: code,
      witness_keep_releases: 1,
      witness_listen_port: port,
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
  test('a reload is waited for on /heartbeat; a server on older code than installed (a run stopped before its handlers) is restarted by the next run; then old releases go', async () => {
    const built = installed() // release "one", which the server below starts from
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
      // Back to this checkout's release.
      heartbeatUp = overVars('heartbeat-up', { witness_listen_port: port, witness_heartbeat_wait_s: 20, witness_retention: { keep_days: 31, max_db_mb: 256 }, witness_keep_releases: 1 })
      const up = await playbook(...heartbeatUp, '-v')
      clearInterval(reloader)
      if (up.code !== 0) console.log(up.output)
      expect(up.code).toBe(0)
      expect(up.output).toContain('witness runs other code than the last run installed')
      expect(restarted(up.output)).toBe(true)
      expect(up.output).toContain('witness: to apply: reload')
      expect(up.output).toContain('RUNNING HANDLER [witness : Wait for witness to answer /heartbeat on the installed config]')
      expect(served().config_hash).toBe(new Bun.CryptoHasher('sha256').update(readFileSync(configPath)).digest('hex'))
      expect(readFileSync(join(installed(), 'src/cli.ts'))).toEqual(readFileSync(join(ROOT, 'src/cli.ts')))
      // Then old releases go: kept are the installed one and the one the server runs (its reload noted
      // it again), past witness_keep_releases: 1; the unfinished build the last test left is gone.
      expect(readdirSync(releases).sort()).toEqual([built, installed()].map((r) => r.slice(releases.length + 1)).sort())
      // The copy of the previous config used for the comparison is gone.
      expect(readdirSync(path('etc/witness')).filter((n) => n.endsWith('~'))).toEqual([])
    } finally {
      server.kill('SIGTERM')
      await server.exited
    }
  }, RUN_TIMEOUT_MS)

  // The same check runs before anything is installed in a real run (the banned chain's test below shows it).
  test('--check shows new code as a new release, refuses a provider key missing from the secrets as the run would, and changes nothing', async () => {
    const envPath = path('etc/witness/witness.env')
    const [envBefore, configBefore] = [readFileSync(envPath), readFileSync(configPath)]
    // New code too: --check makes no copy, so it names the release from the controller's checkout and shows the switch.
    const keyless = { witness_provider_api_keys: { OPENROUTER_API_KEY: secrets.OPENROUTER_API_KEY }, witness_listen_port: 8789, witness_checkout_dir: codeCopy('code-check', 'three') }
    const before = installed()
    const result = await playbook(...overVars('keyless', keyless), '--check')
    expect(result.code).not.toBe(0)
    expect(result.output).toMatch(/TASK \[witness : Switch app to the release\] \**\nchanged: \[localhost\]/)
    expect(installed()).toBe(before)
    expect(result.output).toContain('failed validation and was NOT installed')
    expect(result.output).toContain('provider \\"kimi\\" (chains: default) has no API key: its variable KIMI_API_KEY is not set in this environment')
    expect(readFileSync(envPath)).toEqual(envBefore)
    expect(readFileSync(configPath)).toEqual(configBefore)
  }, RUN_TIMEOUT_MS)

  test('two hosts of the play under one machine name stop it before anything is installed', async () => {
    const result = await run(['ansible-playbook', '-c', 'local', '-i', 'one,two,', '-e', `@${varsFile}`, 'site.yml'], ansibleEnv(work))
    expect(result.code).not.toBe(0)
    expect(result.output).toMatch(/witness_machine must differ between hosts \(it names each machine's telemetry folder\); shared: \S+ \(one, two\)/)
    expect(result.output).not.toContain('TASK [witness : Copy the project')
  }, RUN_TIMEOUT_MS)

  test("a chain naming a banned provider fails the play with the validator's message and leaves the running config and secrets", async () => {
    const before = readFileSync(configPath)
    const envPath = path('etc/witness/witness.env')
    const envBefore = readFileSync(envPath)
    // New secrets too: the environment file is not installed either.
    const bad = { witness_chains: { default: [{ provider: 'claude', model: 'claude-sonnet-4' }] }, witness_sync_token: 'another-sync-token' }
    const result = await playbook(...overVars('bad', bad))
    expect(result.code).not.toBe(0)
    expect(recap(result.output).failed).toBe(1)
    expect(result.output).toContain(`witness.yaml for localhost failed validation and was NOT installed; ${configPath} is unchanged.`)
    expect(result.output).toContain('invalid config (the new witness.yaml):')
    expect(result.output).toContain('chains.default[0].provider: provider \\"claude\\" is banned by policy.banned_providers (\\"anthropic\\")')
    expect(readFileSync(configPath)).toEqual(before)
    expect(readFileSync(envPath)).toEqual(envBefore)
    // No copy of the running config is left beside it (`witness.yaml.<pid>.<date>~`).
    expect(readdirSync(dirname(configPath)).filter((name) => name.endsWith('~'))).toEqual([])
    expect((await run([witnessCommand, 'check-config', '--config', configPath])).code).toBe(0)
  }, RUN_TIMEOUT_MS)

  test('a config the deadman switch rolled back on the host is not pushed there again: the play fails and says why', async () => {
    // The installed config failed and was rolled back: a rollback row names its hash, and the file holds the snapshot.
    const pushed = readFileSync(configPath)
    const hash = new Bun.CryptoHasher('sha256').update(pushed).digest('hex')
    const db = new Database(path('var/lib/witness/witness.db'))
    db.run("INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, status, error_message) VALUES ('2026-12-06T10:00:00.000Z', 'witness', 'deadman', 'x', ?, 'rollback', 'rolled back')", [configPath])
    db.run("INSERT INTO deadman_rollback (log_id, agent, old_config_hash, new_config_hash, reason, recorded_by) VALUES (last_insert_rowid(), 'witness', ?, 'x', 'after 3 failed health checks', 'watchdog')", [hash])
    db.close()
    const restored = `${pushed}\n# the last known good\n`
    writeFileSync(configPath, restored)
    // The variables that rendered the installed config (the last run that installed one).
    const result = await playbook(...heartbeatUp)
    expect(result.code).not.toBe(0)
    expect(result.output).toContain(`witness.yaml for localhost failed validation and was NOT installed; ${configPath} is unchanged.`)
    expect(result.output).toContain(`was rolled back on this machine at 2026-12-06T10:00:00.000Z (after 3 failed health checks)`)
    expect(readFileSync(configPath, 'utf8')).toBe(restored)
  }, RUN_TIMEOUT_MS)
})
