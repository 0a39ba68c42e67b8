/**
 * Provider comparison: rows of a time slice folded into exact, mergeable
 * partial sums per (agent, chain, provider, model), and partials merged into
 * the groups `/stats` and `witness stats` show.
 *
 * Definitions (README, "Stats"):
 * - attempts are finished call rows (success, error, timeout); fallback,
 *   rollback and pending (in-flight) rows are not attempts.
 * - a request counts once, toward the row that decided it: its success row,
 *   else its last call row (error or timeout); a request that made no call
 *   at all (every step skipped) counts toward the last step it named. A
 *   request still in flight is not counted yet.
 * - percentiles are exact (nearest rank) over the latencies of successful
 *   attempts; rates are fractions from 0 to 1 (null when nothing to divide).
 * - cost: see pricing.ts; a group's cost_usd is null when no attempt in it
 *   has a known cost, or when an attempt that reported usage has no known
 *   cost (a partial sum would understate it).
 */
import type { Database } from 'bun:sqlite'
import type { Pricing } from '../config-schema.ts'
import { priceFor, tokenCost } from './pricing.ts'
import { type StatRow, hasCallRow, hasLaterRow } from './queries.ts'

export const STATS_BY = ['provider', 'model', 'agent', 'chain'] as const
export type StatsBy = (typeof STATS_BY)[number]

/** Exact partial sums for one (agent, chain, provider, model) in one slice. */
export interface ComboPartial {
  agent: string
  chain: string | null
  provider: string
  model: string
  success: number
  error: number
  timeout: number
  tokensIn: number
  tokensOut: number
  /** Attempts whose cost the provider reported, and its sum. */
  reportedCount: number
  reportedUsd: number
  /** Attempts with both token counts and no reported cost (priced from config, if a price exists). */
  unreportedCount: number
  unreportedTokensIn: number
  unreportedTokensOut: number
  /** Attempts with only one of the token counts and no reported cost: cost unknown whatever the price. */
  halfUsage: number
  requests: number
  requestSuccesses: number
  /** Latencies (ms) of successful attempts (a typed array, ascending, once the slice is folded). */
  latencies: number[] | Int32Array | Float64Array
}

export interface SlicePartial {
  combos: Map<string, ComboPartial>
  /** A row in the slice is still pending: the slice may change. */
  hasPending: boolean
  /** The lowest id among the slice's rows (null if it has none). */
  loId: number | null
  /**
   * The longest latency among its rows (ms, 0 if none): each of them ended
   * by the slice's end plus this, and the rows that follow a failed call
   * follow its end (see finalAtMs in stats-window.ts).
   */
  maxLatencyMs: number
}

function newCombo(row: StatRow): ComboPartial {
  return {
    agent: row.agent_name,
    chain: row.chain,
    provider: row.provider,
    model: row.model,
    success: 0,
    error: 0,
    timeout: 0,
    tokensIn: 0,
    tokensOut: 0,
    reportedCount: 0,
    reportedUsd: 0,
    unreportedCount: 0,
    unreportedTokensIn: 0,
    unreportedTokensOut: 0,
    halfUsage: 0,
    requests: 0,
    requestSuccesses: 0,
    latencies: [],
  }
}

/** The key of a combo in SlicePartial.combos. */
export function comboKey(agent: string, chain: string | null, provider: string, model: string): string {
  return `${agent}\u0000${chain ?? ''}\u0000${provider}\u0000${model}`
}

/** A slice's rows of one agent, provider and model: [agent, provider, model, rows]. */
export type RowCount = [agent: string, provider: string, model: string, rows: number]

/** The key of SliceFolder.rowCounts. */
function rowCountKey(agent: string, provider: string, model: string): string {
  return `${agent}\u0000${provider}\u0000${model}`
}

/**
 * Folds the rows of one slice (newest first, as statRowsPage reads them).
 * Whether a failed row was its request's last call is settled within the
 * slice where possible, and otherwise by an index lookup in `db` (the rest
 * of the request may lie in a later slice), or in each of several
 * databases (the live file and archives: the rest may lie in another file).
 */
