/** Starting, watching and stopping the servers a benchmark compares. */
import type { Subprocess } from 'bun'

export interface Server {
  name: string
  url: string
  proc: Subprocess
  /** Highest resident set size seen so far, in MB (sampled). */
  peakRssMb(): number
  /** Resets the sampled peak (per run). */
  resetPeak(): void
  stop(): Promise<void>
}

function rssMb(pid: number): number {
  try {
    const status = require('node:fs').readFileSync(`/proc/${pid}/status`, 'utf8') as string
    const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
    return kb / 1024
  } catch {
    return 0
  }
}

export async function waitForPort(url: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    try {
      await fetch(url, { method: 'GET' })
      return
    } catch {
      await Bun.sleep(50)
    }
  }
  throw new Error(`${url} did not come up within ${timeoutMs} ms`)
}

export async function startServer(name: string, cmd: string[], url: string, env: Record<string, string> = {}): Promise<Server> {
  const proc = Bun.spawn(cmd, { env: { ...process.env, ...env }, stdout: 'ignore', stderr: 'pipe' })
  await waitForPort(url)
  let peak = 0
  const timer = setInterval(() => {
    peak = Math.max(peak, rssMb(proc.pid))
  }, 100)
  return {
    name,
    url,
    proc,
    peakRssMb: () => Math.max(peak, rssMb(proc.pid)),
    resetPeak: () => {
      peak = rssMb(proc.pid)
    },
    async stop() {
      clearInterval(timer)
      proc.kill('SIGTERM')
      await Promise.race([proc.exited, Bun.sleep(3000)])
      proc.kill('SIGKILL')
    },
  }
}
