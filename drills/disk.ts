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
import type { Simulator } from '../src/sim/server.ts'
import { holdWriteLock } from '../test/support/process.ts'
import { simConfig } from '../test/support/witness.ts'
import { type CallResult, type CallSpec, call, everyApi } from './support/client.ts'
import { runDrill } from './support/drill.ts'
import { readSnapshot, settledRows } from './support/ledger.ts'
import type { Counts, DrillOptions, DrillResult, DrillSize, Problems } from './support/result.ts'
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
const VARIANTS = everyApi((api) => (api === 'messages' ? 'ant' : 'default'))

function diskConfig(simUrl: string): Record<string, unknown> {
  const chains = {
    default: [{ provider: 'sim', model: 'm', retries: 0 }],
    ant: [{ provider: 'simant', model: 'c', retries: 0 }],
    slow: [{ provider: 'sim', model: 'm+latency-600', retries: 0 }],
  }
  return simConfig(simUrl, chains, { database_max_mb: 1, database_busy_timeout_ms: BUSY_TIMEOUT_MS, policy: { cooldown_failures: 1_000_000 } })
}

export function diskDrill(size: DrillSize, options: DrillOptions = {}): Promise<DrillResult> {
  const { cycles, batchRounds, inFlight } = SIZES[size]
  return runDrill('disk', size, options, async (ctx) => {
    const { problems, counts, dir } = ctx
    const sim = ctx.simulator()
    const server = await startWitnessProcess(writeDrillConfig(dir, diskConfig(sim.url)), ctx)
    const run: DiskRun = { server, sim, problems, counts, batchRounds, inFlight }
    for (let cycle = 0; cycle < cycles; cycle++) {
      await sizeCapCycle(run)
      await lockCycle(run)
    }
    problems.check(server.alive(), () => `witness died; log:\n${server.logTail()}`)
    const code = await server.kill('SIGTERM')
    problems.check(code === 0, () => `witness exited ${code} on SIGTERM; log:\n${server.logTail()}`)
  })
}

/** What one run of the disk drill works with. */
interface DiskRun {
  server: WitnessProcess
  sim: Simulator
  problems: Problems
  counts: Counts
  batchRounds: number
  inFlight: number
}

const spec = (v: (typeof VARIANTS)[number], agent: string): CallSpec => ({ ...v, agent, deadlineMs: 15_000 })

/** One request of every variant, `rounds` times, all at once. */
function batch(run: DiskRun, agent: string): Promise<CallResult[]> {
  const specs = Array.from({ length: run.batchRounds }, () => VARIANTS.map((v) => spec(v, agent))).flat()
  return Promise.all(specs.map((s) => call(run.server.url, s)))
}

const rowCount = (run: DiskRun) => readSnapshot(run.server.dbPath).rows.size
const label = (r: CallResult) => `${r.spec.api}${r.spec.stream ? ' (stream)' : ''}`