export function foldSlice(db: Database | readonly Database[], rows: Iterable<StatRow>): SlicePartial {
  const folder = new SliceFolder(db)
  for (const row of rows) folder.add(row)
  return folder.finish()
}

/**
 * foldSlice one row at a time, so a caller reading the rows lazily can give
 * the event loop back between them (fold-stepwise.ts: the lookups in `db`
 * then see only the rows the fold reads, by id).
 */
export class SliceFolder {
  private readonly dbs: readonly Database[]
  private readonly combos = new Map<string, ComboPartial>()
  // Requests with a call row (resp. any row) after their first, among rows already folded (newer ones).
  private readonly laterCall = new Set<string>()
  private readonly laterAny = new Set<string>()
  private hasPending = false
  private lo = Infinity
  private maxLatency = 0
  /** Rows folded so far. */
  rows = 0
  /** The highest id among them (null before the first). */
  maxId: number | null = null
  /** Rows folded per (agent, provider, model), every status included: [agent, provider, model, rows] by rowCountKey. */
  readonly rowCounts = new Map<string, RowCount>()

  /** `uptoId`: the highest id its lookups see (rows added since a fold began are not in it; the files share one sequence). */
  constructor(
    db: Database | readonly Database[],
    private readonly uptoId?: number,
  ) {
    this.dbs = Array.isArray(db) ? db : [db as Database]
  }

  private laterRow(rid: string, seq: number, anyRow: boolean): boolean {
    return this.dbs.some((d) => hasLaterRow(d, rid, seq, anyRow, this.uptoId))
  }

  private callRow(rid: string): boolean {
    return this.dbs.some((d) => hasCallRow(d, rid, this.uptoId))
  }

  add(row: StatRow): void {
    this.rows++
    const countKey = rowCountKey(row.agent_name, row.provider, row.model)
    const count = this.rowCounts.get(countKey)
    if (count) count[3]++
    else this.rowCounts.set(countKey, [row.agent_name, row.provider, row.model, 1])
    if (row.id < this.lo) this.lo = row.id
    if (this.maxId === null || row.id > this.maxId) this.maxId = row.id
    if (row.latency_ms !== null && row.latency_ms > this.maxLatency) this.maxLatency = row.latency_ms
    const status = row.status
    const rid = row.request_id
    if (status === 'rollback') return
    if (status === 'pending') this.hasPending = true
    if (status !== 'pending') {
      const key = comboKey(row.agent_name, row.chain, row.provider, row.model)
      let combo = this.combos.get(key)
      if (!combo) this.combos.set(key, (combo = newCombo(row)))
      if (status === 'fallback') {
        if (rid !== null && row.seq !== null && !this.laterAny.has(rid) && !this.laterRow(rid, row.seq, true) && !this.callRow(rid)) {
          combo.requests++
        }
      } else {
        countAttempt(combo, row)
        if (status === 'success') {
          combo.requests++
          combo.requestSuccesses++
        } else if (rid === null || row.seq === null || (!this.laterCall.has(rid) && !this.laterRow(rid, row.seq, false))) {
          combo.requests++
        }
      }
    }
    if (rid !== null && row.seq !== null && row.seq >= 2) {
      this.laterAny.add(rid)
      if (status !== 'fallback') this.laterCall.add(rid)
    }
  }

  finish(): SlicePartial {
    // Kept (in the cache) as typed arrays: 4 bytes a latency rather than a JS value each;
    // sorted, so a stored slice's histogram is a run-length count of them (slice-codec.ts).
    for (const combo of this.combos.values()) {
      const values = combo.latencies as number[]
      combo.latencies = (values.every((v) => Number.isInteger(v) && v >= 0 && v <= 2_147_483_647) ? Int32Array.from(values) : Float64Array.from(values)).sort()
    }
    return { combos: this.combos, hasPending: this.hasPending, loId: this.rows ? this.lo : null, maxLatencyMs: this.maxLatency }
  }
}

