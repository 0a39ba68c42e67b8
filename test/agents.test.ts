/**
 * Agents' heartbeats and the deadman switch for them: POST /heartbeat,
 * silence past max_silence_s running the agent's rollback_command once per
 * silence with one `rollback` row, failing and hanging commands recorded as
 * such, state kept across a restart, GET /deadman, POST /deadman/rollback.
 * Real commands (sh -c), a real SQLite file, an injected clock.
 */
import { Database } from 'bun:sqlite'
import { describe, expect, test } from 'bun:test'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { hashToken } from '../src/auth/tokens.ts'
import { MAX_UNLISTED_AGENTS } from '../src/deadman/agents.ts'
import { BUN, ROOT, holdWriteLock } from './support/process.ts'
import { readRollbackFacts, readRows } from './support/rows.ts'
import { useSimulator } from './support/sim-suite.ts'
import { tempDir } from './support/temp.ts'
import { manualClock, simConfig, startWitness, type TestWitness, writeConfigFile } from './support/witness.ts'

const suite = useSimulator()

const env = { PATH: process.env.PATH ?? '' }

async function witness(deadman: Record<string, unknown>, options: { clock?: ReturnType<typeof manualClock>; dir?: string } = {}) {
  const clock = options.clock ?? manualClock()
  const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman }), { clock, env, dir: options.dir })
  return { w, clock }
}

const beat = (w: TestWitness, body: unknown, headers?: Record<string, string>) => w.post('/heartbeat', body, headers)

async function agentState(w: TestWitness, agent: string) {
  const body = await (await fetch(`${w.url}/deadman`)).json()
  return body.agents.find((a: { agent: string }) => a.agent === agent)
}

/**
 * An alert_command that leaves another process holding the database's write lock for `seconds`
 * (it returns once the lock is held, and `locked` then says "locked").
 */
function lockingAlert(dir: string, seconds: number): { command: string; locked: string } {
  const locked = join(dir, 'locked')
  const hold = `${BUN} ${join(ROOT, 'test/support/hold-lock.ts')} ${join(dir, 'witness.db')}`
  return { command: `(sleep ${seconds} | ${hold} > ${locked} 2>&1) & while ! grep -q locked ${locked} 2>/dev/null; do sleep 0.02; done`, locked }
}

/** The lines a command has written so far (a file the shell has created but not yet written to has none). */
const lines = (path: string) => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').filter(Boolean) : [])

