/** Starting, watching and stopping the servers a benchmark compares. */
import type { Subprocess } from 'bun'
import { readFileSync, writeFileSync } from 'node:fs'

export interface Server {
  name: string
  url: string
  proc: Subprocess
  /** Highest resident set size since the last reset, in MB: the kernel's own peak (VmHWM). */
  peakRssMb(): number
  /** Resets the peak (per run). */
  resetPeak(): void
  stop(): Promise<void>
}

/** A field of /proc/PID/status in MB (VmRSS now, VmHWM the peak). */
function statusMb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024
  } catch {
    return 0
  }
}

/**
 * Resets the kernel's peak RSS of a process to its current RSS (writing 5
 * to clear_refs, Linux 4.0+). The peak is then the kernel's, not a sample:
 * a timer in this process would not fire while wrk runs (spawnSync blocks
 * the event loop), so sampling missed the peak under load.
 */
function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5')
    return true
  } catch {
    return false
  }
}

/** A port no one listens on now, from the kernel (not a fixed range another server may hold). */
export function freePort(): number {
  const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const { port } = probe
  probe.stop(true)
  return port
}

/** Waits for `url` to answer; fails at once if `proc` (the server meant to answer) has exited. */
export async function waitForPort(url: string, proc?: Subprocess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (proc?.exitCode !== null && proc?.exitCode !== undefined) throw new Error(`${url}: the server exited (code ${proc.exitCode}) before answering`)
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
  await waitForPort(url, proc)
  return {
    name,
    url,
    proc,
    peakRssMb: () => statusMb(proc.pid, 'VmHWM'),
    resetPeak: () => {
      if (!resetPeakRss(proc.pid)) throw new Error(`bench: cannot reset the peak RSS of ${name} (/proc/${proc.pid}/clear_refs)`)
    },
    async stop() {
      proc.kill('SIGTERM')
      await Promise.race([proc.exited, Bun.sleep(3000)])
      proc.kill('SIGKILL')
    },
  }
}
