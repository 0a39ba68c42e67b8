/**
 * The chaos soak: clients on every inference API, streaming and not, for
 * about a minute against two upstreams in chaos mode (`chaos-P`: requests
 * randomly hang, fail with 500/503, are rate-limited with Retry-After, get
 * malformed or empty bodies, and streams are cut, stall or end without
 * their final event), with some clients walking away mid-request. Checks:
 * every client request gets an answer; each request id ends with exactly
 * one final outcome, agreeing with what its client was told; each row
 * agrees with what its upstream really did; the rows add up to what the
 * upstreams saw.
 */
import { between, seededRandom } from '../src/sim/random.ts'
import type { Simulator } from '../src/sim/server.ts'
import type { LogRow } from '../test/support/rows.ts'
import { type Api, type CallResult, call } from './support/client.ts'
import { runDrill } from './support/drill.ts'
import {
  type Snapshot, type UpstreamCall, checkNothingPending, checkOneOutcomePerRequest, checkResponses, checkUpstream, readSnapshot, settledRows, upstreamCalls,
} from './support/ledger.ts'
import type { Counts, DrillOptions, DrillResult, DrillSize, Problems } from './support/result.ts'
import { startWitnessProcess, writeDrillConfig } from './support/witness-process.ts'

const SIZES = {
  small: { soakMs: 4_000, clients: 8 },
  full: { soakMs: 60_000, clients: 24 },
} as const

/** Share of requests whose client goes away on purpose, and when. */
const CLIENT_ABORT_PERCENT = 5
const CLIENT_ABORT_MS = [0, 400] as const

const CHAINS = ['mixed', 'anthropic-first', 'single'] as const

function chaosConfig(a: Simulator, b: Simulator): Record<string, unknown> {
  const tuning = { timeout_ms: 1_500, first_byte_timeout_ms: 400, idle_timeout_ms: 400, retries: 1 }
  const model = (name: string, percent: number) => `${name}+latency-0-30+chunks-6+chunk-delay-2+chaos-${percent}`
  return {
    providers: {
      alpha: { type: 'openai', base_url: `${a.url}/v1`, ...tuning },
      alpha2: { type: 'openai', base_url: `${a.url}/v1`, ...tuning },
      beta: { type: 'anthropic', base_url: `${b.url}/v1`, ...tuning },
      beta2: { type: 'openai', base_url: `${b.url}/v1`, ...tuning },
    },
    chains: {
      mixed: [{ provider: 'alpha', model: model('a', 40) }, { provider: 'beta', model: model('b', 40) }, { provider: 'beta2', model: model('c', 40) }],
      'anthropic-first': [{ provider: 'beta', model: model('b', 40) }, { provider: 'alpha', model: model('a', 40) }],
      single: [{ provider: 'alpha2', model: model('s', 50) }],
    },
    policy: { backoff_min_ms: 5, backoff_max_ms: 50, retry_after_cap_ms: 2_000, cooldown_failures: 5, cooldown_s: 1 },
  }
}

/** What a row must say, given the fault its upstream played (when its client stayed). */
const EXPECTED: Record<string, { status: LogRow['status'][]; message: RegExp | null }> = {
  none: { status: ['success'], message: null },
  hang: { status: ['timeout'], message: /timeout after|no first byte/ },
  'status-500': { status: ['error'], message: /^HTTP 500/ },
  'status-503': { status: ['error'], message: /^HTTP 503/ },
  'status-429+retry-after-1': { status: ['error'], message: /^HTTP 429 rate limited \(retry-after 1 s\)/ },
  malformed: { status: ['error'], message: /malformed/ },
  empty: { status: ['error'], message: /malformed/ },
  cut: { status: ['error'], message: /connection closed by upstream/ },
  stall: { status: ['timeout'], message: /stream idle/ },
  'no-done': { status: ['error'], message: /ended without/ },
}

export function chaosDrill(size: DrillSize, options: DrillOptions = {}): Promise<DrillResult> {
  const { soakMs, clients } = SIZES[size]
  return runDrill('chaos', size, options, async (ctx) => {
    const { problems, counts, notes, seed, dir } = ctx
    const upstreams = { alpha: ctx.simulator({ keep: 10_000_000 }), beta: ctx.simulator({ seed: seed + 1, keep: 10_000_000 }) }
    const server = await startWitnessProcess(writeDrillConfig(dir, chaosConfig(upstreams.alpha, upstreams.beta)), ctx)
    const responses: CallResult[] = []
    const until = Date.now() + soakMs
    let died = false
    const client = async (i: number) => {
      const random = seededRandom(seed + 100 + i)
      while (Date.now() < until && !died) {
        const api = (['infer', 'chat', 'messages'] as Api[])[between(random, 0, 2)]!
        const leaves = random() * 100 < CLIENT_ABORT_PERCENT
        responses.push(
          await call(server.url, {
            api,
            stream: random() < 0.5,
            chain: CHAINS[between(random, 0, CHAINS.length - 1)]!,
            agent: `chaos-${i}`,
            deadlineMs: 30_000,
            abortAfterMs: leaves ? between(random, CLIENT_ABORT_MS[0], CLIENT_ABORT_MS[1]) : undefined,
          }),
        )
        if (responses.at(-1)!.ending === 'refused' && !server.alive() && !died) {
          died = true
          problems.add(`witness died during the soak (exit ${server.exitCode()}); its log ends:\n${server.logTail()}`)
        }
      }
    }
    await Promise.all(Array.from({ length: clients }, (_, i) => client(i)))

    // Every client is done; rows of clients that left are finished by the server on its own.
    await settledRows(server.dbPath, 10_000)
    const calls = [...upstreamCalls(upstreams.alpha, 'upstream alpha'), ...upstreamCalls(upstreams.beta, 'upstream beta')]
    const snap = readSnapshot(server.dbPath)

    checkAnswers(responses, problems, counts)
    checkResponses(responses, snap, problems, counts)
    const seen = checkUpstream(calls, snap, problems, counts)
    counts.set('rows checked for pending', checkNothingPending(snap, problems))
    checkOneOutcomePerRequest(snap, problems, counts)
    checkRowsAgainstFaults(calls, snap, responses, problems, counts)
    checkEveryAttemptWentUp(snap, seen, responses, problems, counts)

    counts.set('rows in the database', snap.rows.size)
    for (const [name, sim] of Object.entries(upstreams)) counts.set(`requests upstream ${name} received`, sim.requests.length)
    const faults = new Map<string, number>()
    for (const c of calls) faults.set(c.fault ?? 'none', (faults.get(c.fault ?? 'none') ?? 0) + 1)
    notes.push(`faults played by the upstreams: ${[...faults].sort().map(([f, n]) => `${f} ${n}`).join(', ')}`)
    if (!died) problems.check(server.alive(), () => `witness died during the soak; its log ends:\n${server.logTail()}`)
    const code = await server.kill('SIGTERM')
    problems.check(code === 0, () => `witness exited ${code} on SIGTERM; log:\n${server.logTail()}`)
  })
}

