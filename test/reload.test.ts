/**
 * Reloading the config (POST /admin/reload and SIGHUP): a valid file is
 * swapped in atomically, an invalid one is refused with every problem and
 * the running config stays; calls in flight finish on their old chains.
 */
import { describe, expect, test } from 'bun:test'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { sha256 } from '../src/hash.ts'
import { spawnWitness, waitForLine } from './support/process.ts'
import { readRows } from './support/rows.ts'
import { useSimulator } from './support/sim-suite.ts'
import { tempDir } from './support/temp.ts'
import { simConfig, type TestWitness, writeConfigFile } from './support/witness.ts'

const suite = useSimulator()

async function witness(config: Record<string, unknown>) {
  return suite.start(config)
}

const reload = (w: TestWitness) => w.post('/admin/reload', '')

describe('POST /admin/reload', () => {
  test('a valid file is swapped in: the new chains serve at once and the hash is the new file\'s', async () => {
    const w = await witness(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'old-model' }] }))
    const before = w.config().hash
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim2', model: 'new-model' }], extra: [{ provider: 'sim', model: 'x' }] }))
    const res = await reload(w)
    expect(res.status).toBe(200)
    const body = await res.json()
    expect(body).toEqual({ status: 'reloaded', config_hash: sha256(readFileSync(w.configPath)), previous_config_hash: before, restart_required: [], warnings: [] })
    expect((await (await w.infer({})).json()).provider).toBe('sim2')
    expect((await w.infer({ chain: 'extra' })).status).toBe(200)
    expect((await (await fetch(`${w.url}/heartbeat`)).json()).config_hash).toBe(body.config_hash)
  })

  test('an invalid file is refused with 422 listing every problem, and the running config keeps serving', async () => {
    const w = await witness(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const before = w.config().hash
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'ghost', model: 'm' }] }, { database_sync: 'sometimes' }))
    const res = await reload(w)
    expect(res.status).toBe(422)
    const { error } = await res.json()
    expect(error.type).toBe('config_invalid')
    expect(error.config_hash).toBe(before)
    expect(error.issues.map((i: { path: string }) => i.path)).toEqual(['database_sync', 'chains.default[0].provider'])
    // All at once: the schema's problems first, then the checks across settings on the rest.
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'ghost', model: 'm' }], other: [{ provider: 'sim', model: 'm', retries: -1 }] }))
    const second = (await (await reload(w)).json()).error
    expect(second.issues.map((i: { path: string }) => i.path)).toEqual(['chains.other[0].retries', 'chains.default[0].provider'])
    writeFileSync(w.configPath, 'providers: [unclosed')
    expect((await (await reload(w)).json()).error.message).toContain('not valid YAML')

    expect(w.config().hash).toBe(before)
    expect((await w.infer({})).status).toBe(200)
    expect(w.logs.some((l) => l.includes('config reload refused'))).toBe(true)
  })

  test('reloading an unchanged file changes nothing', async () => {
    const w = await witness(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    expect(await (await reload(w)).json()).toMatchObject({ status: 'unchanged', config_hash: w.config().hash })
  })

  test('settings fixed at start-up are reported as needing a restart', async () => {
    const config = simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] })
    const w = await witness(config)
    writeConfigFile(w.configPath, { ...config, database: './elsewhere.db', listen: { port: 9999 } })
    expect((await (await reload(w)).json()).restart_required).toEqual(['database', 'listen'])
    // Reloaded again, the file is unchanged since the last reload but not since the start: still said.
    expect(await (await reload(w)).json()).toMatchObject({ status: 'unchanged', restart_required: ['database', 'listen'] })
  })

  test('a call in flight finishes on the chain it started with; the next call takes the new one', async () => {
    const w = await witness(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'old+latency-300' }] }))
    const inFlight = w.infer({})
    while (suite.sim.count() === 0) await Bun.sleep(5)
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim2', model: 'new' }] }))
    expect((await reload(w)).status).toBe(200)
    const old = await (await inFlight).json()
    expect([old.provider, old.model]).toEqual(['sim', 'old+latency-300'])
    const next = await (await w.infer({})).json()
    expect([next.provider, next.model]).toEqual(['sim2', 'new'])
  })

  test('a provider cooling down stays cooling down across a reload', async () => {
    const chains = { default: [{ provider: 'sim', model: 'bad+status-500', retries: 0 }, { provider: 'sim2', model: 'ok' }] }
    const w = await witness(simConfig(suite.sim.url, chains, { policy: { cooldown_failures: 1, cooldown_s: 600 } }))
    expect((await w.infer({})).status).toBe(200)
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { ...chains, extra: [{ provider: 'sim2', model: 'x' }] }, { policy: { cooldown_failures: 1, cooldown_s: 600 } }))
    expect((await reload(w)).status).toBe(200)
    suite.sim.reset()
    expect((await w.infer({})).status).toBe(200)
    expect(suite.sim.count()).toBe(1) // the cooling step was skipped
    expect(readRows(w.dbPath).at(-2)!.error_message).toContain('skipped, cooling down')
  })

  test("a reload that changes the cooling provider's own settings (a key, a header, a base URL) gives it a clean slate: its failures may have been the old settings' doing", async () => {
    const chains = { default: [{ provider: 'sim', model: 'bad+status-500', retries: 0 }, { provider: 'sim2', model: 'ok' }] }
    const policy = { cooldown_failures: 1, cooldown_s: 600 }
    const w = await witness(simConfig(suite.sim.url, chains, { policy }))
    expect((await w.infer({})).status).toBe(200)
    writeConfigFile(w.configPath, simConfig(suite.sim.url, chains, { policy, providers: { sim: { type: 'openai', base_url: `${suite.sim.url}/v1`, headers: { 'x-mended': '1' } } } }))
    expect((await reload(w)).status).toBe(200)
    suite.sim.reset()
    expect((await w.infer({})).status).toBe(200)
    expect(suite.sim.count()).toBe(2) // sim was tried again (and failed), then sim2
    expect(readRows(w.dbPath).at(-2)!.error_message).not.toContain('cooling down')
  })

  test('a provider added without its API key in the environment is warned of, as at start: in the answer and the log', async () => {
    const w = await witness(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const keyed = { type: 'openai', base_url: `${suite.sim.url}/v1`, api_key_env: 'WITNESS_RELOAD_TEST_UNSET_KEY' }
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'keyed', model: 'm' }, { provider: 'sim', model: 'm' }] }, { providers: { keyed } }))
    const warning = 'provider "keyed": its API key variable WITNESS_RELOAD_TEST_UNSET_KEY is not set in this environment, so its steps will be skipped'
    const res = await reload(w)
    expect(res.status).toBe(200)
    expect((await res.json()).warnings).toEqual([warning])
    expect(w.logs.filter((l) => l.includes('WITNESS_RELOAD_TEST_UNSET_KEY'))).toEqual([`witness: ${warning}`])
  })

  test('a higher max_body_mb applies to the next request too, with no restart', async () => {
    const config = simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { max_body_mb: 0.01 })
    const w = await witness(config)
    // Well above the start-up limit plus the 1 MB Bun's own cap once added to it.
    const big = 'x'.repeat(2_000_000)
    expect((await w.infer({ padding: big })).status).toBe(413)
    writeConfigFile(w.configPath, { ...config, max_body_mb: 4 })
    expect((await (await reload(w)).json()).restart_required).toEqual([])
    expect((await w.infer({ padding: big })).status).toBe(200)
  })

  test('a lower max_body_mb applies to the next request', async () => {
    const config = simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] })
    const w = await witness(config)
    const big = 'x'.repeat(20_000)
    expect((await w.infer({ padding: big })).status).toBe(200)
    writeConfigFile(w.configPath, { ...config, max_body_mb: 0.01 })
    await reload(w)
    expect((await w.infer({ padding: big })).status).toBe(413)
  })
})

describe('SIGHUP', () => {
  test('reloads a running server; a bad file is refused, logged, and the server keeps serving', async () => {
    const dir = tempDir()
    const configPath = writeConfigFile(join(dir, 'witness.yaml'), simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }))
    const { proc, url } = await spawnWitness(configPath)
    try {
      const hashOf = async () => (await (await fetch(`${url}/heartbeat`)).json()).config_hash
      const first = await hashOf()
      writeConfigFile(configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim2', model: 'm' }] }))
      proc.kill('SIGHUP')
      await waitForLine(proc.stderr, /config reloaded: sha256 [0-9a-f]{64}/)
      const second = await hashOf()
      expect(second).toBe(sha256(readFileSync(configPath)))
      expect(second).not.toBe(first)

      writeConfigFile(configPath, simConfig(suite.sim.url, { default: [{ provider: 'ghost', model: 'm' }] }))
      proc.kill('SIGHUP')
      await waitForLine(proc.stderr, /config reload refused.*\n.*chains\.default\[0\]\.provider: unknown provider "ghost"/)
      expect(await hashOf()).toBe(second)
      expect(proc.exitCode).toBeNull()
    } finally {
      proc.kill('SIGTERM')
      await proc.exited
    }
  })
})
