/**
 * The hostile input drill: every input of the corpus (hostile-corpus.ts)
 * against every endpoint it applies to, over raw sockets. Each must get a
 * 4xx with a small body, in time; the server stays up and its memory
 * bounded; no row is written and nothing goes upstream for a refused
 * request. Endpoints not in this build (404 for an unknown route) are
 * skipped and reported.
 */
import { Database } from 'bun:sqlite'
import { type RawRequest, rawRequest, sendRaw } from '../test/support/raw-http.ts'
import { simConfig } from '../test/support/witness.ts'
import { type EndpointSpec, ENDPOINTS, type HostileInput, type Limits, concrete, corpus, parameterRequests } from './hostile-corpus.ts'
import { runDrill } from './support/drill.ts'
import type { DrillOptions, DrillResult, DrillSize } from './support/result.ts'
import { type WitnessProcess, startWitnessProcess, writeDrillConfig } from './support/witness-process.ts'

const SIZES = {
  small: { rounds: 1 },
  full: { rounds: 3 },
} as const

const MAX_BODY_MB = 1
/** body_timeout_ms for the drill: slow bodies are refused after this. */
const BODY_TIMEOUT_MS = 1_000
/** An answer must come within this (slow bodies included). */
const ANSWER_WITHIN_MS = 5_000
/** A refusal is short: it does not echo what it refused. */
const MAX_ANSWER_BYTES = 16 * 1024
/** Resident memory the server must stay under while the corpus runs. */
const MAX_RSS_MB = 300
/** How much the resident memory may grow from the first round to the last. */
const MAX_GROWTH_MB = 40
const CONCURRENCY = 8

/** Tables a refused request may touch: none of witness's (the health probe's state key, SQLite's own). */
const UNWATCHED = new Set(['witness_state', 'sqlite_sequence'])

export interface HostileOptions extends DrillOptions {
  /** Endpoints to test (default: ENDPOINTS). */
  endpoints?: EndpointSpec[]
}

interface Planned {
  endpoint: EndpointSpec
  name: string
  category: HostileInput['category']
  request: RawRequest
  parserRefuses: boolean
}