describe('an agent that falls silent', () => {
  test('has its rollback_command run exactly once for the silence, with one rollback row; its next beat ends the episode', async () => {
    const dir = tempDir()
    const marker = join(dir, 'rolled-back')
    const { w, clock } = await witness(
      { agents: { bezalel: { max_silence_s: 300, rollback_command: `echo "$WITNESS_AGENT $WITNESS_CONFIG_HASH" >> ${marker}; echo restored` } } },
      { dir },
    )
    expect((await beat(w, { agent: 'bezalel', config_hash: 'abc123' })).status).toBe(200)
    clock.advance(299_900)
    await w.deadman.checkNow()
    expect(lines(marker)).toEqual([]) // just under the limit: not yet

    clock.advance(1_100)
    await w.deadman.checkNow()
    await w.deadman.checkNow()
    clock.advance(600_000)
    await w.deadman.checkNow()
    expect(lines(marker)).toEqual(['bezalel abc123'])
    const rows = readRows(w.dbPath)
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ agent_name: 'bezalel', provider: 'deadman', model: 'abc123', endpoint: 'heartbeat', status: 'rollback' })
    expect(rows[0]!.error_message).toBe('rolled back agent bezalel (config abc123) after 301 s of silence (max 300 s): rollback_command exited 0')
    expect(readRollbackFacts(w.dbPath)).toEqual([
      {
        log_id: rows[0]!.id, agent: 'bezalel', old_config_hash: 'abc123', new_config_hash: null, reason: rows[0]!.error_message,
        command: 'rollback_command', exit_status: 0, timed_out: 0, output: 'restored', recorded_by: 'router', rollback_id: null,
      },
    ])
    expect(await agentState(w, 'bezalel')).toMatchObject({ state: 'rolled_back', silence_s: 901, config_hash: 'abc123', last_rollback: { log_id: rows[0]!.id, exit_status: 0 } })

    // It comes back on another config: the episode is over and the new hash is recorded.
    const back = await (await beat(w, { agent: 'bezalel', config_hash: 'def456' })).json()
    expect(back).toMatchObject({ status: 'ok', state: 'ok', config_hash: 'def456', previous_config_hash: 'abc123', silence_s: 0 })
    clock.advance(301_000)
    await w.deadman.checkNow()
    expect(lines(marker)).toEqual(['bezalel abc123', 'bezalel def456']) // a new silence, a new rollback
    expect(readRows(w.dbPath)).toHaveLength(2)
  })

  test('silence is measured on the monotonic clock: a wall clock stepped ahead silences no one, one stepped back hides no one', async () => {
    const dir = tempDir()
    const marker = join(dir, 'rolled-back')
    let wall = 0
    let mono = 0
    const clock = { now: () => Date.parse('2026-11-25T12:00:00.000Z') + wall, monotonic: () => performance.now() + mono, advance: (ms: number) => { wall += ms; mono += ms } }
    const { w } = await witness({ agents: { bezalel: { max_silence_s: 60, rollback_command: `echo rolled >> ${marker}` } } }, { clock, dir })
    expect((await beat(w, { agent: 'bezalel' })).status).toBe(200)
    wall += 120_000 // NTP, a VM resumed: the wall clock jumps, no time passed
    await w.deadman.checkNow()
    expect(lines(marker)).toEqual([])
    expect(await agentState(w, 'bezalel')).toMatchObject({ state: 'ok', silence_s: 0 })
    wall -= 720_000 // and back, past where it was
    expect((await beat(w, { agent: 'bezalel' })).status).toBe(200)
    mono += 61_000 // then it falls silent for longer than allowed
    await w.deadman.checkNow()
    expect(lines(marker)).toEqual(['rolled'])
  })

  test("a reload that drops an agent's token (a hash mistyped in the push): the locked-out agent is not rolled back for its silence, the operator is alerted once it lasts, and /heartbeat stays as it is; a rotation clears it", async () => {
    const dir = tempDir()
    const [marker, alerts] = [join(dir, 'rolled-back'), join(dir, 'alerts')]
    const auth = (bezalel: string) => ({ agents: { bezalel: { token_sha256: hashToken(bezalel) } }, operators: { op: { token_sha256: hashToken('op-token-123456') } } })
    const deadman = { failing_window_s: 60, alert_command: `echo "$1" >> ${alerts}`, agents: { bezalel: { max_silence_s: 60, rollback_command: `echo rolled >> ${marker}` } } }
    const clock = manualClock()
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman, auth: auth('bezalel-token-1') }), { clock, env, dir })
    const asBezalel = { authorization: 'Bearer bezalel-token-1' }
    expect((await beat(w, { agent: 'bezalel' }, asBezalel)).status).toBe(200)
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman, auth: auth('bezalel-token-typo') }))
    expect((await w.post('/admin/reload', '', { authorization: 'Bearer op-token-123456' })).status).toBe(200)
    // A stranger's token is refused as before, and not counted.
    expect((await beat(w, { agent: 'bezalel' }, { authorization: 'Bearer guess-0000000' })).status).toBe(401)
    for (let i = 0; i < 3; i++) {
      expect((await beat(w, { agent: 'bezalel' }, asBezalel)).status).toBe(401)
      await w.deadman.checkNow()
      if (i < 2) expect(lines(alerts)).toEqual([]) // not for as long as failing_window_s yet
      clock.advance(30_000)
    }
    await w.deadman.checkNow()
    expect(lines(alerts)).toEqual(["agent bezalel's token, accepted by an earlier config, has been refused for 60 s (3 times): a token_sha256 mistyped in the config, or a token revoked whose holder has not stopped"])
    expect(lines(marker)).toEqual([]) // silent for 90 s, but not by its own doing
    // Never a health reason: whoever holds a revoked token must not get the revocation rolled back.
    expect((await fetch(`${w.url}/heartbeat`)).status).toBe(200)
    // It was a rotation after all: the agent comes back with its new token, and nothing is wrong.
    expect((await beat(w, { agent: 'bezalel' }, { authorization: 'Bearer bezalel-token-typo' })).status).toBe(200)
    await w.deadman.checkNow()
    expect(lines(alerts)).toHaveLength(1)
  })

  test('after a rotation, a process still knocking with the old token does not make the agent count as locked out: its own silence is rolled back', async () => {
    const dir = tempDir()
    const marker = join(dir, 'rolled-back')
    const auth = (bezalel: string) => ({ agents: { bezalel: { token_sha256: hashToken(bezalel) } }, operators: { op: { token_sha256: hashToken('op-token-123456') } } })
    const deadman = { failing_window_s: 60, agents: { bezalel: { max_silence_s: 60, rollback_command: `echo rolled >> ${marker}` } } }
    const clock = manualClock()
    const config = (token: string) => simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman, auth: auth(token) })
    const w = await suite.start(config('bezalel-token-1'), { clock, env, dir })
    writeConfigFile(w.configPath, config('bezalel-token-2'))
    expect((await w.post('/admin/reload', '', { authorization: 'Bearer op-token-123456' })).status).toBe(200)
    // The agent rotated: it beats with its new token, then falls silent; a stale cron keeps the old one.
    expect((await beat(w, { agent: 'bezalel' }, { authorization: 'Bearer bezalel-token-2' })).status).toBe(200)
    for (let i = 0; i < 3; i++) {
      clock.advance(21_000)
      expect((await beat(w, { agent: 'bezalel' }, { authorization: 'Bearer bezalel-token-1' })).status).toBe(401)
    }
    expect(w.deadman.lockouts.lockedOut('bezalel', 60_000)).toBe(false)
    await w.deadman.checkNow()
    expect(lines(marker)).toEqual(['rolled'])
  })

  test('a lockout goes on across a later reload that changes something else, until a config takes the token back', async () => {
    const dir = tempDir()
    const alerts = join(dir, 'alerts')
    const auth = (bezalel: string) => ({ agents: { bezalel: { token_sha256: hashToken(bezalel) } }, operators: { op: { token_sha256: hashToken('op-token-123456') } } })
    const deadman = { failing_window_s: 60, alert_command: `echo "$1" >> ${alerts}`, agents: { bezalel: { max_silence_s: 60, rollback_command: 'true' } } }
    const clock = manualClock()
    const config = (token: string, model: string) => simConfig(suite.sim.url, { default: [{ provider: 'sim', model }] }, { deadman, auth: auth(token) })
    const w = await suite.start(config('bezalel-token-1', 'm'), { clock, env, dir })
    const asBezalel = { authorization: 'Bearer bezalel-token-1' }
    const reload = async (token: string, model: string) => {
      writeConfigFile(w.configPath, config(token, model))
      expect((await w.post('/admin/reload', '', { authorization: 'Bearer op-token-123456' })).status).toBe(200)
    }
    await reload('bezalel-token-typo', 'm')
    expect((await beat(w, { agent: 'bezalel' }, asBezalel)).status).toBe(401)
    clock.advance(30_000)
    await reload('bezalel-token-typo', 'm2') // another change, the typo still in it
    for (let i = 0; i < 2; i++) {
      expect((await beat(w, { agent: 'bezalel' }, asBezalel)).status).toBe(401)
      clock.advance(30_000)
    }
    await w.deadman.checkNow()
    expect(lines(alerts)).toEqual(["agent bezalel's token, accepted by an earlier config, has been refused for 60 s (3 times): a token_sha256 mistyped in the config, or a token revoked whose holder has not stopped"])
    // The typo fixed: the token is accepted again, and nothing more is watched.
    await reload('bezalel-token-1', 'm2')
    expect((await beat(w, { agent: 'bezalel' }, asBezalel)).status).toBe(200)
    expect(w.deadman.lockouts.lockedOut('bezalel', 3_600_000)).toBe(false)
  })

  test('a token the last known good accepted and a config applied by a restart drops is watched as after a reload', async () => {
    const dir = tempDir()
    const [marker, alerts] = [join(dir, 'rolled-back'), join(dir, 'alerts')]
    const auth = (bezalel: string) => ({ agents: { bezalel: { token_sha256: hashToken(bezalel) } }, operators: { op: { token_sha256: hashToken('op-token-123456') } } })
    const deadman = { failing_window_s: 60, promote_after_s: 60, alert_command: `echo "$1" >> ${alerts}`, agents: { bezalel: { max_silence_s: 60, rollback_command: `echo rolled >> ${marker}` } } }
    const config = (token: string) => simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman, auth: auth(token) })
    const asBezalel = { authorization: 'Bearer bezalel-token-1' }
    const firstClock = manualClock()
    const first = await suite.start(config('bezalel-token-1'), { clock: firstClock, env, dir })
    expect((await first.infer({ agent: 'bezalel' }, asBezalel)).status).toBe(200)
    await first.deadman.checkNow()
    firstClock.advance(60_000)
    expect((await beat(first, { agent: 'bezalel' }, asBezalel)).status).toBe(200)
    await first.deadman.checkNow()
    expect(existsSync(`${first.configPath}.last-good`)).toBe(true)
    await first.stop(0)
    // The push mistyped bezalel's hash, and was applied by a restart.
    const clock = manualClock()
    const w = await suite.start(config('bezalel-token-typo'), { clock, env, dir })
    expect(w.logs.filter((l) => l.includes('last known good'))).toEqual([expect.stringContaining('the tokens of agent bezalel, which it no longer accepts, are watched')])
    for (let i = 0; i < 3; i++) {
      expect((await beat(w, { agent: 'bezalel' }, asBezalel)).status).toBe(401)
      clock.advance(30_000)
    }
    await w.deadman.checkNow()
    expect(lines(alerts)).toEqual(["agent bezalel's token, accepted by an earlier config, has been refused for 60 s (3 times): a token_sha256 mistyped in the config, or a token revoked whose holder has not stopped"])
    expect(lines(marker)).toEqual([]) // silent for 90 s, but not by its own doing
    expect(w.deadman.lockouts.lockedOut('bezalel', 60_000)).toBe(true)
  })

  test('a restart onto a config that renames a token, or has no auth at all, watches no token: none of them is refused', async () => {
    const dir = tempDir()
    const deadman = { promote_after_s: 60 }
    const config = (auth: unknown) => simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, auth ? { deadman, auth } : { deadman })
    const clock = manualClock()
    const first = await suite.start(config({ agents: { bezalel: { token_sha256: hashToken('bezalel-token-1') } } }), { clock, env, dir })
    expect((await first.infer({ agent: 'bezalel' }, { authorization: 'Bearer bezalel-token-1' })).status).toBe(200)
    await first.deadman.checkNow()
    clock.advance(60_000)
    await first.deadman.checkNow()
    expect(existsSync(`${first.configPath}.last-good`)).toBe(true)
    await first.stop(0)
    for (const auth of [{ agents: { 'bezalel-2': { token_sha256: hashToken('bezalel-token-1').toUpperCase() } } }, null]) {
      const w = await suite.start(config(auth), { clock: manualClock(), env, dir })
      // No token watched; a start without auth at all is only said to run open (heartbeat.test.ts).
      const said = w.logs.filter((l) => l.includes('last known good'))
      expect(said).toEqual(auth ? [] : [expect.stringContaining('this config has no auth and the last known good')])
      await w.stop(0)
    }
  })

  test('a failing rollback_command is recorded with its exit status and output, and the agent stays late', async () => {
    const { w, clock } = await witness({ agents: { ezra: { max_silence_s: 60, rollback_command: 'echo "no such branch" >&2; exit 3' } } })
    await beat(w, { agent: 'ezra' })
    clock.advance(61_000)
    await w.deadman.checkNow()
    await w.deadman.checkNow()
    const rows = readRows(w.dbPath)
    expect(rows).toHaveLength(1)
    expect(rows[0]).toMatchObject({ agent_name: 'ezra', model: 'unknown', status: 'rollback' })
    expect(rows[0]!.error_message).toBe('rollback of agent ezra failed after 61 s of silence (max 60 s): rollback_command exited 3')
    expect(readRollbackFacts(w.dbPath)[0]).toMatchObject({ exit_status: 3, timed_out: 0, output: 'no such branch' })
    expect(await agentState(w, 'ezra')).toMatchObject({ state: 'late', last_rollback: { exit_status: 3 } })
  })

  test("the command inherits witness's environment without witness's own credentials (a hook a rollback's git runs in an agent's checkout cannot read them), and what it prints is redacted all the same", async () => {
    const secret = 'gitea-deploy-token-9f8e7d6c5b4a'
    const seen = join(tempDir(), 'env.txt')
    const clock = manualClock()
    const w = await suite.start(
      simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, {
        // A provider's key may sit in a variable not named like one (api_key_env: MOONSHOT_AUTH).
        providers: { moonshot: { type: 'openai', base_url: `${suite.sim.url}/v1`, api_key_env: 'MOONSHOT_AUTH' } },
        deadman: { agents: { ezra: { max_silence_s: 60, rollback_command: `env > ${seen}; echo "pushing with $SYNC_TOKEN for agent $WITNESS_AGENT"; echo "key=$MIMO_API_KEY auth=$MOONSHOT_AUTH" >&2; printf '\\033]0;pwned\\007done\\n'; exit 1` } } },
      }),
      { clock, env: { ...env, SYNC_TOKEN: secret, MIMO_API_KEY: 'mimo-key-abcdef0123456789', MOONSHOT_AUTH: 'mspk0123456789abcdef', WITNESS_TOKEN: 'wit_operator_0123456789', FLEET_SITE: 'forge-01' } },
    )
    await beat(w, { agent: 'ezra' })
    clock.advance(61_000)
    await w.deadman.checkNow()
    const inherited = readFileSync(seen, 'utf8').split('\n')
    // witness's own: the providers' keys (a preset's, the config's api_key_env) and its tokens.
    expect(inherited.filter((line) => /^(MIMO_API_KEY|MOONSHOT_AUTH|WITNESS_TOKEN)=/.test(line))).toEqual([])
    // The rest of the environment goes, a command's own credential too (its value is cut from what it prints).
    expect(inherited).toContain('FLEET_SITE=forge-01')
    expect(inherited).toContain(`SYNC_TOKEN=${secret}`)
    expect(inherited).toContain('WITNESS_AGENT=ezra')
    expect(inherited.some((line) => line.startsWith('PATH='))).toBe(true)
    const { output } = readRollbackFacts(w.dbPath)[0]!
    expect(output).toContain('pushing with ')
    expect(output).not.toContain(secret)
    expect(output).not.toContain('mimo-key-abcdef0123456789')
    expect(output).toContain('auth=')
    expect(output).not.toContain('mspk0123456789abcdef')
    expect(output).toContain('for agent ezra') // what is not a secret is left alone
    expect(output).toContain('\ufffd]0;pwned\ufffddone') // nor control characters (a hook's output too)
  })

  test('a hanging rollback_command is killed at command_timeout_s and recorded as timed out', async () => {
    const { w, clock } = await witness({ command_timeout_s: 0.3, agents: { allegro: { max_silence_s: 60, rollback_command: 'echo started; sleep 30; echo never' } } })
    await beat(w, { agent: 'allegro', config_hash: 'h1' })
    clock.advance(61_000)
    await w.deadman.checkNow()
    const [row] = readRows(w.dbPath)
    expect(row!.error_message).toBe('rollback of agent allegro failed after 61 s of silence (max 60 s): rollback_command timed out after 0.3 s (killed)')
    expect(readRollbackFacts(w.dbPath)[0]).toMatchObject({ exit_status: null, timed_out: 1, output: 'started' })
  })

  test("an agent named like an object's own member (toString) that beats is not taken for a watched one", async () => {
    const { w } = await witness({ agents: { ghost: { max_silence_s: 30 } } })
    await beat(w, { agent: 'toString', config_hash: 'h1' })
    expect(await agentState(w, 'toString')).toMatchObject({ state: 'ok', watched: false })
  })

  test('an agent not listed that has not beaten for retention.keep_days is forgotten, in memory and in the file; a listed one and a recent one stay; its next beat records it afresh', async () => {
    const { w, clock } = await witness({ agents: { bezalel: { max_silence_s: 100 * 86_400 } } })
    const stored = () => {
      const db = new Database(w.dbPath, { readonly: true })
      try {
        return (db.query('SELECT agent FROM deadman_agent ORDER BY agent').values() as [string][]).map((r) => r[0])
      } finally {
        db.close()
      }
    }
    const listed = async () => ((await (await fetch(`${w.url}/deadman`)).json()) as { agents: { agent: string }[] }).agents.map((a) => a.agent)
    // In open mode callers name themselves: one name per run, say.
    for (const agent of ['bezalel', 'run-1', 'run-2']) await beat(w, { agent, config_hash: 'abc123' })
    clock.advance(29 * 86_400_000)
    await beat(w, { agent: 'run-2', config_hash: 'abc123' })
    await w.deadman.checkNow()
    expect(await listed()).toEqual(['bezalel', 'run-1', 'run-2'])

    clock.advance(86_400_000 + 60_000) // run-1 and bezalel are 30 days and a minute silent (keep_days: 30), run-2 a day
    await w.deadman.checkNow()
    expect(await listed()).toEqual(['bezalel', 'run-2'])
    expect(stored()).toEqual(['bezalel', 'run-2'])
    // Nothing of it is kept in memory either (a fleet naming agents per run would grow it for good).
    const watch = (w.deadman as unknown as { agents: Record<'records' | 'beatAt' | 'beatCount', Map<string, unknown>> }).agents
    for (const held of [watch.records, watch.beatAt, watch.beatCount]) expect([...held.keys()].sort()).toEqual(['bezalel', 'run-2'])

    expect(await (await beat(w, { agent: 'run-1', config_hash: 'def456' })).json()).toMatchObject({ state: 'ok', config_hash: 'def456', previous_config_hash: null })
    expect(await listed()).toEqual(['bezalel', 'run-1', 'run-2'])
    expect(stored()).toEqual(['bezalel', 'run-1', 'run-2'])
  })

  test(`past ${MAX_UNLISTED_AGENTS} agents not listed, the longest silent are forgotten too: a caller naming itself anew each session does not grow GET /deadman for keep_days`, async () => {
    const { w, clock } = await witness({ agents: { bezalel: { max_silence_s: 100 * 86_400 } } })
    await beat(w, { agent: 'bezalel' })
    for (let i = 0; i < MAX_UNLISTED_AGENTS + 5; i++) {
      await beat(w, { agent: `session-${String(i).padStart(4, '0')}` })
      clock.advance(1_000)
    }
    await w.deadman.checkNow()
    const listed = ((await (await fetch(`${w.url}/deadman`)).json()) as { agents: { agent: string }[] }).agents.map((a) => a.agent)
    expect(listed).toHaveLength(MAX_UNLISTED_AGENTS + 1)
    // The listed agent stays, however long silent; of the rest, the five that beat first went.
    expect(listed).toContain('bezalel')
    expect(listed.filter((a) => a < 'session-0005' && a.startsWith('session-'))).toEqual([])
    const db = new Database(w.dbPath, { readonly: true })
    expect((db.query('SELECT count(*) AS n FROM deadman_agent').get() as { n: number }).n).toBe(MAX_UNLISTED_AGENTS + 1)
    db.close()
  }, 60_000)

  test('an agent that never beat is silent from the router\'s start; one without a rollback_command is only alerted on', async () => {
    const dir = tempDir()
    const alerts = join(dir, 'alerts')
    const { w, clock } = await witness(
      { alert_command: `printf '%s|%s\\n' "$1" "$WITNESS_ALERT" >> ${alerts}`, agents: { ghost: { max_silence_s: 30 }, quiet: { max_silence_s: 30, rollback_command: 'true' } } },
      { dir },
    )
    expect(await agentState(w, 'ghost')).toMatchObject({ state: 'ok', last_beat_at: null, watched: true })
    clock.advance(31_000)
    await w.deadman.checkNow()
    await w.deadman.checkNow()
    const said = lines(alerts).sort()
    expect(said).toHaveLength(2)
    expect(said[0]).toBe('agent ghost silent for 31 s (max 30 s); no rollback_command configured|agent ghost silent for 31 s (max 30 s); no rollback_command configured')
    expect(said[1]).toStartWith('rolled back agent quiet (config unknown) after 31 s of silence (max 30 s): rollback_command exited 0|')
    expect(readRows(w.dbPath).map((r) => r.agent_name)).toEqual(['quiet'])
    expect(await agentState(w, 'ghost')).toMatchObject({ state: 'late', last_rollback: null })
  })

  test('heartbeats and episodes survive a restart: a rolled-back agent is not rolled back again', async () => {
    const dir = tempDir()
    const marker = join(dir, 'runs')
    const clock = manualClock()
    const deadman = { agents: { bezalel: { max_silence_s: 60, rollback_command: `echo run >> ${marker}` } } }
    const first = (await witness(deadman, { dir, clock })).w
    await beat(first, { agent: 'bezalel', config_hash: 'abc' })
    await beat(first, { agent: 'visitor', config_hash: 'v1' })
    clock.advance(61_000)
    await first.deadman.checkNow()
    await first.stop(0)

    clock.advance(120_000)
    const second = (await witness(deadman, { dir, clock })).w
    await second.deadman.checkNow()
    expect(lines(marker)).toEqual(['run'])
    expect(await agentState(second, 'bezalel')).toMatchObject({ state: 'rolled_back', config_hash: 'abc', watched: true })
    expect(await agentState(second, 'visitor')).toMatchObject({ state: 'ok', config_hash: 'v1', watched: false, max_silence_s: null })
  })

  test('silence is counted from the router\'s own start, since agents cannot beat to a router that is down', async () => {
    const dir = tempDir()
    const marker = join(dir, 'runs')
    const clock = manualClock()
    const deadman = { agents: { bezalel: { max_silence_s: 60, rollback_command: `echo run >> ${marker}` } } }
    const first = (await witness(deadman, { dir, clock })).w
    await beat(first, { agent: 'bezalel' })
    await first.stop(0)
    clock.advance(3_600_000) // witness was down for an hour
    const second = (await witness(deadman, { dir, clock })).w
    await second.deadman.checkNow()
    expect(lines(marker)).toEqual([])
    clock.advance(61_000)
    await second.deadman.checkNow()
    expect(lines(marker)).toEqual(['run'])
  })

  test('a stop waits (within its grace) for a rollback_command to end and records it; one cut off is recorded by the next start', async () => {
    const dir = tempDir()
    const clock = manualClock()
    /** A router whose agent falls silent and is being rolled back (`command`) when it is stopped with `graceMs`. */
    const stoppedDuringRollback = async (agent: string, command: string, graceMs: number) => {
      const { w } = await witness({ agents: { [agent]: { max_silence_s: 60, rollback_command: command } } }, { dir, clock })
      clock.advance(61_000)
      const check = w.deadman.checkNow()
      await Bun.sleep(100)
      await w.stop(graceMs)
      await check
      return w
    }
    const first = await stoppedDuringRollback('bezalel', 'sleep 0.3; echo done', 5_000)
    expect(readRollbackFacts(first.dbPath).map((f) => [f.exit_status, f.output])).toEqual([[0, 'done']])

    // Cut off: the stop's grace ends while the command runs, and its row is never written by that run.
    const slow = { agents: { ezra: { max_silence_s: 60, rollback_command: 'sleep 1; echo done' } } }
    const second = await stoppedDuringRollback('ezra', 'sleep 1; echo done', 0)
    expect(readRollbackFacts(second.dbPath).map((f) => f.agent)).toEqual(['bezalel'])
    const third = (await witness(slow, { dir, clock })).w
    expect(await agentState(third, 'ezra')).toMatchObject({ state: 'rolling_back' })
    await third.deadman.checkNow()
    const facts = readRollbackFacts(third.dbPath).find((f) => f.agent === 'ezra')!
    expect(facts).toMatchObject({ exit_status: null, output: null, command: 'rollback_command' })
    expect(facts.reason).toContain('outcome unknown, witness stopped while its rollback_command ran')
    expect(await agentState(third, 'ezra')).toMatchObject({ state: 'late' })
    // Recorded once: later checks add nothing.
    await third.deadman.checkNow()
    expect(readRollbackFacts(third.dbPath).filter((f) => f.agent === 'ezra')).toHaveLength(1)

    // Killed between a rollback's row and the state after it: the row is there, the state still says rolling_back.
    await third.stop(0)
    const db = new Database(third.dbPath)
    db.run("UPDATE deadman_agent SET state = 'rolling_back', last_rollback_log_id = NULL WHERE agent = 'bezalel'")
    db.close()
    const fourth = (await witness({ agents: { bezalel: { max_silence_s: 60, rollback_command: 'echo again' } } }, { dir, clock })).w
    await fourth.deadman.checkNow()
    expect(readRollbackFacts(fourth.dbPath).filter((f) => f.agent === 'bezalel')).toHaveLength(1)
    expect(await agentState(fourth, 'bezalel')).toMatchObject({ state: 'rolled_back' })
  })

  test('a rollback whose row the database refused (locked past its budget) is written by a later check, once; meanwhile the alert says so', async () => {
    const dir = tempDir()
    const [marker, alerts] = [join(dir, 'runs'), join(dir, 'alerts')]
    const clock = manualClock()
    const deadman = { alert_command: `echo "$1" >> ${alerts}`, agents: { ezra: { max_silence_s: 60, rollback_command: `echo run >> ${marker}; sleep 0.5` } } }
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman, database_busy_timeout_ms: 200 }), { clock, env, dir })
    clock.advance(61_000)
    const check = w.deadman.checkNow()
    for (let i = 0; i < 300 && lines(marker).length === 0; i++) await Bun.sleep(10)
    const lock = await holdWriteLock(w.dbPath)
    try {
      await check
      expect(readRows(w.dbPath)).toEqual([])
      expect(lines(alerts)).toEqual([expect.stringMatching(/^rolled back agent ezra \(config unknown\) after 61 s of silence \(max 60 s\): rollback_command exited 0; NOT RECORDED yet \(.*locked.*\): tried again at each check$/)])
      expect(await agentState(w, 'ezra')).toMatchObject({ state: 'rolling_back' })
    } finally {
      await lock.release()
    }
    await w.deadman.checkNow()
    await w.deadman.checkNow()
    expect(lines(marker)).toEqual(['run'])
    const rows = readRows(w.dbPath)
    expect(rows.map((row) => [row.agent_name, row.status, row.error_message])).toEqual([['ezra', 'rollback', 'rolled back agent ezra (config unknown) after 61 s of silence (max 60 s): rollback_command exited 0']])
    expect(await agentState(w, 'ezra')).toMatchObject({ state: 'rolled_back', last_rollback: { log_id: rows[0]!.id } })
  })

  test('an agent that beats while its rollback_command runs, the router then killed: the next start records that rollback', async () => {
    const dir = tempDir()
    const marker = join(dir, 'runs')
    const clock = manualClock()
    const deadman = { agents: { slow: { max_silence_s: 60, rollback_command: `echo run >> ${marker}; sleep 2` } } }
    const first = (await witness(deadman, { dir, clock })).w
    clock.advance(61_000)
    void first.deadman.checkNow()
    for (let i = 0; i < 300 && lines(marker).length === 0; i++) await Bun.sleep(10)
    expect((await beat(first, { agent: 'slow', config_hash: 'b2' })).status).toBe(200)
    // The state in the file as a kill -9 now would leave it: the beat has not ended the rollback's record.
    const db = new Database(first.dbPath, { readonly: true })
    expect(db.query("SELECT state FROM deadman_agent WHERE agent = 'slow'").get()).toEqual({ state: 'rolling_back' })
    db.close()
    const copy = tempDir()
    const { copyFileSync } = await import('node:fs')
    for (const file of ['witness.db', 'witness.db-wal']) if (existsSync(join(dir, file))) copyFileSync(join(dir, file), join(copy, file))
    await first.stop(0)
    const second = (await witness(deadman, { dir: copy, clock })).w
    // It beat while the command ran: that ended the episode, so once the rollback is recorded it is ok, not late.
    await second.deadman.checkNow()
    const facts = readRollbackFacts(second.dbPath)
    expect(facts.map((f) => [f.agent, f.exit_status])).toEqual([['slow', null]])
    expect(facts[0]!.reason).toContain('outcome unknown, witness stopped while its rollback_command ran')
    expect(lines(marker)).toEqual(['run'])
    expect(await agentState(second, 'slow')).toMatchObject({ state: 'ok' })
  })

  test('beats of one agent arriving together are taken in turn: the config hash each replaced is kept', async () => {
    const { w } = await witness({})
    await beat(w, { agent: 'racer', config_hash: 'base1' })
    const [p, q] = await Promise.all([beat(w, { agent: 'racer', config_hash: 'p1' }), beat(w, { agent: 'racer', config_hash: 'q1' })])
    expect([p.status, q.status]).toEqual([200, 200])
    const state = await agentState(w, 'racer')
    // Whichever came last, the one before it is its previous hash, not base1.
    expect([state.config_hash, state.previous_config_hash].sort()).toEqual(['p1', 'q1'])
  })

  test("one agent's slow rollback_command does not hold up the periodic check of the others", async () => {
    const dir = tempDir()
    const marker = join(dir, 'runs')
    const clock = manualClock()
    const deadman = {
      agents: {
        slow: { max_silence_s: 60, rollback_command: `echo slow >> ${marker}; sleep 1.5; echo slow-done >> ${marker}` },
        quick: { max_silence_s: 120, rollback_command: `echo quick >> ${marker}` },
      },
    }
    const { w } = await witness(deadman, { dir, clock })
    clock.advance(61_000)
    await w.deadman.checkNow(false)
    for (let i = 0; i < 300 && lines(marker).length === 0; i++) await Bun.sleep(10)
    clock.advance(60_000)
    await w.deadman.checkNow(false)
    for (let i = 0; i < 300 && lines(marker).length < 2; i++) await Bun.sleep(10)
    expect(lines(marker)).toEqual(['slow', 'quick'])
    // A check while slow's command runs does not start it again.
    await w.deadman.checkNow(false)
    await w.deadman.idle()
    expect(lines(marker)).toEqual(['slow', 'quick', 'slow-done'])
    expect(readRows(w.dbPath).map((row) => row.agent_name).sort()).toEqual(['quick', 'slow'])
  })

  test('a stop past its grace kills the rollback_command still running; the next start records it', async () => {
    const dir = tempDir()
    const [pidFile, marker] = [join(dir, 'shell'), join(dir, 'runs')]
    const clock = manualClock()
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0)
        return true
      } catch {
        return false
      }
    }
    const held = { command_timeout_s: 60, agents: { long: { max_silence_s: 60, rollback_command: `echo $$ > ${pidFile}; echo run >> ${marker}; sleep 30` } } }
    const first = (await witness(held, { dir, clock })).w
    clock.advance(61_000)
    void first.deadman.checkNow()
    for (let i = 0; i < 300 && lines(marker).length === 0; i++) await Bun.sleep(10)
    const shell = Number(readFileSync(pidFile, 'utf8'))
    await first.stop(0)
    for (let i = 0; i < 300 && alive(shell); i++) await Bun.sleep(10)
    expect(alive(shell)).toBe(false)
    const second = (await witness(held, { dir, clock })).w
    await second.deadman.checkNow()
    expect(readRollbackFacts(second.dbPath).map((f) => [f.agent, f.exit_status])).toEqual([['long', null]])
    expect(lines(marker)).toEqual(['run'])
  })

  test("a beat while the state after a rollback waits for the database: the beat is not lost, and the agent ends ok, not rolling_back", async () => {
    const dir = tempDir()
    const marker = join(dir, 'runs')
    // The alert (sent between the row and the state after it) leaves another process holding the
    // write lock for a moment, so the state's save waits for it, and a beat comes meanwhile.
    const { command: holdLock, locked } = lockingAlert(dir, 0.6)
    const deadman = { alert_command: holdLock, agents: { racer: { max_silence_s: 60, rollback_command: `echo run >> ${marker}` } } }
    const { w, clock } = await witness(deadman, { dir })
    clock.advance(61_000)
    const check = w.deadman.checkNow()
    for (let i = 0; i < 500 && !lines(locked).includes('locked'); i++) await Bun.sleep(10)
    expect((await beat(w, { agent: 'racer', config_hash: 'c2' })).status).toBe(200)
    await check
    await w.deadman.idle()
    expect(await agentState(w, 'racer')).toMatchObject({ state: 'ok', config_hash: 'c2' })
    const db = new Database(w.dbPath, { readonly: true })
    expect(db.query("SELECT state, config_hash, silence_handled FROM deadman_agent WHERE agent = 'racer'").get()).toEqual({ state: 'ok', config_hash: 'c2', silence_handled: 0 })
    db.close()
    expect(readRows(w.dbPath).filter((row) => row.status === 'rollback')).toHaveLength(1)
    expect(lines(marker)).toEqual(['run'])
  })

  test('the state after a rollback refused by the database (locked past its budget) is saved at a later check: the agent does not stay rolling_back', async () => {
    const dir = tempDir()
    const marker = join(dir, 'runs')
    // Held until 3 s after the command began: a loaded machine may take a second to start the holder (Bun).
    const { command: holdLock } = lockingAlert(dir, 3)
    const deadman = { alert_command: holdLock, agents: { racer: { max_silence_s: 60, rollback_command: `echo run >> ${marker}` } } }
    const clock = manualClock()
    const w = await suite.start(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman, database_busy_timeout_ms: 200 }), { clock, env, dir })
    clock.advance(61_000)
    await w.deadman.checkNow()
    expect(await agentState(w, 'racer')).toMatchObject({ state: 'rolling_back' })
    for (let i = 0; i < 600 && (await agentState(w, 'racer')).state === 'rolling_back'; i++) {
      await Bun.sleep(20)
      await w.deadman.checkNow()
    }
    expect(await agentState(w, 'racer')).toMatchObject({ state: 'rolled_back' })
    expect(readRows(w.dbPath).filter((row) => row.status === 'rollback')).toHaveLength(1)
    expect(lines(marker)).toEqual(['run'])
  })

  test('a beat during the rollback_command ends the episode though the wall clock shows the same millisecond as the beat before the silence', async () => {
    const dir = tempDir()
    const marker = join(dir, 'runs')
    let mono = 0
    const wall = Date.parse('2026-11-25T12:00:00.000Z')
    const clock = { now: () => wall, monotonic: () => mono, advance: (ms: number) => void (mono += ms) }
    const { w } = await witness({ agents: { still: { max_silence_s: 60, rollback_command: `echo run >> ${marker}; sleep 0.3` } } }, { clock, dir })
    await beat(w, { agent: 'still' })
    mono += 61_000
    void w.deadman.checkNow()
    for (let i = 0; i < 300 && lines(marker).length === 0; i++) await Bun.sleep(10)
    await beat(w, { agent: 'still' })
    await w.deadman.idle()
    expect(await agentState(w, 'still')).toMatchObject({ state: 'ok' })
  })

  test('an agent a reload adds to deadman.agents is counted silent from that reload, not from the router\'s start', async () => {
    const dir = tempDir()
    const marker = join(dir, 'runs')
    const clock = manualClock()
    const { w } = await witness({}, { clock, dir })
    clock.advance(2 * 86_400_000) // the router has run for two days without watching bezalel
    writeConfigFile(w.configPath, simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman: { agents: { bezalel: { max_silence_s: 300, rollback_command: `echo run >> ${marker}` } } } }))
    expect((await w.post('/admin/reload', '')).status).toBe(200)
    await w.deadman.checkNow()
    expect(lines(marker)).toEqual([])
    expect(await agentState(w, 'bezalel')).toMatchObject({ state: 'ok', silence_s: 0 })
    clock.advance(301_000)
    await w.deadman.checkNow()
    expect(lines(marker)).toEqual(['run'])
  })
})

