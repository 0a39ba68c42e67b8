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
import { between, seededRandom } from '../src/sim/random.ts'
import { simConfig } from '../test/support/witness.ts'
import { type CallResult, type CallSpec, call, everyApi } from './support/client.ts'
import { runDrill } from './support/drill.ts'
import { checkNothingPending, checkOneOutcomePerRequest, checkResponses, checkUpstream, readSnapshot, settledRows, type UpstreamCall, upstreamCalls } from './support/ledger.ts'
import { Counts, type DrillOptions, type DrillResult, type DrillSize } from './support/result.ts'
import { type WitnessProcess, startWitnessProcess, writeDrillConfig } from './support/witness-process.ts'

const SIZES = {
  small: { kills: 3, clients: 6, upMs: [150, 500] },
  full: { kills: 25, clients: 16, upMs: [200, 1200] },
} as const

/** What the clients send, picked at random per request: every API and mode, and a chain that falls back. */
const MIX: Pick<CallSpec, 'api' | 'stream' | 'chain'>[] = [
  ...everyApi((api, stream) => (api === 'messages' ? 'ant' : stream ? 'slowstream' : 'default')),
  { api: 'infer', stream: false, chain: 'fallback' },
]

const CHAINS = {
  default: [{ provider: 'sim', model: 'm+latency-1-50' }],
  slowstream: [{ provider: 'sim', model: 'm+latency-1-20+chunks-6+chunk-delay-15' }],
  ant: [{ provider: 'simant', model: 'c+latency-1-50' }],
  fallback: [{ provider: 'sim', model: 'f+status-503', retries: 0 }, { provider: 'sim2', model: 'm+latency-1-30' }],
}

export function crashDrill(size: DrillSize, options: DrillOptions = {}): Promise<DrillResult> {
  const { kills, clients, upMs } = SIZES[size]
  return runDrill('crash', size, options, async (ctx) => {
    const { problems, counts, seed, dir } = ctx
    const random = seededRandom(seed)
    const sim = ctx.simulator({ keep: 10_000_000 })
    const configPath = writeDrillConfig(dir, simConfig(sim.url, CHAINS, { policy: { cooldown_failures: 1_000_000 } }))
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
          counts.add('requests answered (or cut off by a kill)')
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
        problems.check(server.alive(), () => `witness died on its own before kill ${k + 1} (exit ${server.exitCode()}); its log ends:\n${server.logTail()}`)
        await server.kill('SIGKILL')
        counts.add('kills (SIGKILL)')
        const atKill = readSnapshot(server.dbPath)
        const lastId = [...atKill.rows.keys()].reduce((max, id) => Math.max(max, id), 0)
        const inFlight = [...atKill.rows.values()].filter((r) => r.status === 'pending').length
        counts.add('rows pending at a kill', inFlight)
        if (inFlight > 0) counts.add('kills that found calls in flight')
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

    // The kills must land under load, not while idle: a drill whose kills find nothing in flight proves nothing.
    const underLoad = counts.get('kills that found calls in flight')
    problems.check(underLoad * 2 >= kills, () => `only ${underLoad} of ${kills} kills found calls in flight`)

    // Every client has its answer; let the server finish what it still owns.
    await settledRows(server.dbPath, 10_000)
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
