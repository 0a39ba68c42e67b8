/** Runs wrk (a load generator in its own process) and reads its numbers. */
import { writeFileSync } from 'node:fs'

export interface WrkResult {
  rps: number
  p50Ms: number
  p99Ms: number
  requests: number
  /** The run's measured length (wrk's "N requests in 5.00s"). */
  seconds: number
  errors: number
  raw: string
}

/** Milliseconds from wrk's "812.00us" / "1.20ms" / "2.01s". */
function ms(text: string): number {
  const m = /([\d.]+)(us|ms|s)/.exec(text)
  if (!m) return Number.NaN
  const n = Number(m[1])
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n
}

export function ensureWrk(): void {
  if (Bun.which('wrk')) return
  console.error('bench: wrk not found; installing it from Debian packages')
  const sudo = process.getuid?.() === 0 ? [] : ['sudo']
  const install = Bun.spawnSync([...sudo, 'apt-get', 'install', '-y', 'wrk'], { stdout: 'inherit', stderr: 'inherit' })
  if (install.exitCode !== 0 || !Bun.which('wrk')) throw new Error('bench: wrk is required (apt-get install wrk)')
}

export function runWrk(url: string, body: string, headers: Record<string, string>, connections: number, seconds: number, scriptPath: string): WrkResult {
  const lines = [`wrk.method = "POST"`, `wrk.body = ${JSON.stringify(body)}`, `wrk.headers["Content-Type"] = "application/json"`]
  for (const [k, v] of Object.entries(headers)) lines.push(`wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`)
  writeFileSync(scriptPath, `${lines.join('\n')}\n`)
  const proc = Bun.spawnSync(['wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', scriptPath, url], { stdout: 'pipe', stderr: 'pipe' })
  const raw = proc.stdout.toString() + proc.stderr.toString()
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(raw)?.[1] ?? Number.NaN)
  const requests = Number(/(\d+) requests in/.exec(raw)?.[1] ?? 0)
  const measured = /\d+ requests in ([\d.]+(?:us|ms|s))/.exec(raw)?.[1]
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(raw)?.[1] ?? 0)
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw)
  const errors = non2xx + (socketErrors ? socketErrors.slice(1).reduce((a, b) => a + Number(b), 0) : 0)
  const p50 = /^\s+50%\s+(\S+)/m.exec(raw)?.[1] ?? ''
  const p99 = /^\s+99%\s+(\S+)/m.exec(raw)?.[1] ?? ''
  return { rps, p50Ms: ms(p50), p99Ms: ms(p99), requests, seconds: measured ? ms(measured) / 1000 : seconds, errors, raw }
}
