/**
 * The disk trouble drill: the database reaches its size cap
 * (`database_max_mb`, applied with max_page_count on the writer), and,
 * separately, another process holds its write lock. While it lasts, every
 * inference request (each API, streaming and not) is answered 503
 * `telemetry_unavailable`, the upstream receives nothing and no row is
 * written; calls already in flight still get their answer; /heartbeat says
 * the database cannot be written. When space is freed or the lock released,
 * service resumes by itself, and rows whose finishing write had to wait are
 * finished.
 */
import { Database } from 'bun:sqlite'
import { freshSeed } from '../src/sim/random.ts'
import { type Simulator, startSimulator } from '../src/sim/server.ts'
import { holdWriteLock } from '../test/support/process.ts'
import { type Api, type CallResult, type CallSpec, call } from './support/client.ts'
import { readSnapshot } from './support/ledger.ts'
import { type Counts, type DrillResult, type DrillSize, type Problems, runDrill } from './support/result.ts'
import { drillDir } from './support/temp.ts'
import { type WitnessProcess, startWitnessProcess, writeDrillConfig } from './support/witness-process.ts'

const SIZES = {
  small: { cycles: 1, batchRounds: 1, inFlight: 3 },
  full: { cycles: 3, batchRounds: 4, inFlight: 8 },
} as const

/** How long a write may wait for another process's lock before the request is refused. */
const BUSY_TIMEOUT_MS = 300
/** How long service may take to come back by itself. */
const RESUME_WITHIN_MS = 10_000

/** One request per API and mode; a batch is `batchRounds` of these. */
const VARIANTS: { api: Api; stream: boolean; chain: string }[] = [
  { api: 'infer', stream: false, chain: 'default' },
  { api: 'infer', stream: true, chain: 'default' },
  { api: 'chat', stream: false, chain: 'default' },
  { api: 'chat', stream: true, chain: 'default' },
  { api: 'messages', stream: false, chain: 'ant' },
  { api: 'messages', stream: true, chain: 'ant' },
]

function diskConfig(simUrl: string): Record<string, unknown> {
  return {
    database_max_mb: 1,
    database_busy_timeout_ms: BUSY_TIMEOUT_MS,
    providers: {
      sim: { type: 'openai', base_url: `${simUrl}/v1` },
      simant: { type: 'anthropic', base_url: `${simUrl}/v1` },
    },
    chains: {
      default: [{ provider: 'sim', model: 'm', retries: 0 }],
      ant: [{ provider: 'simant', model: 'c', retries: 0 }],
      slow: [{ provider: 'sim', model: 'm+latency-600', retries: 0 }],
    },
    policy: { cooldown_failures: 1_000_000 },
  }
}

export interface DiskOptions {
  seed?: number
}

export function diskDrill(size: DrillSize, options: DiskOptions = {}): Promise<DrillResult> {
  const seed = options.seed ?? freshSeed()
  const { cycles, batchRounds, inFlight } = SIZES[size]
  return runDrill('disk', size, seed, async (ctx) => {
    const { problems, counts } = ctx
    const dir = drillDir('disk', ctx)
    const sim = startSimulator({ seed })
    ctx.cleanup(() => sim.stop())
    const server = await startWitnessProcess(writeDrillConfig(dir, diskConfig(sim.url)), ctx)
    const drill: Ctx = { server, sim, problems, counts, batchRounds, inFlight }
    for (let cycle = 0; cycle < cycles; cycle++) {
      await sizeCapCycle(drill)
      await lockCycle(drill)
    }
    problems.check(server.alive(), () => `witness died; log:\n${server.logTail()}`)
    const code = await server.kill('SIGTERM')
    problems.check(code === 0, () => `witness exited ${code} on SIGTERM; log:\n${server.logTail()}`)
  })
}

interface Ctx {
  server: WitnessProcess
  sim: Simulator
  problems: Problems
  counts: Counts
  batchRounds: number
  inFlight: number
}

