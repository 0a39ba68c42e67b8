/**
 * Fills a witness database with synthetic traffic for benchmarks: a
 * realistic mix of agents, chains, providers and outcomes (successes,
 * retries, timeouts, fallbacks, exhausted chains, a few calls in flight),
 * spread evenly over a span of days ending now, in id order. Rows and their
 * request_log_meta go in with prepared statements in big transactions.
 */
import { Database } from 'bun:sqlite'
import { seededRandom } from '../src/sim/random.ts'
import { ensureSchema } from '../src/telemetry/schema.ts'

export const AGENTS = ['bezalel', 'ezra', 'allegro', 'oholiab', 'miriam', 'aaron', 'caleb', 'joshua']
const AGENT_WEIGHTS = [30, 20, 15, 10, 10, 8, 5, 2]

interface Step {
  provider: string
  model: string
  endpoint: string
  /** Chance that one try succeeds / times out (the rest are HTTP errors). */
  ok: number
  timeout: number
  medianMs: number
  /** USD per token reported by the provider (OpenRouter's usage.cost), if it reports one. */
  reportedPerToken?: number
}

const kimi: Step = { provider: 'kimi', model: 'kimi-k2.5', endpoint: 'https://api.moonshot.ai/v1/chat/completions', ok: 0.93, timeout: 0.03, medianMs: 1800 }
const openrouter: Step = { provider: 'openrouter', model: 'google/gemini-2.5-pro', endpoint: 'https://openrouter.ai/api/v1/chat/completions', ok: 0.97, timeout: 0.01, medianMs: 2600, reportedPerToken: 4e-6 }
const ollama: Step = { provider: 'ollama', model: 'gemma3:27b', endpoint: 'http://127.0.0.1:11434/v1/chat/completions', ok: 0.99, timeout: 0.005, medianMs: 6500 }
const groq: Step = { provider: 'groq', model: 'llama-3.3-70b-versatile', endpoint: 'https://api.groq.com/openai/v1/chat/completions', ok: 0.9, timeout: 0.01, medianMs: 450 }
const mimo: Step = { provider: 'mimo', model: 'mimo-v2.5-pro', endpoint: 'https://api.xiaomimimo.com/v1/chat/completions', ok: 0.95, timeout: 0.02, medianMs: 1500 }
const runpod: Step = { provider: 'runpod', model: 'qwen3-32b', endpoint: 'https://api.runpod.ai/v2/abc123/openai/v1/chat/completions', ok: 0.88, timeout: 0.05, medianMs: 3200 }

const CHAINS: { name: string; weight: number; steps: Step[] }[] = [
  { name: 'default', weight: 55, steps: [kimi, openrouter, ollama] },
  { name: 'fast', weight: 30, steps: [groq, mimo] },
  { name: 'gpu', weight: 15, steps: [runpod, openrouter] },
]

export interface FillOptions {
  rows: number
  /** The rows are spread evenly over this many days, ending at `endMs`. */
  days: number
  endMs?: number
  seed?: number
  /** Called after each committed batch with the number of rows so far. */
  progress?: (rows: number) => void
}