function countAttempt(combo: ComboPartial, row: StatRow): void {
  if (row.status === 'success') {
    combo.success++
    if (row.latency_ms !== null) (combo.latencies as number[]).push(row.latency_ms)
  } else if (row.status === 'error') combo.error++
  else combo.timeout++
  const tin = row.tokens_in
  const tout = row.tokens_out
  combo.tokensIn += tin ?? 0
  combo.tokensOut += tout ?? 0
  if (row.cost_usd !== null) {
    combo.reportedCount++
    combo.reportedUsd += row.cost_usd
  } else if (tin !== null && tout !== null) {
    combo.unreportedCount++
    combo.unreportedTokensIn += tin
    combo.unreportedTokensOut += tout
  } else if (tin !== null || tout !== null) {
    combo.halfUsage++
  }
}

export interface StatsGroup {
  [key: string]: string | number | null
  attempts: number
  success: number
  error: number
  timeout: number
  success_rate: number | null
  requests: number
  request_success_rate: number | null
  p50_ms: number | null
  p95_ms: number | null
  p99_ms: number | null
  tokens_in: number
  tokens_out: number
  cost_usd: number | null
}

export interface RankEntry {
  [key: string]: string | number | null
  value: number
}

export interface StatsResult {
  by: StatsBy
  groups: StatsGroup[]
  rankings: { fastest: RankEntry[]; most_reliable: RankEntry[]; cheapest: RankEntry[] }
}

interface GroupSums {
  key: string | null
  success: number
  error: number
  timeout: number
  tokensIn: number
  tokensOut: number
  requests: number
  requestSuccesses: number
  costUsd: number
  costKnown: number
  costUnknown: boolean
  latencies: ArrayLike<number>[]
}

function keyOf(combo: ComboPartial, by: StatsBy): string | null {
  return by === 'agent' ? combo.agent : by === 'chain' ? combo.chain : by === 'provider' ? combo.provider : combo.model
}

/** Merges slice partials into groups by `by`, with prices applied, and ranks them. */
export function mergeStats(slices: SlicePartial[], by: StatsBy, pricing: Pricing, agent?: string): StatsResult {
  const groups = new Map<string | null, GroupSums>()
  for (const slice of slices) {
    for (const combo of slice.combos.values()) {
      if (agent !== undefined && combo.agent !== agent) continue
      const key = keyOf(combo, by)
      let g = groups.get(key)
      if (!g) {
        g = { key, success: 0, error: 0, timeout: 0, tokensIn: 0, tokensOut: 0, requests: 0, requestSuccesses: 0, costUsd: 0, costKnown: 0, costUnknown: false, latencies: [] }
        groups.set(key, g)
      }
      g.success += combo.success
      g.error += combo.error
      g.timeout += combo.timeout
      g.tokensIn += combo.tokensIn
      g.tokensOut += combo.tokensOut
      g.requests += combo.requests
      g.requestSuccesses += combo.requestSuccesses
      g.costUsd += combo.reportedUsd
      g.costKnown += combo.reportedCount
      if (combo.halfUsage > 0) g.costUnknown = true
      if (combo.unreportedCount > 0) {
        const price = priceFor(pricing, combo.provider, combo.model)
        if (price) {
          g.costUsd += tokenCost(price, combo.unreportedTokensIn, combo.unreportedTokensOut)
          g.costKnown += combo.unreportedCount
        } else g.costUnknown = true
      }
      if (combo.latencies.length) g.latencies.push(combo.latencies)
    }
  }
  // A provider only ever named by fallback rows (never called, no request counted toward it) has nothing to show.
  const out = [...groups.values()].map((g) => toGroup(g, by)).filter((g) => g.attempts > 0 || g.requests > 0)
  out.sort((a, b) => b.attempts - a.attempts || String(a[by]).localeCompare(String(b[by])))
  return { by, groups: out, rankings: rank(out, by) }
}

function toGroup(g: GroupSums, by: StatsBy): StatsGroup {
  const attempts = g.success + g.error + g.timeout
  const [p50, p95, p99] = percentiles(g.latencies, [50, 95, 99])
  return {
    [by]: g.key,
    attempts,
    success: g.success,
    error: g.error,
    timeout: g.timeout,
    success_rate: attempts ? g.success / attempts : null,
    requests: g.requests,
    request_success_rate: g.requests ? g.requestSuccesses / g.requests : null,
    p50_ms: p50 ?? null,
    p95_ms: p95 ?? null,
    p99_ms: p99 ?? null,
    tokens_in: g.tokensIn,
    tokens_out: g.tokensOut,
    cost_usd: g.costUnknown || g.costKnown === 0 ? null : Math.round(g.costUsd * 1e10) / 1e10,
  }
}