/** Every client that stayed got a whole answer: a status, and a stream that ended with its final or an error event. */
function checkAnswers(responses: CallResult[], problems: Problems, counts: Counts): void {
  for (const r of responses) {
    counts.add('client requests')
    if (r.ending === 'aborted') {
      counts.add('client requests that left on purpose')
      continue
    }
    const label = `${r.spec.api}${r.spec.stream ? ' (stream)' : ''} chain ${r.spec.chain}`
    problems.check(r.ending === 'complete' || r.ending === 'error-event', () => `${label} got no whole answer (${r.ending}${r.status ? `, HTTP ${r.status}` : ''}): ${r.detail}`)
    problems.check(r.status === 200 || r.status === 502, () => `${label} was answered HTTP ${r.status} ${r.errorType ?? ''}`)
    if (r.status === 200) counts.add(r.ending === 'complete' ? 'answers: 200' : 'answers: stream ended by an error event')
    else if (r.status === 502) counts.add('answers: 502 chain_exhausted')
  }
}

/** Each row says what its upstream did: the fault the upstream played decides the row's status and message. */
function checkRowsAgainstFaults(calls: UpstreamCall[], snap: Snapshot, responses: CallResult[], problems: Problems, counts: Counts): void {
  const left = requestIdsOf(responses, true)
  const stayed = requestIdsOf(responses, false)
  for (const c of calls) {
    const row = c.logId === null ? undefined : snap.rows.get(c.logId)
    if (!row || c.fault === null) continue
    // A client that left ends its call early, whatever the upstream was doing (one whose client stayed has no such excuse).
    const clientLeft = c.requestId !== null && left.has(c.requestId)
    if (clientLeft || (row.error_message?.includes('client disconnected') && !(c.requestId !== null && stayed.has(c.requestId)))) continue
    const expected = EXPECTED[c.fault]
    if (!problems.check(expected !== undefined, () => `unknown fault ${c.fault}`)) continue
    counts.add('rows checked against the fault their upstream played')
    problems.check(
      expected!.status.includes(row.status) && (expected!.message === null || expected!.message.test(row.error_message ?? '')),
      () => `row ${row.id}: upstream played ${c.fault} but the row says ${row.status}: ${row.error_message ?? '(no message)'}`,
    )
  }
}

/**
 * The rows add up to what the upstreams saw: every attempt row was received upstream, unless its
 * client left before the call went out. That excuse is not taken from the row's own word: the row
 * must say exactly `aborted: client disconnected`, must not belong to a request whose client stayed,
 * and there can be no more such rows than clients that left on purpose (one row each at most).
 */
function checkEveryAttemptWentUp(snap: Snapshot, seen: Set<number>, responses: CallResult[], problems: Problems, counts: Counts): void {
  const stayed = requestIdsOf(responses, false)
  const clientsLeft = responses.filter((r) => r.ending === 'aborted').length
  let attempts = 0
  let neverLeft = 0
  for (const row of snap.rows.values()) {
    if (row.status === 'fallback') continue
    attempts++
    if (seen.has(row.id)) continue
    const requestId = snap.meta.get(row.id)?.request_id
    if (row.error_message === 'aborted: client disconnected' && !(requestId && stayed.has(requestId))) neverLeft++
    else problems.add(`row ${row.id} (${row.status}: ${row.error_message}) was never received upstream`)
  }
  counts.set('attempt rows', attempts)
  counts.set('attempt rows whose client left before the call went out', neverLeft)
  counts.set('fallback rows', snap.rows.size - attempts)
  problems.check(neverLeft <= clientsLeft, () => `${neverLeft} attempt rows never went out, said to be for clients that left, but only ${clientsLeft} clients left`)
  problems.check(seen.size === attempts - neverLeft, () => `upstreams received ${seen.size} calls for ${attempts - neverLeft} attempt rows that went out`)
}

/** The request ids the clients that left on purpose (`left`) or stayed were given. */
function requestIdsOf(responses: CallResult[], left: boolean): Set<string> {
  return new Set(responses.filter((r) => (r.ending === 'aborted') === left && r.requestId).map((r) => r.requestId!))
}
