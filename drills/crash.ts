/**
 * The crash drill: concurrent clients on every inference API (streaming
 * and not, with fallbacks) against an upstream with random latency, while
 * `witness serve` is killed with SIGKILL at random moments and restarted.
 * After each restart and at the end: every 200 a client received has its
 * rows, with the log ids it was given, finished as `success`; no id was
 * given twice; no row is left `pending` once the restart's recovery ran;
 * nothing reached the upstream without a row (each upstream request
 * carries its log id, which must be in the table).
 */
import { between, freshSeed, seededRandom } from '../src/sim/random.ts'
import { startSimulator } from '../src/sim/server.ts'
import { type CallResult, type CallSpec, call } from './support/client.ts'
import { checkNothingPending, checkOneOutcomePerRequest, checkResponses, checkUpstream, readSnapshot, type UpstreamCall, upstreamCalls } from './support/ledger.ts'
import { Counts, type DrillResult, type DrillSize, runDrill } from './support/result.ts'
import { drillDir } from './support/temp.ts'
import { type WitnessProcess, startWitnessProcess, writeDrillConfig } from './support/witness-process.ts'

const SIZES = {
  small: { kills: 3, clients: 6, upMs: [150, 500] },
  full: { kills: 25, clients: 16, upMs: [200, 1200] },
} as const

/** What the clients send, picked at random per request. */
const MIX: Omit<CallSpec, 'agent' | 'deadlineMs'>[] = [
  { api: 'infer', stream: false, chain: 'default' },
  { api: 'infer', stream: true, chain: 'slowstream' },
  { api: 'chat', stream: false, chain: 'default' },
  { api: 'chat', stream: true, chain: 'slowstream' },
  { api: 'messages', stream: false, chain: 'ant' },
  { api: 'messages', stream: true, chain: 'ant' },
  { api: 'infer', stream: false, chain: 'fallback' },
]

function crashConfig(simUrl: string): Record<string, unknown> {
  return {
    providers: {
      sim: { type: 'openai', base_url: `${simUrl}/v1` },
      sim2: { type: 'openai', base_url: `${simUrl}/v1` },
      simant: { type: 'anthropic', base_url: `${simUrl}/v1` },
    },
    chains: {
      default: [{ provider: 'sim', model: 'm+latency-1-50' }],
      slowstream: [{ provider: 'sim', model: 'm+latency-1-20+chunks-6+chunk-delay-15' }],
      ant: [{ provider: 'simant', model: 'c+latency-1-50' }],
      fallback: [{ provider: 'sim', model: 'f+status-503', retries: 0 }, { provider: 'sim2', model: 'm+latency-1-30' }],
    },
    policy: { backoff_min_ms: 5, backoff_max_ms: 20, cooldown_failures: 1_000_000 },
  }
}

export interface CrashOptions {
  seed?: number
}

export function crashDrill(size: DrillSize, options: CrashOptions = {}): Promise<DrillResult> {
  const seed = options.seed ?? freshSeed()
  const { kills, clients, upMs } = SIZES[size]
  return runDrill('crash', size, seed, async (ctx) => {
    const { problems, counts } = ctx
    const dir = drillDir('crash', ctx)
    const random = seededRandom(seed)
    const sim = startSimulator({ seed, keep: 10_000_000 })
    ctx.cleanup(() => sim.stop())
    const configPath = writeDrillConfig(dir, crashConfig(sim.url))
    let server: WitnessProcess = await startWitnessProcess(configPath, ctx)
    const responses: CallResult[] = []
    let loading = true

    const client = async (i: number) => {
      const pick = seededRandom(seed + i + 1)
      while (loading) {
        const spec = MIX[between(pick, 0, MIX.length - 1)]!
        const result = await call(server.url, { ...spec, agent: `crash-${i}`, deadlineMs: 15_000 })
        if (result.ending === 'refused') {
          counts.add('requests refused while the server was down')
          await Bun.sleep(25)
        } else {
          responses.push(result)
          counts.add('requests answered or cut')
          if (result.status === 200 && result.ending === 'complete') counts.add('200 answers')
        }
      }
    }

    /** The checks that hold at any moment: upstream first, then responses, then rows (rows are read last, so they include everything the others saw). */
    const checkSoFar = (pendingUpTo: number) => {
      const calls = upstreamCalls(sim, 'sim')
      const done = [...responses]
      const snap = readSnapshot(server.dbPath)
      const scratch = new Counts()
      checkResponses(done, snap, problems, scratch)
      checkUpstream(calls, snap, problems, scratch)
      checkNothingPending(snap, problems, pendingUpTo)
    }

    const load = Array.from({ length: clients }, (_, i) => client(i))
    try {
      for (let k = 0; k < kills; k++) {
        await Bun.sleep(between(random, upMs[0], upMs[1]))
        await server.kill('SIGKILL')
        counts.add('kills (SIGKILL)')
        const atKill = readSnapshot(server.dbPath)
        const lastId = Math.max(0, ...atKill.rows.keys())
        counts.add('rows pending at a kill', [...atKill.rows.values()].filter((r) => r.status === 'pending').length)
        server = await startWitnessProcess(configPath, ctx)
        counts.add('restarts')
        // The restart finished the previous run's pending rows before it listened.
        checkSoFar(lastId)
      }
      await Bun.sleep(between(random, upMs[0], upMs[1]))
    } finally {
      loading = false
      await Promise.all(load)
    }

    // Every client has its answer; let the server finish what it still owns.
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline && [...readSnapshot(server.dbPath).rows.values()].some((r) => r.status === 'pending')) await Bun.sleep(50)
    const calls = upstreamCalls(sim, 'sim')
    const snap = readSnapshot(server.dbPath)
    checkResponses(responses, snap, problems, counts)
    checkUpstream(calls, snap, problems, counts)
    counts.set('rows checked for pending', checkNothingPending(snap, problems))
    checkOneOutcomePerRequest(snap, problems, counts)
    counts.set('rows in the database', snap.rows.size)
    counts.set('upstream requests', calls.length)
    const recovered = (c: UpstreamCall) => snap.rows.get(c.logId!)?.error_message?.startsWith('router stopped before the call finished') === true
    counts.set('upstream calls cut off by a kill (row recovered at restart)', calls.filter((c) => c.aborted && recovered(c)).length)
    const code = await server.kill('SIGTERM')
    problems.check(code === 0, () => `witness exited ${code} on SIGTERM; log:\n${server.logTail()}`)
  })
}