const spec = (v: (typeof VARIANTS)[number], agent: string): CallSpec => ({ ...v, agent, deadlineMs: 15_000 })

/** One request of every variant, `rounds` times, all at once. */
function batch(ctx: Ctx, agent: string): Promise<CallResult[]> {
  const specs = Array.from({ length: ctx.batchRounds }, () => VARIANTS.map((v) => spec(v, agent))).flat()
  return Promise.all(specs.map((s) => call(ctx.server.url, s)))
}

const rowCount = (ctx: Ctx) => readSnapshot(ctx.server.dbPath).rows.size
const label = (r: CallResult) => `${r.spec.api}${r.spec.stream ? ' (stream)' : ''}`

/** While the trouble lasts: every request refused with 503 telemetry_unavailable, nothing upstream, no row. */
async function expectRefused(ctx: Ctx, trouble: string, message: RegExp): Promise<void> {
  const { problems, counts } = ctx
  const upstreamBefore = ctx.sim.count()
  const rowsBefore = rowCount(ctx)
  const refused = await batch(ctx, 'refused')
  for (const r of refused) {
    counts.add(`requests while ${trouble}`)
    problems.check(r.status === 503 && r.errorType === 'telemetry_unavailable', () => `${label(r)} while ${trouble} was answered ${r.status} ${r.errorType ?? r.detail}`)
  }
  problems.check(ctx.sim.count() === upstreamBefore, () => `the upstream received ${ctx.sim.count() - upstreamBefore} request(s) while ${trouble}`)
  problems.check(rowCount(ctx) === rowsBefore, () => `${rowCount(ctx) - rowsBefore} row(s) were written for requests refused while ${trouble}`)
  const body = await fetch(`${ctx.server.url}/v1/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ agent: 'refused', messages: [{ role: 'user', content: 'x' }] }),
  }).then((res) => res.json() as Promise<{ error?: { message?: string } }>)
  problems.check(message.test(body.error?.message ?? ''), () => `the 503 while ${trouble} says "${body.error?.message}"`)
  const heartbeat = await fetch(`${ctx.server.url}/heartbeat`)
  problems.check(heartbeat.status === 503, () => `GET /heartbeat answered ${heartbeat.status} while ${trouble}`)
}

/** After the trouble: service comes back without anyone touching witness, and no row is left pending. */
async function expectResumed(ctx: Ctx, trouble: string): Promise<void> {
  const { problems, counts } = ctx
  const startedAt = Date.now()
  let first: CallResult | null = null
  while (Date.now() - startedAt < RESUME_WITHIN_MS) {
    first = await call(ctx.server.url, spec(VARIANTS[0]!, 'resumed'))
    if (first.status === 200) break
    await Bun.sleep(50)
  }
  if (!problems.check(first?.status === 200, () => `service did not resume within ${RESUME_WITHIN_MS} ms after ${trouble} (last answer ${first?.status} ${first?.errorType})`)) return
  counts.add(`resumed after ${trouble}`)
  const upstreamBefore = ctx.sim.count()
  const resumed = await batch(ctx, 'resumed')
  for (const r of resumed) problems.check(r.status === 200 && r.ending === 'complete', () => `${label(r)} after ${trouble} ended ${r.status} ${r.ending} ${r.errorType ?? ''}`)
  problems.check(ctx.sim.count() === upstreamBefore + resumed.length, () => `after ${trouble}, the upstream received ${ctx.sim.count() - upstreamBefore} calls for ${resumed.length} requests`)
  counts.add('requests served after the trouble', resumed.length + 1)

  const deadline = Date.now() + RESUME_WITHIN_MS
  let pending = [...readSnapshot(ctx.server.dbPath).rows.values()].filter((r) => r.status === 'pending')
  while (pending.length > 0 && Date.now() < deadline) {
    await Bun.sleep(100)
    pending = [...readSnapshot(ctx.server.dbPath).rows.values()].filter((r) => r.status === 'pending')
  }
  problems.check(pending.length === 0, () => `rows ${pending.map((r) => r.id).join(',')} are still pending ${RESUME_WITHIN_MS} ms after ${trouble}`)
  const heartbeat = await fetch(`${ctx.server.url}/heartbeat`)
  problems.check(heartbeat.status === 200, () => `GET /heartbeat answered ${heartbeat.status} after ${trouble}`)
}

/** Fills the database up to its cap with rows, from traffic, after a ballast table took most of it. */
async function sizeCapCycle(ctx: Ctx): Promise<void> {
  const { problems, counts } = ctx
  const trouble = 'the database is at database_max_mb'
  const db = new Database(ctx.server.dbPath)
  try {
    db.exec('PRAGMA busy_timeout = 5000')
    db.exec('PRAGMA max_page_count = 1000000')
    db.exec('CREATE TABLE IF NOT EXISTS drill_ballast (b BLOB)')
    const pragma = (name: string) => Object.values(db.query(`PRAGMA ${name}`).get() as Record<string, number>)[0]!
    const pageSize = pragma('page_size')
    const usedPages = pragma('page_count') - pragma('freelist_count')
    const capPages = Math.floor((1024 * 1024) / pageSize)
    // Leave a few pages, so the cap is reached by real rows.
    const ballast = Math.max(0, capPages - usedPages - 6) * (pageSize - 64)
    db.query('INSERT INTO drill_ballast VALUES (randomblob(?))').run(ballast)
  } finally {
    db.close()
  }

  let hit: CallResult | null = null
  for (let i = 0; i < 5_000 && !hit; i++) {
    const r = await call(ctx.server.url, spec(VARIANTS[i % VARIANTS.length]!, 'filler'))
    counts.add('requests that filled the database')
    if (r.status === 503 && r.errorType === 'telemetry_unavailable') hit = r
    else problems.check(r.status === 200, () => `${label(r)} while filling the database was answered ${r.status} ${r.errorType ?? r.detail}`)
  }
  if (!problems.check(hit !== null, () => 'the database never reached its cap')) return
  counts.add('times the size cap was reached')
  await expectRefused(ctx, trouble, /full/)

  const cleaner = new Database(ctx.server.dbPath)
  cleaner.exec('PRAGMA busy_timeout = 5000')
  cleaner.exec('DROP TABLE drill_ballast')
  cleaner.close()
  await expectResumed(ctx, 'space was freed')
}

/** Another process takes the write lock while calls are in flight, then lets go. */
async function lockCycle(ctx: Ctx): Promise<void> {
  const { problems, counts } = ctx
  const trouble = 'another process holds the write lock'
  const upstreamBefore = ctx.sim.count()
  const flying = Array.from({ length: ctx.inFlight }, () => call(ctx.server.url, { api: 'infer', stream: false, chain: 'slow', agent: 'in-flight', deadlineMs: 15_000 }))
  // Their pending rows are committed once the upstream has them.
  while (ctx.sim.count() < upstreamBefore + ctx.inFlight) await Bun.sleep(5)
  const lock = await holdWriteLock(ctx.server.dbPath)
  counts.add('times the write lock was taken')
  let landed: CallResult[] = []
  try {
    await expectRefused(ctx, trouble, /locked/)
    // Calls that were already out get their answer; their finishing write waits for the lock.
    landed = await Promise.all(flying)
    for (const r of landed) problems.check(r.status === 200, () => `a call in flight when the lock was taken was answered ${r.status} ${r.errorType ?? r.detail}`)
    counts.add('calls in flight when the lock was taken', landed.length)
  } finally {
    await lock.release()
  }
  await expectResumed(ctx, 'the lock was released')
  const snap = readSnapshot(ctx.server.dbPath)
  for (const r of landed) {
    for (const id of r.logIds) problems.check(snap.rows.get(id)?.status === 'success', () => `row ${id} of a call in flight during the lock is ${snap.rows.get(id)?.status}`)
  }
}