describe('the periodic check', () => {
  test('runs every check_every_s when switched on, catching a silent agent without anyone asking', async () => {
    const dir = tempDir()
    const marker = join(dir, 'runs')
    const deadman = { check_every_s: 0.02, agents: { bezalel: { max_silence_s: 0.05, rollback_command: `echo run >> ${marker}` } } }
    const w = await startWitness(simConfig(suite.sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { deadman }), { env, dir, background: true })
    try {
      await beat(w, { agent: 'bezalel' })
      for (let i = 0; i < 200 && lines(marker).length === 0; i++) await Bun.sleep(10)
      expect(lines(marker)).toEqual(['run'])
    } finally {
      await w.stop(0)
    }
  })
})

describe('POST /heartbeat', () => {
  test('bad bodies get a 400 naming what is wrong, and record nothing', async () => {
    const { w } = await witness({})
    const cases: [unknown, string][] = [
      ['{"agent": "bezalel",', 'not valid JSON'],
      ['["bezalel"]', 'must be a JSON object'],
      [{}, 'no agent named'],
      [{ agent: 'has spaces' }, 'agent names are'],
      [{ agent: 'bezalel', config_hash: 42 }, 'config_hash'],
      [{ agent: 'bezalel', config_hash: 'with space' }, 'config_hash'],
    ]
    for (const [body, message] of cases) {
      const res = await beat(w, body)
      expect(res.status, JSON.stringify(body)).toBe(400)
      const { error } = await res.json()
      expect(error.type).toBe('invalid_request')
      expect(error.message).toContain(message)
    }
    const mismatch = await beat(w, { agent: 'bezalel' }, { 'x-agent-name': 'ezra' })
    expect(mismatch.status).toBe(400)
    expect((await (await fetch(`${w.url}/deadman`)).json()).agents).toEqual([])
  })

  test('the agent may be named by the X-Agent-Name header', async () => {
    const { w } = await witness({})
    const res = await beat(w, { config_hash: 'c1' }, { 'x-agent-name': 'ezra' })
    expect(await res.json()).toMatchObject({ status: 'ok', agent: 'ezra', config_hash: 'c1', watched: false })
  })
})

