/**
 * `npm run demo`: starts the provider simulator and witness, sends a short
 * burst of traffic that exercises success, retry, timeout, fallback and an
 * exhausted chain, then prints the rows it produced. Uses a temporary
 * database; touches nothing else.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatTable } from './format/table.ts'
import { serve } from './main.ts'
import { startSimulator } from './sim/server.ts'

const sim = startSimulator()
const dir = mkdtempSync(join(tmpdir(), 'witness-demo-'))
const configPath = join(dir, 'witness.yaml')
const base = `${sim.url}/v1`
writeFileSync(
  configPath,
  `database: ./demo.db
providers:
  kimi: { type: openai, base_url: "${base}" }
  openrouter: { type: openai, base_url: "${base}" }
  claude: { type: anthropic, base_url: "${base}" }
chains:
  default:
    - { provider: kimi, model: "kimi-k2.5+latency-30" }
    - { provider: openrouter, model: "google/gemini-2.5-pro" }
  flaky:
    - { provider: kimi, model: "kimi-k2.5+script-503-200", retries: 1 }
  slow:
    - { provider: kimi, model: "kimi-k2.5+hang", timeout_ms: 300 }
    - { provider: claude, model: "claude-sonnet-4+served-claude-sonnet-4-20250514" }
  limited:
    - { provider: openrouter, model: "google/gemini-2.5-pro+script-429-200+retry-after-1", retries: 1 }
  broken:
    - { provider: kimi, model: "kimi-k2.5+status-500", retries: 0 }
    - { provider: openrouter, model: "google/gemini-2.5-pro+malformed" }
policy: { backoff_min_ms: 50, backoff_max_ms: 200 }
`,
)
// The simulator accepts any key; real keys live only in witness's environment.
const witness = await serve({ configPath, port: 0, env: { KIMI_API_KEY: 'sim-key', OPENROUTER_API_KEY: 'sim-key' }, log: () => {} })

const calls: [string, string][] = [
  ['bezalel', 'default'],
  ['ezra', 'default'],
  ['bezalel', 'flaky'],
  ['allegro', 'slow'],
  ['ezra', 'limited'],
  ['allegro', 'broken'],
]
console.log(`witness demo: simulator at ${sim.url}, witness at ${witness.url}\n`)
for (const [agent, chain] of calls) {
  const res = await fetch(`${witness.url}/v1/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ agent, chain, messages: [{ role: 'user', content: 'Say hello.' }] }),
  })
  const body = (await res.json()) as { provider?: string; error?: { type: string } }
  const outcome = res.ok ? `served by ${body.provider}` : `${body.error?.type}`
  console.log(`POST /v1/infer agent=${agent.padEnd(8)} chain=${chain.padEnd(8)} -> ${res.status} ${outcome} (log ids ${res.headers.get('x-witness-log-ids')})`)
}

const rows = witness.store.reader
  .query(
    `SELECT l.id, l.agent_name, l.provider, l.model, l.status, l.tokens_in, l.tokens_out, l.latency_ms, l.error_message
     FROM request_log l ORDER BY l.id`,
  )
  .all() as Record<string, unknown>[]
console.log(`\nrequest_log (${rows.length} rows):\n`)
console.log(formatTable(rows, ['id', 'agent_name', 'provider', 'model', 'status', 'tokens_in', 'tokens_out', 'latency_ms', 'error_message']))

await witness.stop(0)
await sim.stop()
rmSync(dir, { recursive: true, force: true })