/** Opens (creating) `path` with witness's schema and fills it; returns the rows written. */
export function fillDatabase(path: string, options: FillOptions): number {
  const db = new Database(path, { create: true, strict: true })
  ensureSchema(db)
  // A throwaway benchmark file: no durability needed while filling.
  db.exec('PRAGMA synchronous = OFF')
  db.exec('PRAGMA cache_size = -262144')
  const insertLog = db.prepare(
    `INSERT INTO request_log (timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status, error_message)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)`,
  )
  const insertMeta = db.prepare(
    `INSERT INTO request_log_meta (log_id, request_id, chain, api, seq, step, try, stream, http_status, response_id, served_model, first_byte_ms, cost_usd)
     VALUES (?1, ?2, ?3, 'infer', ?4, ?5, ?6, 0, ?7, ?8, ?9, NULL, ?10)`,
  )
  const rnd = seededRandom(options.seed ?? 42) // deterministic, so runs are comparable
  const pick = <T>(items: T[], weights: number[]): T => {
    const total = weights.reduce((a, b) => a + b, 0)
    let r = rnd() * total
    for (let i = 0; i < items.length; i++) {
      r -= weights[i]!
      if (r < 0) return items[i]!
    }
    return items[items.length - 1]!
  }
  const chainWeights = CHAINS.map((c) => c.weight)
  const endMs = options.endMs ?? Date.now()
  const spanMs = options.days * 86_400_000
  const startMs = endMs - spanMs

  let written = 0
  let requestNo = 0
  let nextId = ((db.query('SELECT max(id) AS m FROM request_log').get() as { m: number | null }).m ?? 0) + 1

  const writeRequest = (atMs: number, inFlight: boolean) => {
    const agent = pick(AGENTS, AGENT_WEIGHTS)
    const chain = pick(CHAINS, chainWeights)
    const requestId = `${(requestNo++).toString(16).padStart(12, '0')}-bench-${agent}`
    let seq = 0
    let t = atMs
    const row = (step: Step, stepIndex: number, tryNo: number | null, status: string, fields: { tokensIn?: number; tokensOut?: number; latencyMs?: number; error?: string; httpStatus?: number; cost?: number }) => {
      const id = nextId++
      insertLog.run(new Date(t).toISOString(), agent, step.provider, step.model, step.endpoint, fields.tokensIn ?? null, fields.tokensOut ?? null, fields.latencyMs ?? null, status, fields.error ?? null)
      insertMeta.run(id, requestId, chain.name, ++seq, stepIndex, tryNo, fields.httpStatus ?? null, status === 'success' ? `resp-${id}` : null, status === 'success' ? step.model : null, fields.cost ?? null)
      written++
      if (fields.latencyMs) t += fields.latencyMs
    }
    for (let s = 0; s < chain.steps.length; s++) {
      const step = chain.steps[s]!
      let exit = ''
      for (let tryNo = 1; tryNo <= 2; tryNo++) {
        const latencyMs = Math.max(1, Math.round(step.medianMs * Math.exp((rnd() - 0.5) * 1.6)))
        if (inFlight) {
          row(step, s, tryNo, 'pending', {})
          return
        }
        const r = rnd()
        if (r < step.ok) {
          const tokensIn = 100 + Math.floor(rnd() * 4000)
          const tokensOut = 20 + Math.floor(rnd() * 1200)
          const cost = step.reportedPerToken ? (tokensIn + tokensOut) * step.reportedPerToken : undefined
          row(step, s, tryNo, 'success', { tokensIn, tokensOut, latencyMs, httpStatus: 200, cost })
          return
        }
        if (r < step.ok + step.timeout) {
          const timeoutMs = 20_000
          row(step, s, tryNo, 'timeout', { latencyMs: timeoutMs, error: `timeout after ${timeoutMs} ms` })
          exit = `timeout after ${timeoutMs} ms`
          break // timeouts fall back at once
        }
        const http = rnd() < 0.6 ? 429 : 503
        exit = http === 429 ? 'HTTP 429 rate limited' : 'HTTP 503 service unavailable'
        row(step, s, tryNo, 'error', { latencyMs: Math.round(latencyMs / 10), error: exit, httpStatus: http })
      }
      const next = chain.steps[s + 1]
      if (next) row(next, s + 1, null, 'fallback', { error: `fallback from ${step.provider}/${step.model}: ${exit}` })
    }
  }

  // Time advances with the rows written, so the span is filled evenly whatever the mix.
  const batch = db.transaction((count: number) => {
    for (let i = 0; i < count && written < options.rows; i++) {
      writeRequest(startMs + (spanMs * written) / options.rows, options.rows - written < 20)
    }
  })
  while (written < options.rows) {
    batch(50_000)
    options.progress?.(written)
  }
  db.exec('PRAGMA wal_checkpoint(TRUNCATE)')
  db.close()
  return written
}
