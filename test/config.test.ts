import { describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { homedir, hostname } from 'node:os'
import { join } from 'node:path'
import { PRESETS } from '../providers/presets.ts'
import { type Config, parseConfig, unsetApiKeys } from '../src/config.ts'
import { loadConfig } from '../src/config-file.ts'
import { ConfigError } from '../src/errors.ts'
import { ROOT } from './support/process.ts'
import { tempDir } from './support/temp.ts'

/** The problems a ConfigError from `run` lists. */
function issuesOf(run: () => unknown): { path: string; message: string }[] {
  try {
    run()
  } catch (error) {
    if (error instanceof ConfigError) return error.issues
    throw error
  }
  throw new Error('expected a ConfigError')
}

const problems = (input: unknown) => issuesOf(() => parseConfig(input))

/** The problems `loadConfig` lists for a config file holding `text`. */
function fileProblems(text: string): { path: string; message: string }[] {
  const path = join(tempDir(), 'witness.yaml')
  writeFileSync(path, text)
  return issuesOf(() => loadConfig(path))
}

const minimal = { providers: { kimi: {} }, chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] } }

describe('config', () => {
  test('the shipped witness.yaml is valid', () => {
    const config = loadConfig(join(ROOT, 'witness.yaml'))
    expect([...config.chains.keys()]).toEqual(['default', 'fast'])
    expect(config.raw.listen).toEqual({ host: '127.0.0.1', port: 8787 })
    expect(config.databasePath).toBe(join(ROOT, 'data/witness.db'))
    expect(config.hash).toMatch(/^[0-9a-f]{64}$/)
  })

  test('a provider named like a preset takes its type, base URL and key variable', () => {
    const config = parseConfig(minimal)
    expect(config.providers.get('kimi')).toEqual({
      name: 'kimi', type: 'openai', preset: 'kimi', baseUrl: PRESETS.kimi.baseUrl, apiKeyEnv: 'KIMI_API_KEY', headers: {}, streamUsage: true, sendReasoning: true, defaultMaxTokens: 4096,
      endpoint: 'https://api.moonshot.ai/v1/chat/completions', publicEndpoint: 'https://api.moonshot.ai/v1/chat/completions',
    })
  })

  test('send_reasoning: on by default, off for the groq preset (Groq refuses the field), and each may be set', () => {
    const config = parseConfig({
      providers: { kimi: {}, groq: {}, fussy: { type: 'openai', base_url: 'https://x.example/v1', send_reasoning: false }, groq2: { preset: 'groq', send_reasoning: true } },
      chains: { default: [{ provider: 'kimi', model: 'a' }] },
    })
    expect(['kimi', 'groq', 'fussy', 'groq2'].map((name) => config.providers.get(name)!.sendReasoning)).toEqual([true, false, false, true])
  })

  test('default_max_tokens: 4096 unless set, and only for an anthropic provider', () => {
    const config = parseConfig({
      providers: { claude: { type: 'anthropic', base_url: 'https://a.example/v1' }, long: { type: 'anthropic', base_url: 'https://a.example/v1', default_max_tokens: 32000 } },
      chains: { default: [{ provider: 'claude', model: 'a' }, { provider: 'long', model: 'a' }] },
    })
    expect(['claude', 'long'].map((name) => config.providers.get(name)!.defaultMaxTokens)).toEqual([4096, 32000])
    const refused = () => parseConfig({ providers: { kimi: { default_max_tokens: 8000 } }, chains: { default: [{ provider: 'kimi', model: 'a' }] } })
    expect(refused).toThrow(ConfigError)
    expect(refused).toThrow(/providers\.kimi\.default_max_tokens: only for an anthropic provider/)
  })

  test('defaults fill every knob, and a step overrides its provider', () => {
    const config = parseConfig({
      providers: { kimi: { timeout_ms: 30000, retries: 2 } },
      chains: { default: [{ provider: 'kimi', model: 'a', timeout_ms: 20000 }, { provider: 'kimi', model: 'b' }] },
    })
    const [a, b] = config.chains.get('default')!
    expect([a!.timeoutMs, a!.retries, b!.timeoutMs, b!.retries]).toEqual([20000, 2, 30000, 2])
    expect(config.raw.database_sync).toBe('full')
    expect(config.raw.database_busy_timeout_ms).toBe(5000)
    expect(config.maxBodyBytes).toBe(32 * 1024 * 1024)
    expect(config.bodyTimeoutMs).toBe(30_000)
  })

  test('an explicit preset under another name works, and custom needs a base_url', () => {
    const config = parseConfig({
      providers: { runpod: { preset: 'custom', base_url: 'https://api.runpod.ai/v2/abc/openai/v1' }, fast: { preset: 'groq' } },
      chains: { default: [{ provider: 'runpod', model: 'm' }, { provider: 'fast', model: 'g' }] },
    })
    expect(config.providers.get('runpod')).toMatchObject({ preset: 'custom', apiKeyEnv: 'RUNPOD_API_KEY' })
    expect(config.providers.get('fast')).toMatchObject({ baseUrl: PRESETS.groq.baseUrl })
    // A vLLM started without --api-key takes none: api_key_env null, so no step waits for RUNPOD_API_KEY.
    const keyless = parseConfig({
      providers: { local: { preset: 'custom', base_url: 'http://127.0.0.1:8000/v1', api_key_env: null } },
      chains: { default: [{ provider: 'local', model: 'm' }] },
    })
    expect(keyless.providers.get('local')).toMatchObject({ preset: 'custom', apiKeyEnv: null })
    expect(unsetApiKeys(keyless, {})).toEqual([])
    expect(problems({ providers: { custom: {} }, chains: { default: [{ provider: 'custom', model: 'm' }] } })).toEqual([
      { path: 'providers.custom.base_url', message: 'preset "custom" needs a base_url' },
    ])
  })

  test('every problem is listed with its path, not just the first', () => {
    const found = problems({
      listen: { port: 'eighty' },
      database_sync: 'sometimes',
      providers: { kimi: { timeout_ms: -1, tiemout_ms: 5 } },
      chains: { default: [{ provider: 'kimi' }], empty: [] },
    })
    expect(found.map((p) => p.path).sort()).toEqual([
      'chains.default[0].model',
      'chains.empty',
      'database_sync',
      'listen.port',
      'providers.kimi.tiemout_ms',
      'providers.kimi.timeout_ms',
    ])
  })

  test('a required value refused (an empty model, a malformed token hash) still lets the checks across settings run: every problem at once', () => {
    const found = problems({
      providers: { mine: { type: 'openai' } },
      chains: { default: [{ provider: 'nope', model: 'm' }], other: [{ provider: 'mine', model: '' }] },
      policy: { backoff_min_ms: 5000, backoff_max_ms: 1000 },
      auth: { agents: { bob: { token_sha256: 'abc' } } },
    })
    expect(found.map((p) => p.path).sort()).toEqual([
      'auth.agents.bob.token_sha256',
      'chains.default[0].provider',
      'chains.other[0].model',
      'policy.backoff_max_ms',
      'providers.mine.base_url',
    ])
    // A step taken out moves those after it up; their problems are still named at their own places.
    const placed = problems({
      providers: { p: { type: 'openai', base_url: 'http://127.0.0.1:9/v1' } },
      chains: { default: [{ provider: 'p', model: '' }, { provider: 'nope', model: 'm' }, { provider: 'p', model: '' }, { provider: 'nope2', model: 'm' }] },
    })
    expect(placed.map((p) => p.path)).toEqual(['chains.default[0].model', 'chains.default[2].model', 'chains.default[1].provider', 'chains.default[3].provider'])
  })

  test("a provider refused for its own settings is not also called unknown by its chains; an unknown one lists those written", () => {
    expect(
      problems({
        providers: { kimi: { type: 'openai', base_url: 'ftp//nope' } },
        chains: { default: [{ provider: 'kimi', model: 'k' }, { provider: 'nope', model: 'm' }] },
      }),
    ).toEqual([
      { path: 'providers.kimi.base_url', message: 'must be an http(s) URL' },
      { path: 'chains.default[1].provider', message: 'unknown provider "nope"; defined: kimi' },
    ])
  })

  test("a banned provider refused whole is named banned by its chain too; a step naming Object's own members is unknown, not taken", () => {
    const found = problems({ providers: { evil: null, kimi: {} }, chains: { default: [{ provider: 'evil', model: 'm' }, { provider: 'kimi', model: 'k' }] }, policy: { banned_providers: ['evil'] } })
    expect(found.map((p) => p.path).sort()).toEqual(['chains.default[0].provider', 'providers.evil'])
    expect(found.find((p) => p.path === 'chains.default[0].provider')!.message).toContain('is banned by policy.banned_providers')
    const inherited = problems({ providers: { kimi: {} }, chains: { default: [{ provider: 'hasOwnProperty', model: 'm' }, { provider: 'constructor', model: 'm' }] } })
    expect(inherited.map((p) => [p.path, p.message.split(';')[0]])).toEqual([
      ['chains.default[0].provider', 'unknown provider "hasOwnProperty"'],
      ['chains.default[1].provider', 'unknown provider "constructor"'],
    ])
  })

  test('names JavaScript reserves (constructor, prototype, __proto__) are refused where the operator names things, not dropped', () => {
    const found = problems({
      providers: { kimi: {}, constructor: {} },
      chains: { default: [{ provider: 'kimi', model: 'k' }] },
      auth: { agents: { constructor: { token_sha256: 'a'.repeat(64) } }, operators: { prototype: { token_sha256: 'b'.repeat(64) } } },
      deadman: { agents: JSON.parse('{"__proto__": {"max_silence_s": 300}}') },
      pricing: { constructor: { input_per_mtok: 1, output_per_mtok: 2 } },
    })
    expect(found.map((p) => [p.path, p.message.split(' cannot')[0]])).toEqual([
      ['providers', '"constructor"'],
      ['deadman.agents', '"__proto__"'],
      ['auth.agents', '"constructor"'],
      ['auth.operators', '"prototype"'],
      ['pricing', '"constructor"'],
    ])
  })

  test('a config without a chain serves nothing, and is refused', () => {
    expect(problems({ providers: { kimi: {} }, chains: {} })).toEqual([{ path: 'chains', message: 'at least one chain: a router without one serves nothing' }])
  })

  test('listen.host is an address serve can bind: no scheme, port or spaces', () => {
    for (const host of ['http://127.0.0.1', '127.0.0.1:8787', '127.0.0.1 ', '', '[::1', '::1]', '999.1.1.1', '1.2.3']) {
      expect(problems({ ...minimal, listen: { host } }).map((p) => p.path), host).toEqual(['listen.host'])
    }
    for (const host of ['127.0.0.1', '::1', '[::1]', 'localhost']) expect(parseConfig({ ...minimal, listen: { host } }).raw.listen.host).toBe(host)
  })

  test('a wait before a retry is at most 4 minutes: the stats count a request as finished 5 minutes after its last call', () => {
    expect(problems({ ...minimal, policy: { retry_after_cap_ms: 900_000, backoff_max_ms: 240_001 } })).toEqual([
      { path: 'policy.retry_after_cap_ms', message: 'at most 240000 ms (4 minutes): the stats count a request as finished 5 minutes after its last call' },
      { path: 'policy.backoff_max_ms', message: 'at most 240000 ms (4 minutes): the stats count a request as finished 5 minutes after its last call' },
    ])
    expect(parseConfig({ ...minimal, policy: { retry_after_cap_ms: 240_000, backoff_max_ms: 240_000 } }).policy).toMatchObject({ retry_after_cap_ms: 240_000, backoff_max_ms: 240_000 })
  })

  test('cross-references are checked: unknown providers, missing types and base URLs', () => {
    const found = problems({
      providers: { mystery: {}, other: { type: 'openai' } },
      chains: { default: [{ provider: 'nobody', model: 'm' }, { provider: 'mystery', model: 'm' }] },
    })
    expect(found).toEqual([
      { path: 'providers.mystery.type', message: 'set type (openai or anthropic) or a preset' },
      { path: 'providers.mystery.base_url', message: 'set base_url or a preset' },
      { path: 'providers.other.base_url', message: 'set base_url or a preset' },
      { path: 'chains.default[0].provider', message: 'unknown provider "nobody"; defined: mystery, other' },
    ])
  })

  test('banned_providers matches the config name, the preset name and the type', () => {
    const base = {
      providers: {
        claude: { preset: 'anthropic' },
        work: { type: 'anthropic', base_url: 'https://proxy.example/v1' },
        kimi: {},
      },
    }
    const byType = problems({ ...base, chains: { c: [{ provider: 'work', model: 'm' }] }, policy: { banned_providers: ['anthropic'] } })
    expect(byType).toEqual([{ path: 'chains.c[0].provider', message: 'provider "work" is banned by policy.banned_providers ("anthropic")' }])
    const byPreset = problems({ ...base, chains: { c: [{ provider: 'claude', model: 'm' }] }, policy: { banned_providers: ['anthropic'] } })
    expect(byPreset[0]!.message).toContain('"claude" is banned')
    const byName = problems({ ...base, chains: { c: [{ provider: 'kimi', model: 'm' }] }, policy: { banned_providers: ['kimi'] } })
    expect(byName[0]!.message).toContain('"kimi" is banned')
    // A banned provider that no chain names is not an error.
    expect(() => parseConfig({ ...base, chains: { c: [{ provider: 'kimi', model: 'm' }] }, policy: { banned_providers: ['anthropic'] } })).not.toThrow()
  })

  test('deadman keys have defaults, and a watched agent needs max_silence_s', () => {
    expect(parseConfig(minimal).deadman).toEqual({
      name: 'witness',
      check_every_s: 30,
      promote_after_s: 300,
      failing_window_s: 300,
      stuck_grace_s: 30,
      command_timeout_s: 60,
      agents: {},
    })
    const found = problems({
      ...minimal,
      deadman: { promote_after_s: -5, restart_command: '', agents: { bezalel: { rollback_command: 'true' }, 'bad name': { max_silence_s: 60 } }, typo: 1 },
    })
    expect(found.map((p) => p.path).sort()).toEqual(['deadman.agents.bad name', 'deadman.agents.bezalel.max_silence_s', 'deadman.promote_after_s', 'deadman.restart_command', 'deadman.typo'])
  })

  test('YAML errors and unreadable files are config errors too', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'bad.yaml'), 'providers: [\n  nope: {')
    expect(() => loadConfig(join(dir, 'bad.yaml'))).toThrow(/not valid YAML/)
    // Several documents, or a list, are named as such.
    writeFileSync(join(dir, 'two.yaml'), 'providers: {}\n---\nchains: {}\n')
    expect(() => loadConfig(join(dir, 'two.yaml'))).toThrow(/holds 2 YAML documents/)
    writeFileSync(join(dir, 'list.yaml'), '- providers\n- chains\n')
    expect(() => loadConfig(join(dir, 'list.yaml'))).toThrow(/is a list; a config is one mapping/)
    // It says where: the line and column.
    writeFileSync(join(dir, 'unclosed.yaml'), 'chains:\n  default:\n    - { provider: a, model: m }\n  fast:\n    - { provider: a, model: m\npolicy: { cooldown_s: 5 }\n')
    expect(() => loadConfig(join(dir, 'unclosed.yaml'))).toThrow(/not valid YAML: .* at line 6, column 1/)
    expect(() => loadConfig(join(dir, 'missing.yaml'))).toThrow(/cannot read file/)
  })

  test('relative database paths resolve against the config file; the hash is of its bytes', () => {
    const dir = tempDir()
    const text = 'database: ./sub/w.db\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\n'
    writeFileSync(join(dir, 'w.yaml'), text)
    const config: Config = loadConfig(join(dir, 'w.yaml'))
    expect(config.databasePath).toBe(join(dir, 'sub/w.db'))
    expect(config.hash).toBe(new Bun.CryptoHasher('sha256').update(text).digest('hex'))
  })

  test('retention and sync: defaults, paths relative to the config file, durations, machine from the hostname', () => {
    const dir = tempDir()
    writeFileSync(join(dir, 'w.yaml'), 'providers: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\nsync: { remote: ../telemetry.git }\n')
    const config = loadConfig(join(dir, 'w.yaml'))
    expect(config.retention).toEqual({ keepDays: 30, archiveDir: join(dir, 'data/archive'), archiveKeepDays: 0, maxDbMb: 512 })
    expect(config.sync).toEqual({ remote: join(dir, '../telemetry.git'), branch: 'main', workDir: join(dir, 'data/sync'), everyMs: 15 * 60_000 })
    expect(config.machine).toBe(hostname())
    expect(parseConfig(minimal).sync).toBeNull()
    const remote = (r: string, every: unknown = 0) => parseConfig({ ...minimal, sync: { remote: r, every } }).sync!
    expect(remote('https://forge.example/timmy/telemetry.git', '30s')).toMatchObject({ remote: 'https://forge.example/timmy/telemetry.git', everyMs: 30_000 })
    expect(remote('git@forge.example:timmy/telemetry.git', 0)).toMatchObject({ remote: 'git@forge.example:timmy/telemetry.git', everyMs: 0 })
    expect(remote('ssh://git@forge.example/t.git', '1d').everyMs).toBe(86_400_000)
    // A lower database_max_mb lowers the default max_db_mb below it.
    expect(parseConfig({ ...minimal, database_max_mb: 100 }).retention.maxDbMb).toBe(80)
  })

  test('machine defaults to the host name exactly as os.hostname() gives it, dots and all; machine: overrides it', () => {
    expect(parseConfig(minimal, { hostname: 'forge-01.example.com' }).machine).toBe('forge-01.example.com')
    expect(parseConfig(minimal, { hostname: 'Alexanders-Mac.local' }).machine).toBe('Alexanders-Mac.local')
    expect(parseConfig({ ...minimal, machine: 'forge-01' }, { hostname: 'forge-01.example.com' }).machine).toBe('forge-01')
    // A host name that cannot be a machine name is no problem when machine: is set.
    expect(parseConfig({ ...minimal, machine: 'forge-01' }, { hostname: '../etc' }).machine).toBe('forge-01')
  })

  test('a host name that cannot name a folder in the export (/, .., a leading dot, empty, too long) is refused as machine: would be, naming the fix', () => {
    const refused = (host: string) => {
      try {
        parseConfig(minimal, { hostname: host })
      } catch (error) {
        return (error as ConfigError).issues
      }
      throw new Error(`host name ${JSON.stringify(host)} was taken as a machine name`)
    }
    for (const host of ['', '..', '.', 'a/b', '../etc', '.hidden', 'two words', 'x'.repeat(65)]) {
      const issues = refused(host)
      expect(issues, host).toEqual([{ path: 'machine', message: expect.stringContaining(`not set, and the host name ${JSON.stringify(host)} cannot name this machine's folder`) }])
      expect(issues[0]!.message).toEndWith('; set machine: explicitly')
      // The same names given as machine: are refused too.
      expect(problems({ ...minimal, machine: host }).map((i) => i.path), host).toEqual(['machine'])
    }
    expect(parseConfig(minimal, { hostname: 'x'.repeat(64) }).machine).toHaveLength(64)
  })

  test('every problem is listed at once: what the schema refuses, and the checks across settings on the rest', () => {
    const found = problems({
      databse: './x.db',
      max_body_mb: 'lots',
      listen: { host: '0.0.0.0', port: 8787 },
      providers: { kimi: { timeout_ms: -5 }, bad: { type: 'openai' } },
      chains: { default: [{ provider: 'nope', model: 'm' }, { provider: 'kimi', model: 'k', retries: 'many' }, { provider: 'bad', model: 'b' }] },
    })
    expect(found.map((i) => i.path).sort()).toEqual([
      'chains.default[0].provider',
      'chains.default[1].retries',
      'databse',
      'listen.host',
      'max_body_mb',
      'providers.bad.base_url',
      'providers.kimi.timeout_ms',
    ])
    expect(found.find((i) => i.path === 'databse')!.message).toBe('unknown key (there is none such here)')
    expect(problems({ providers: { kimi: {} } })).toEqual([{ path: 'chains', message: 'required, and missing' }])
  })

  test('a key given twice in one mapping is refused (YAML parsers keep the last without a word): a second auth or policy block', () => {
    const issues = fileProblems('providers: { kimi: {} }\nchains: { default: [ { provider: kimi, model: m } ] }\npolicy: { banned_providers: [anthropic] }\nmax_body_mb: lots\npolicy: { retry_timeouts: true }\n')
    expect(issues).toEqual([
      { path: 'policy', message: 'given twice in one mapping (again at line 5): the later would silently replace the earlier; merge them' },
      { path: 'max_body_mb', message: expect.any(String) },
    ])
  })

  test('a key given twice deeper in is named by its path, so the same name elsewhere (a provider and a price) is not mistaken for it', () => {
    const issues = fileProblems('providers:\n  kimi: {}\n  kimi: { timeout_ms: 1000 }\nchains:\n  default:\n    - { provider: kimi, model: m, model: n }\npricing:\n  kimi: { input_per_mtok: 1, output_per_mtok: 2 }\n')
    expect(issues.slice(0, 2)).toEqual([
      { path: 'providers.kimi', message: 'given twice in one mapping (again at line 3): the later would silently replace the earlier; merge them' },
      { path: 'chains.default[0].model', message: 'given twice in one mapping (again at line 6): the later would silently replace the earlier; merge them' },
    ])
  })

  test('provider headers must be HTTP header names with values on one line; timers at most 24.8 days', () => {
    expect(problems({ ...minimal, providers: { kimi: { headers: { 'Bad Header': 'x', 'X-Ok': 'a\r\nInjected: 1' } } } }).map((i) => i.path).sort()).toEqual(['providers.kimi.headers.Bad Header', 'providers.kimi.headers.X-Ok'])
    expect(problems({ ...minimal, deadman: { command_timeout_s: 2_592_000, check_every_s: 3_000_000 } }).map((i) => i.path).sort()).toEqual(['deadman.check_every_s', 'deadman.command_timeout_s'])
    // What fetch refuses to send (so every call would fail, as a row of a call never made): past Latin-1, control characters.
    const bad = { 'X-Title': 'fleet ✓', 'X-Bell': 'a\x07b' }
    expect(problems({ ...minimal, providers: { kimi: { headers: { ...bad, 'X-Ok': 'café\tfleet' } } } }).map((i) => i.path).sort()).toEqual(['providers.kimi.headers.X-Bell', 'providers.kimi.headers.X-Title'])
  })

  test('a file that is not UTF-8 is refused, naming the line of its first bad byte, not read with U+FFFD in its place', () => {
    const path = join(tempDir(), 'witness.yaml')
    const text = (s: string) => [...new TextEncoder().encode(s)]
    writeFileSync(path, new Uint8Array([...text('providers:\n  kimi: {}\nchains:\n  default: [{ provider: kimi, model: "caf'), 0xe9, ...text('" }]\n')]))
    expect(issuesOf(() => loadConfig(path))).toEqual([{ path: '', message: 'is not UTF-8: byte 0xE9 at line 4; save the file as UTF-8' }])
    // A stray continuation byte after a whole character: that byte is named, not the character's first.
    writeFileSync(path, new Uint8Array([...text('# caf\u00e9'), 0x80, ...text('\nproviders: {}\n')]))
    expect(issuesOf(() => loadConfig(path))).toEqual([{ path: '', message: 'is not UTF-8: byte 0x80 at line 1; save the file as UTF-8' }])
    writeFileSync(path, new Uint8Array([...text('providers:\n  kimi: {}\n# \u2713'), 0xe2, 0x9c]))
    expect(issuesOf(() => loadConfig(path))).toEqual([{ path: '', message: 'is not UTF-8: a character cut short at the end (line 3); save the file as UTF-8' }])
  })

  test('a path starting with ~/ is in the home directory; other relative paths are the config file\'s directory\'s', () => {
    const config = parseConfig({ ...minimal, database: '~/witness/w.db', retention: { archive_dir: 'archive' } }, { baseDir: '/etc/witness' })
    expect(config.databasePath).toBe(join(homedir(), 'witness/w.db'))
    expect(config.retention.archiveDir).toBe('/etc/witness/archive')
  })

  test('a sync remote holding a password or token is refused, and so are bad durations and archives kept shorter than rows', () => {
    expect(
      problems({
        ...minimal,
        database_max_mb: 100,
        retention: { keep_days: 30, archive_keep_days: 10, max_db_mb: 200 },
        sync: { remote: 'https://timmy:s3cret-token@forge.example/t.git', every: '15 minutes', branch: '../x' },
      }).map((i) => i.path),
    ).toEqual(['sync.branch', 'sync.every', 'retention.archive_keep_days', 'retention.max_db_mb', 'sync.remote'])
    expect(
      problems({ ...minimal, database_max_mb: 100, retention: { keep_days: 30, archive_keep_days: 10, max_db_mb: 200 }, sync: { remote: 'https://timmy:s3cret-token@forge.example/t.git' } }),
    ).toEqual([
      { path: 'retention.archive_keep_days', message: 'must be 0 (keep forever) or at least retention.keep_days' },
      { path: 'retention.max_db_mb', message: 'must be below database_max_mb, or early archiving never happens before writes are refused' },
      { path: 'sync.remote', message: 'must not contain a password or token (nor, over http(s), a user name); set WITNESS_SYNC_TOKEN (and WITNESS_SYNC_USER) instead' },
    ])
    // A token as the user name would be written into the clone's .git/config just the same.
    expect(problems({ ...minimal, sync: { remote: 'https://ghp_secrettoken1234567890@github.com/o/r.git' } }).map((i) => i.path)).toEqual(['sync.remote'])
    for (const remote of ['ssh://git@forge.example/t.git', 'git@forge.example:timmy/t.git', 'https://forge.example/t.git']) {
      expect(parseConfig({ ...minimal, sync: { remote } }).sync?.remote).toBe(remote)
    }
  })
})