describe('GET /deadman', () => {
  test('lists each watched agent with last beat, silence, state, config hash and last rollback, and the router\'s own config', async () => {
    const { w, clock } = await witness({ name: 'witness-east', agents: { bezalel: { max_silence_s: 60 }, ezra: { max_silence_s: 600 } } })
    await beat(w, { agent: 'bezalel', config_hash: 'b1' })
    const beatAt = new Date(clock.now()).toISOString()
    clock.advance(90_000)
    const body = await (await fetch(`${w.url}/deadman`)).json()
    expect(body.router).toEqual({ name: 'witness-east', config_path: w.configPath, config_hash: w.config().hash, last_known_good: null })
    expect(body.agents).toEqual([
      { agent: 'bezalel', watched: true, state: 'late', last_beat_at: beatAt, silence_s: 90, max_silence_s: 60, config_hash: 'b1', config_hash_since: beatAt, previous_config_hash: null, last_rollback: null },
      { agent: 'ezra', watched: true, state: 'ok', last_beat_at: null, silence_s: 90, max_silence_s: 600, config_hash: null, config_hash_since: null, previous_config_hash: null, last_rollback: null },
    ])
  })
})

describe('many agents heard (named per run)', () => {
  test('GET /deadman lists every one with its last rollback; the dashboard panel the watched ones and the 100 heard from last, saying how many more', async () => {
    const { w, clock } = await witness({ agents: { bezalel: { max_silence_s: 300 } } })
    for (let i = 0; i < 105; i++) {
      await beat(w, { agent: `run-${String(i).padStart(3, '0')}` })
      clock.advance(1_000)
    }
    expect((await w.post('/deadman/rollback', { agent: 'run-104', old_config_hash: 'aaa', new_config_hash: 'bbb', reason: 'by hand' })).status).toBe(201)
    expect((await w.post('/deadman/rollback', { agent: 'run-104', old_config_hash: 'bbb', new_config_hash: 'ccc', reason: 'again' })).status).toBe(201)
    const all = (await (await fetch(`${w.url}/deadman`)).json()) as { agents: { agent: string; last_rollback: { new_config_hash: string } | null }[] }
    expect(all.agents).toHaveLength(106)
    expect(all.agents.find((a) => a.agent === 'run-104')?.last_rollback).toMatchObject({ new_config_hash: 'ccc' })
    expect(all.agents.filter((a) => a.last_rollback !== null).map((a) => a.agent)).toEqual(['run-104'])
    const panel = await (await fetch(`${w.url}/dashboard/deadman`)).text()
    const shown = [...panel.matchAll(/data-agent="([^"]+)"/g)].map((m) => m[1])
    expect(shown).toEqual(['bezalel', ...Array.from({ length: 100 }, (_, i) => `run-${String(i + 5).padStart(3, '0')}`)])
    expect(panel).toContain('data-hidden-agents="5"')
    expect(panel).toContain('again')
  })
})