/** Latencies above this (ms, about an hour) are ranked by sorting instead of counting. */
const COUNTING_LIMIT = 4_000_000

/**
 * Exact nearest-rank percentiles (the ceil(p/100 * n)-th smallest value) of
 * the values in `parts`. Latencies are whole milliseconds, so they are
 * counted per value (linear) rather than sorted; anything else is sorted.
 */
export function percentiles(parts: ArrayLike<number>[], ps: number[]): (number | null)[] {
  let n = 0
  let max = 0
  let whole = true
  for (const part of parts) {
    n += part.length
    if (part instanceof Int32Array) {
      // Whole by construction (the folded and stored slices' latencies): only the sign to check.
      for (let i = 0; i < part.length; i++) {
        const value = part[i]!
        if (value > max) max = value
        else if (value < 0) whole = false
      }
      continue
    }
    for (let i = 0; i < part.length; i++) {
      const value = part[i]!
      if (value > max) max = value
      if (!Number.isInteger(value) || value < 0) whole = false
    }
  }
  if (n === 0) return ps.map(() => null)
  const ranks = ps.map((p) => Math.max(1, Math.ceil((p / 100) * n)))
  if (!whole || max > COUNTING_LIMIT) {
    const sorted = new Float64Array(n)
    let at = 0
    for (const part of parts) for (let i = 0; i < part.length; i++) sorted[at++] = part[i]!
    sorted.sort()
    return ranks.map((r) => sorted[r - 1]!)
  }
  const counts = new Uint32Array(max + 1)
  for (const part of parts) for (let i = 0; i < part.length; i++) counts[part[i]!]!++
  const out: (number | null)[] = ranks.map(() => null)
  let seen = 0
  let next = 0
  const order = ranks.map((r, i) => [r, i] as const).sort((a, b) => a[0] - b[0])
  for (let value = 0; value <= max && next < order.length; value++) {
    seen += counts[value]!
    while (next < order.length && seen >= order[next]![0]) out[order[next++]![1]] = value
  }
  return out
}

/**
 * What `most_reliable` ranks by, then breaks ties with. A provider or a model is called, so it is
 * judged by its calls (`success_rate`): a failure a fallback rescued still counts against it (by
 * request success it would vanish, the request counting for the provider that served it). An agent
 * or a chain makes requests, so it is judged by the requests served (`request_success_rate`).
 */
export function reliabilityRates(by: StatsBy): ['success_rate', 'request_success_rate'] | ['request_success_rate', 'success_rate'] {
  return by === 'provider' || by === 'model' ? ['success_rate', 'request_success_rate'] : ['request_success_rate', 'success_rate']
}

function rank(groups: StatsGroup[], by: StatsBy): StatsResult['rankings'] {
  const entry = (g: StatsGroup, value: number): RankEntry => ({ [by]: g[by] ?? null, value })
  const fastest = groups
    .filter((g) => g.p50_ms !== null)
    .sort((a, b) => a.p50_ms! - b.p50_ms! || a.p95_ms! - b.p95_ms!)
    .map((g) => entry(g, g.p50_ms!))
  const [rate, tie] = reliabilityRates(by)
  const mostReliable = groups
    .filter((g) => g[rate] !== null)
    .sort((a, b) => b[rate]! - a[rate]! || (b[tie] ?? 0) - (a[tie] ?? 0) || b.attempts - a.attempts || b.requests - a.requests)
    .map((g) => entry(g, g[rate]!))
  const cheapest = groups
    .filter((g) => g.cost_usd !== null && g.tokens_in + g.tokens_out > 0)
    .map((g) => entry(g, Math.round((g.cost_usd! / (g.tokens_in + g.tokens_out)) * 1e6 * 1e6) / 1e6))
    .sort((a, b) => a.value - b.value)
  return { fastest, most_reliable: mostReliable, cheapest }
}
