/**
 * The fault drills at a small size (full size: `npm run drills`, which
 * writes docs/RELIABILITY.md): each runs the real `witness serve` as a
 * subprocess and must find no problem. Then the drills' own checks, fed
 * accounts with a planted fault, must report it.
 */
import { describe, expect, test } from 'bun:test'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { chaosDrill } from '../drills/chaos.ts'
import { crashDrill } from '../drills/crash.ts'
import { diskDrill } from '../drills/disk.ts'
import { ENDPOINTS, corpus } from '../drills/hostile-corpus.ts'
import { hostileDrill } from '../drills/hostile.ts'
import type { CallResult } from '../drills/support/client.ts'
import { type Snapshot, type UpstreamCall, checkNothingPending, checkOneOutcomePerRequest, checkResponses, checkUpstream } from '../drills/support/ledger.ts'
import { Counts, Problems } from '../drills/support/result.ts'
import { ROOT } from './support/process.ts'
import type { LogRow, MetaRow } from './support/rows.ts'

describe('the fault drills at a small size', () => {
  test('crash: killed with SIGKILL under load and restarted, every 200 has its success rows, no id twice, nothing pending, nothing upstream without a row', async () => {
    const result = await crashDrill('small')
    expect(result.problems).toEqual([])
    expect(result.counts['kills (SIGKILL)']).toBe(3)
    expect(result.counts['200 answers']).toBeGreaterThan(0)
    expect(result.counts['upstream requests checked']).toBeGreaterThan(0)
  }, 30_000)

  test('chaos soak: every client answered, one final outcome per request id, rows agree with what the upstreams did', async () => {
    const result = await chaosDrill('small')
    expect(result.problems).toEqual([])
    expect(result.counts['client requests']).toBeGreaterThan(0)
    expect(result.counts['rows checked against the fault their upstream played']).toBeGreaterThan(0)
  }, 30_000)

  test('disk trouble: at the size cap and under another process\'s lock, 503 and nothing upstream; service resumes by itself', async () => {
    const result = await diskDrill('small')
    expect(result.problems).toEqual([])
    expect(result.counts['times the size cap was reached']).toBe(1)
    expect(result.counts['resumed after space was freed']).toBe(1)
    expect(result.counts['resumed after the lock was released']).toBe(1)
  }, 30_000)

  test('hostile input: at least 50 malformed inputs against every endpoint, each a 4xx, no row, the server up; absent endpoints skipped', async () => {
    const absent = { method: 'GET' as const, path: '/no-such-endpoint', takes: 'none' as const, optional: true }
    const result = await hostileDrill('small', { endpoints: [...ENDPOINTS, absent] })
    expect(result.problems).toEqual([])
    expect(result.counts['distinct malformed inputs']).toBeGreaterThanOrEqual(50)
    expect(result.counts['endpoints tested']).toBeGreaterThanOrEqual(ENDPOINTS.filter((e) => !e.optional).length)
    expect(result.counts['rows written for refused requests']).toBe(0)
    expect(result.notes).toContain('skipped GET /no-such-endpoint: not in this build (404 for an unknown route)')
  }, 30_000)
})