describe('POST /deadman/rollback', () => {
  test('records a rollback an external watchdog performed: 201 with the row\'s id', async () => {
    const { w } = await witness({})
    const res = await w.post('/deadman/rollback', { agent: 'bezalel', old_config_hash: '3f2a1b2c9d', new_config_hash: '9c1d0e4f77', reason: 'after 3 failed health checks (connection refused)' })
    expect(res.status).toBe(201)
    const { log_id } = await res.json()
    const [row] = readRows(w.dbPath)
    expect(row).toMatchObject({ id: log_id, agent_name: 'bezalel', provider: 'deadman', model: '9c1d0e4f77', endpoint: 'watchdog', status: 'rollback' })
    expect(row!.error_message).toBe('rolled back config 3f2a1b2c9d → 9c1d0e4f77 after 3 failed health checks (connection refused)')
    expect(readRollbackFacts(w.dbPath)[0]).toMatchObject({ log_id, old_config_hash: '3f2a1b2c9d', new_config_hash: '9c1d0e4f77', recorded_by: 'endpoint', command: null })
  })

  test("a reported rollback is the agent's last rollback in GET /deadman, as one the switch ran itself would be", async () => {
    const { w } = await witness({ agents: { bezalel: { max_silence_s: 300 } } })
    expect((await beat(w, { agent: 'bezalel', config_hash: '3f2a1b2c9d' })).status).toBe(200)
    expect(await agentState(w, 'bezalel')).toMatchObject({ last_rollback: null })
    const res = await w.post('/deadman/rollback', { agent: 'bezalel', old_config_hash: '3f2a1b2c9d', new_config_hash: '9c1d0e4f77', reason: 'after 3 failed health checks' })
    const { log_id } = await res.json()
    expect(await agentState(w, 'bezalel')).toMatchObject({ last_rollback: { log_id, old_config_hash: '3f2a1b2c9d', new_config_hash: '9c1d0e4f77', recorded_by: 'endpoint' } })
  })

  test('a rollback reported twice with its rollback_id is one row: the second report gets 200 and the first row\'s id', async () => {
    const { w } = await witness({})
    const report = { agent: 'witness', old_config_hash: '3f2a1b2c9d', new_config_hash: '9c1d0e4f77', reason: 'after 3 failed health checks', rollback_id: '01a24ab0-ebbf-774c-815f-22a94456a63f' }
    const first = await w.post('/deadman/rollback', report)
    expect(first.status).toBe(201)
    const { log_id } = await first.json()
    const again = await w.post('/deadman/rollback', report)
    expect(again.status).toBe(200)
    expect(await again.json()).toEqual({ log_id, already_recorded: true })
    expect(readRows(w.dbPath)).toHaveLength(1)
    expect(readRollbackFacts(w.dbPath)[0]).toMatchObject({ log_id, rollback_id: report.rollback_id })
    expect((await w.post('/deadman/rollback', { ...report, rollback_id: 'not an id!' })).status).toBe(400)
  })

  test('bad bodies get a 400 with the path of each problem', async () => {
    const { w } = await witness({})
    const res = await w.post('/deadman/rollback', { agent: 'bezalel', old_config_hash: 5, reason: '' })
    expect(res.status).toBe(400)
    const { error } = await res.json()
    expect(error.issues.map((i: { path: string }) => i.path).sort()).toEqual(['new_config_hash', 'old_config_hash', 'reason'])
    expect(readRows(w.dbPath)).toEqual([])
  })
})