/** While the trouble lasts: every request refused with 503 telemetry_unavailable, nothing upstream, no row. */
async function expectRefused(run: DiskRun, trouble: string, message: RegExp): Promise<void> {
  const { problems, counts } = run
  const upstreamBefore = run.sim.count()
  const rowsBefore = rowCount(run)
  const refused = await batch(run, 'refused')
  for (const r of refused) {
    counts.add(`requests while ${trouble}`)
    problems.check(r.status === 503 && r.errorType === 'telemetry_unavailable', () => `${label(r)} while ${trouble} was answered ${r.status} ${r.errorType ?? r.detail}`)
  }
  problems.check(run.sim.count() === upstreamBefore, () => `the upstream received ${run.sim.count() - upstreamBefore} request(s) while ${trouble}`)
  problems.check(rowCount(run) === rowsBefore, () => `${rowCount(run) - rowsBefore} row(s) were written for requests refused while ${trouble}`)
  const body = await fetch(`${run.server.url}/v1/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ agent: 'refused', messages: [{ role: 'user', content: 'x' }] }),
  }).then((res) => res.json() as Promise<{ error?: { message?: string } }>)
  problems.check(message.test(body.error?.message ?? ''), () => `the 503 while ${trouble} says "${body.error?.message}"`)
  const heartbeat = await fetch(`${run.server.url}/heartbeat`)
  problems.check(heartbeat.status === 503, () => `GET /heartbeat answered ${heartbeat.status} while ${trouble}`)
}

/** After the trouble: service comes back without anyone touching witness, and no row is left pending. */
async function expectResumed(run: DiskRun, trouble: string): Promise<void> {
  const { problems, counts } = run
  const startedAt = Date.now()
  let first: CallResult | null = null
  while (Date.now() - startedAt < RESUME_WITHIN_MS) {
    first = await call(run.server.url, spec(VARIANTS[0]!, 'resumed'))
    if (first.status === 200) break
    await Bun.sleep(50)
  }
  if (!problems.check(first?.status === 200, () => `service did not resume within ${RESUME_WITHIN_MS} ms after ${trouble} (last answer ${first?.status} ${first?.errorType})`)) return
  counts.add(`resumed after ${trouble}`)
  const upstreamBefore = run.sim.count()
  const resumed = await batch(run, 'resumed')
  for (const r of resumed) problems.check(r.status === 200 && r.ending === 'complete', () => `${label(r)} after ${trouble} ended ${r.status} ${r.ending} ${r.errorType ?? ''}`)
  problems.check(run.sim.count() === upstreamBefore + resumed.length, () => `after ${trouble}, the upstream received ${run.sim.count() - upstreamBefore} calls for ${resumed.length} requests`)
  counts.add('requests served after the trouble', resumed.length + 1)

  const pending = await settledRows(run.server.dbPath, RESUME_WITHIN_MS)
  problems.check(pending.length === 0, () => `rows ${pending.map((r) => r.id).join(',')} are still pending ${RESUME_WITHIN_MS} ms after ${trouble}`)
  const heartbeat = await fetch(`${run.server.url}/heartbeat`)
  const said = await heartbeat.text()
  problems.check(heartbeat.status === 200, () => `GET /heartbeat answered ${heartbeat.status} after ${trouble}: ${said.slice(0, 500)}`)
}

/** Fills the database up to its cap with rows, from traffic, after a ballast table took most of it. */
async function sizeCapCycle(run: DiskRun): Promise<void> {
  const { problems, counts } = run
  const trouble = 'the database is at database_max_mb'
  const db = new Database(run.server.dbPath)
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
    const r = await call(run.server.url, spec(VARIANTS[i % VARIANTS.length]!, 'filler'))
    counts.add('requests that filled the database')
    if (r.status === 503 && r.errorType === 'telemetry_unavailable') hit = r
    else problems.check(r.status === 200, () => `${label(r)} while filling the database was answered ${r.status} ${r.errorType ?? r.detail}`)
  }
  if (!problems.check(hit !== null, () => 'the database never reached its cap')) return
  counts.add('times the size cap was reached')
  await expectRefused(run, trouble, /full/)

  const cleaner = new Database(run.server.dbPath)
  cleaner.exec('PRAGMA busy_timeout = 5000')
  cleaner.exec('DROP TABLE drill_ballast')
  cleaner.close()
  await expectResumed(run, 'space was freed')
}

/** Another process takes the write lock while calls are in flight, then lets go. */
async function lockCycle(run: DiskRun): Promise<void> {
  const { problems, counts } = run
  const trouble = 'another process holds the write lock'
  const upstreamBefore = run.sim.count()
  const flying = Array.from({ length: run.inFlight }, () => call(run.server.url, { api: 'infer', stream: false, chain: 'slow', agent: 'in-flight', deadlineMs: 15_000 }))
  // Their pending rows are committed once the upstream has them.
  const deadline = Date.now() + RESUME_WITHIN_MS
  while (run.sim.count() < upstreamBefore + run.inFlight && Date.now() < deadline) await Bun.sleep(5)
  if (!problems.check(run.sim.count() === upstreamBefore + run.inFlight, () => `only ${run.sim.count() - upstreamBefore} of ${run.inFlight} calls reached the upstream`)) return
  const lock = await holdWriteLock(run.server.dbPath)
  counts.add('times the write lock was taken')
  let landed: CallResult[] = []
  try {
    await expectRefused(run, trouble, /locked/)
    // Calls that were already out get their answer; their finishing write waits for the lock.
    landed = await Promise.all(flying)
    for (const r of landed) problems.check(r.status === 200, () => `a call in flight when the lock was taken was answered ${r.status} ${r.errorType ?? r.detail}`)
    counts.add('calls in flight when the lock was taken', landed.length)
    const held = readSnapshot(run.server.dbPath)
    counts.add('their rows still pending while the lock was held', landed.flatMap((r) => r.logIds).filter((id) => held.rows.get(id)?.status === 'pending').length)
  } finally {
    await lock.release()
  }
  await expectResumed(run, 'the lock was released')
  const snap = readSnapshot(run.server.dbPath)
  for (const r of landed) {
    for (const id of r.logIds) problems.check(snap.rows.get(id)?.status === 'success', () => `row ${id} of a call in flight during the lock is ${snap.rows.get(id)?.status}`)
  }
}