describe('the corpus', () => {
  test('has every category the issue names, and every endpoint gets inputs', () => {
    const inputs = corpus()
    const categories = new Set<string>(inputs.map((i) => i.category))
    for (const c of ['bad JSON', 'wrong type', 'huge', 'deep nesting', 'invalid UTF-8', 'header injection', 'path traversal', 'slow body']) expect(categories).toContain(c)
    expect(new Set(inputs.map((i) => i.name)).size).toBe(inputs.length)
    for (const ep of ENDPOINTS) expect(inputs.filter((i) => i.build(ep, { maxBodyBytes: 1024 }) !== null).length, ep.path).toBeGreaterThan(10)
  })

  test('lists every route of the route table (src/app.ts), so a new endpoint cannot go untested', () => {
    const table = readFileSync(join(ROOT, 'src/app.ts'), 'utf8')
    const routes = [...table.matchAll(/app\.(get|post)\('([^']+)'/g)].map((m) => `${m[1]!.toUpperCase()} ${m[2]}`)
    expect(routes.length).toBeGreaterThan(20)
    const listed = new Set(ENDPOINTS.map((e) => `${e.method} ${e.path}`))
    expect(routes.filter((r) => !listed.has(r))).toEqual([])
  })
})

// Hand-made accounts: request r1 served by row 1 (after a fallback row 2 it was told of), r2 with rows 3 and 4.
function row(id: number, status: LogRow['status'], model = 'm'): LogRow {
  return { id, timestamp: '2026-11-25T00:00:00.000Z', agent_name: 'a', provider: 'sim', model, endpoint: 'http://sim/', tokens_in: null, tokens_out: null, latency_ms: null, status, error_message: null }
}
function meta(logId: number, requestId: string, seq: number, attempt = true): MetaRow {
  return { log_id: logId, request_id: requestId, chain: 'default', api: 'infer', seq, step: 0, try: attempt ? 1 : null, stream: 0, http_status: null, response_id: null, served_model: null, first_byte_ms: null, first_token_ms: null, cost_usd: null }
}
function snapshot(rows: LogRow[], metas: MetaRow[]): Snapshot {
  const byRequest = new Map<string, number[]>()
  for (const m of [...metas].sort((a, b) => a.seq - b.seq)) byRequest.set(m.request_id, [...(byRequest.get(m.request_id) ?? []), m.log_id])
  return { rows: new Map(rows.map((r) => [r.id, r])), meta: new Map(metas.map((m) => [m.log_id, m])), byRequest }
}
function answer(requestId: string, logIds: number[], status = 200): CallResult {
  return { spec: { api: 'infer', stream: false, chain: 'default', agent: 'a', deadlineMs: 1 }, status, requestId, logIds, errorType: null, ending: 'complete', detail: '', startedAt: 0, endedAt: 0 }
}
const call = (logId: number | null, requestId: string, model = 'm'): UpstreamCall => ({ upstream: 'sim', logId, requestId, model, aborted: false, fault: null })

describe("the drills' checks report what they exist to catch", () => {
  const good = snapshot([row(1, 'error'), row(2, 'fallback'), row(3, 'success')], [meta(1, 'r1', 1), meta(2, 'r1', 2, false), meta(3, 'r1', 3)])

  test('accounts that agree pass', () => {
    const problems = new Problems()
    checkResponses([answer('r1', [1, 2, 3])], good, problems, new Counts())
    checkUpstream([call(1, 'r1'), call(3, 'r1')], good, problems, new Counts())
    checkNothingPending(good, problems)
    checkOneOutcomePerRequest(good, problems, new Counts())
    expect(problems.list).toEqual([])
  })

  test('a 200 whose row is missing, not success, or of another request; an id given twice', () => {
    const problems = new Problems()
    const bad = snapshot([row(1, 'error'), row(3, 'error'), row(5, 'success')], [meta(1, 'r1', 1), meta(3, 'r1', 2), meta(5, 'r9', 1)])
    checkResponses([answer('r1', [1, 2]), answer('r1', [3]), answer('r5', [5])], bad, problems, new Counts())
    expect(problems.list.join('\n')).toContain('rows 2 do not exist')
    expect(problems.list.join('\n')).toContain('a 200 answer whose rows are [error]')
    expect(problems.list.join('\n')).toContain('request id r1 was given to two responses')
    expect(problems.list.join('\n')).toContain('row 5 belongs to request r9')
  })

  test('a 200 or a 502 that names no rows (both wrote some); a refusal before any row (400, 503) or no answer may', () => {
    const problems = new Problems()
    checkResponses([answer('r7', [], 502), answer('r8', [], 200), answer('r9', [], 400), answer('r10', [], 503), { ...answer('r11', []), status: null, ending: 'aborted' }], good, problems, new Counts())
    expect(problems.list.map((p) => p.split(':')[0])).toEqual(['a 502 answer carries no log ids', 'a 200 answer carries no log ids'])
  })

  test('an upstream call without a row, twice, for another model, or without a log id; a success nobody called', () => {
    const problems = new Problems()
    checkUpstream([call(1, 'r1'), call(1, 'r1'), call(9, 'r1'), call(null, 'r1'), call(2, 'r1'), call(3, 'r1', 'other')], good, problems, new Counts())
    const text = problems.list.join('\n')
    expect(text).toContain('log id 1 went upstream twice')
    expect(text).toContain('log id 9, which has no row')
    expect(text).toContain('without an x-witness-log-id')
    expect(text).toContain('log id 2 went upstream but is not an attempt row')
    expect(text).toContain('went upstream for model other')
    checkUpstream([], good, (problems.list.length = 0, problems), new Counts())
    expect(problems.list).toEqual(['row 3 says success but no upstream received it'])
  })

  test('a pending row, a gap in a request, two successes, a row after the success', () => {
    const problems = new Problems()
    const bad = snapshot(
      [row(1, 'pending'), row(2, 'success'), row(3, 'success'), row(5, 'success'), row(6, 'success'), row(7, 'error')],
      [meta(1, 'p', 1), meta(2, 'two', 1), meta(3, 'two', 2), meta(5, 'gap', 2), meta(6, 'after', 1), meta(7, 'after', 2)],
    )
    checkNothingPending(bad, problems)
    checkOneOutcomePerRequest(bad, problems, new Counts())
    const text = problems.list.join('\n')
    expect(text).toContain('row 1 is still pending')
    expect(text).toContain('request two has 2 success rows')
    expect(text).toContain('request after: a row after its success')
    expect(text).toContain('request gap: rows numbered 2, not 1..1')
  })
})