export function hostileDrill(size: DrillSize, options: HostileOptions = {}): Promise<DrillResult> {
  const { rounds } = SIZES[size]
  return runDrill('hostile', size, options, async (ctx) => {
    const { problems, counts, notes, dir } = ctx
    const sim = ctx.simulator()
    const server = await startWitnessProcess(
      writeDrillConfig(dir, simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { max_body_mb: MAX_BODY_MB, body_timeout_ms: BODY_TIMEOUT_MS })),
      ctx,
    )
    const port = Number(new URL(server.url).port)
    const limits: Limits = { maxBodyBytes: MAX_BODY_MB * 1024 * 1024 }

    const endpoints: EndpointSpec[] = []
    for (const ep of options.endpoints ?? ENDPOINTS) {
      if (ep.optional && (await isMissing(server, ep))) notes.push(`skipped ${ep.method} ${ep.path}: not in this build (404 for an unknown route)`)
      else endpoints.push(ep)
    }
    counts.set('endpoints tested', endpoints.length)
    const inputs = corpus()
    const plan: Planned[] = endpoints.flatMap((endpoint) => [
      ...inputs.flatMap((input) => {
        const request = input.build(endpoint, limits)
        return request ? [{ endpoint, name: input.name, category: input.category, request, parserRefuses: input.parserRefuses === true }] : []
      }),
      ...parameterRequests(endpoint).map(({ name, request }) => ({ endpoint, name, category: 'path traversal' as const, request, parserRefuses: false })),
    ])
    const distinct = new Set(plan.map((p) => p.name))
    counts.set('distinct malformed inputs', distinct.size)
    for (const category of new Set(plan.map((p) => p.category))) {
      counts.set(`inputs: ${category}`, new Set(plan.filter((p) => p.category === category).map((p) => p.name)).size)
    }

    const before = tableCounts(server.dbPath)
    let peakMb = server.rssMb()
    counts.set('memory before (MB)', Math.round(peakMb))
    const sampler = setInterval(() => (peakMb = Math.max(peakMb, server.rssMb())), 20)
    const afterRound: number[] = []
    try {
      for (let round = 0; round < rounds; round++) {
        let next = 0
        const worker = async () => {
          while (next < plan.length) {
            const item = plan[next++]!
            const label = `${item.endpoint.method} ${item.endpoint.path} with ${item.name}`
            const res = await sendRaw(port, item.request, ANSWER_WITHIN_MS)
            counts.add('requests sent')
            if (item.parserRefuses && !res.timedOut && (res.status === null || res.status === 505)) {
              counts.add(`refused by Bun's HTTP parser (${res.status ?? 'connection closed'})`)
              continue
            }
            if (!problems.check(res.status !== null, () => `${label}: ${res.timedOut ? `no answer within ${ANSWER_WITHIN_MS} ms` : 'connection closed without an answer'}`)) continue
            problems.check(res.status! >= 400 && res.status! < 500, () => `${label}: answered ${res.status} ${res.body.slice(0, 200)}`)
            problems.check(res.bytes <= MAX_ANSWER_BYTES, () => `${label}: the ${res.status} answer is ${res.bytes} bytes long`)
            if (res.status! >= 400 && res.status! < 500) counts.add(`answers: ${res.status}`)
            if (!server.alive()) break
          }
        }
        await Promise.all(Array.from({ length: CONCURRENCY }, worker))
        if (!problems.check(server.alive(), () => `witness died during round ${round + 1}; log:\n${server.logTail()}`)) return
        const models = await sendRaw(port, rawRequest('GET', '/v1/models', [], null), ANSWER_WITHIN_MS)
        problems.check(models.status === 200, () => `after round ${round + 1}, GET /v1/models answered ${models.status}`)
        Bun.gc(true)
        await Bun.sleep(200)
        afterRound.push(server.rssMb())
      }
    } finally {
      clearInterval(sampler)
    }

    counts.set('peak memory (MB)', Math.round(peakMb))
    counts.set('memory after the first round (MB)', Math.round(afterRound[0] ?? 0))
    counts.set('memory after the last round (MB)', Math.round(afterRound.at(-1) ?? 0))
    if (Object.keys(counts.values).some((name) => name.startsWith("refused by Bun's HTTP parser"))) {
      notes.push(
        "Bun's HTTP parser answers an HTTP version it does not speak with 505 and closes the connection on a method it does not know, " +
          'before witness sees the request: those are counted apart from the 4xx answers (nothing reaches witness, nothing is written).',
      )
    }
    problems.check(peakMb <= MAX_RSS_MB, () => `the server's memory peaked at ${Math.round(peakMb)} MB (limit ${MAX_RSS_MB} MB)`)
    if (afterRound.length > 1) {
      const growth = afterRound.at(-1)! - afterRound[0]!
      problems.check(growth <= MAX_GROWTH_MB, () => `the server's memory grew ${Math.round(growth)} MB from the first round to the last`)
    }
    const after = tableCounts(server.dbPath)
    const tables = Object.keys(after)
    for (const table of tables) problems.check(after[table] === (before[table] ?? 0), () => `${after[table]! - (before[table] ?? 0)} row(s) written to ${table} for refused requests`)
    counts.set('tables watched for writes', tables.length)
    counts.set('rows written for refused requests', tables.reduce((n, t) => n + after[t]! - (before[t] ?? 0), 0))
    problems.check(sim.count() === 0, () => `the upstream received ${sim.count()} request(s)`)
    counts.set('requests that reached the upstream', sim.count())
    const code = await server.kill('SIGTERM')
    problems.check(code === 0, () => `witness exited ${code} on SIGTERM; log:\n${server.logTail()}`)
  })
}

/** Whether the endpoint is absent from this build: 404 `not_found` for an unknown route. */
async function isMissing(server: WitnessProcess, ep: EndpointSpec): Promise<boolean> {
  const res = await fetch(`${server.url}${concrete(ep.path)}`, { method: ep.method, ...(ep.method === 'POST' ? { body: '{}' } : {}) })
  if (res.status !== 404) return false
  const body = (await res.json().catch(() => null)) as { error?: { type?: string; message?: string } } | null
  return body?.error?.type === 'not_found' && (body.error.message ?? '').startsWith('no route for')
}

/** Rows in each of witness's tables (request_log, its side tables, whatever later versions add). */
function tableCounts(dbPath: string): Record<string, number> {
  const db = new Database(dbPath, { readonly: true })
  try {
    const names = (db.query("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((t) => t.name).filter((n) => !UNWATCHED.has(n))
    // Table names come from the database itself, quoted: nothing from a request is in this SQL.
    return Object.fromEntries(names.map((t) => [t, (db.query(`SELECT count(*) AS n FROM "${t.replaceAll('"', '""')}"`).get() as { n: number }).n]))
  } finally {
    db.close()
  }
}
