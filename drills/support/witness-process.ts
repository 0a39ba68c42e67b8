/**
 * The server under test: the real `witness serve` in its own process, on a
 * free loopback port, with a config written beside its database in a temp
 * directory. Its log is drained into a bounded tail (an undrained pipe
 * would block it), its memory read from /proc.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnWitness } from '../../test/support/process.ts'
import { writeConfigFile } from '../../test/support/witness.ts'
import type { DrillContext } from './drill.ts'

export interface WitnessProcess {
  url: string
  pid: number
  configPath: string
  dbPath: string
  /** The last lines it logged. */
  logTail(): string
  alive(): boolean
  /** The exit code or signal once it has exited (null while it runs). */
  exitCode(): number | string | null
  /** Resident memory in MB (0 once it has exited). */
  rssMb(): number
  /** Sends the signal and waits for the exit; resolves with the exit code. */
  kill(signal: 'SIGKILL' | 'SIGTERM'): Promise<number>
}

/** Writes `config` (JSON is YAML) as dir/witness.yaml with the database dir/witness.db. */
export function writeDrillConfig(dir: string, config: Record<string, unknown>): string {
  return writeConfigFile(join(dir, 'witness.yaml'), config)
}

/**
 * Starts `witness serve --config <configPath> --port 0`; resolves once it
 * listens. When the drill ends it is killed if still alive, and every
 * "unhandled error" it logged is a problem: failures must be typed.
 */
export async function startWitnessProcess(configPath: string, ctx: Pick<DrillContext, 'cleanup' | 'problems'>): Promise<WitnessProcess> {
  const { proc, url } = await spawnWitness(configPath)
  const lines: string[] = []
  const unhandled: string[] = []
  let unhandledCount = 0
  const reading = (async () => {
    const decoder = new TextDecoder()
    let partial = ''
    try {
      for await (const chunk of proc.stderr) {
        const text = partial + decoder.decode(chunk, { stream: true })
        const complete = text.split('\n')
        partial = complete.pop() ?? ''
        for (const line of complete) {
          lines.push(line)
          if (line.includes('unhandled error') && ++unhandledCount <= 3) unhandled.push(line)
        }
        if (lines.length > 400) lines.splice(0, lines.length - 200)
      }
    } catch {
      // the process is gone
    }
  })()
  ctx.cleanup(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL')
      await proc.exited
    }
    await reading
    ctx.problems.check(unhandledCount === 0, () => `witness (pid ${proc.pid}) logged ${unhandledCount} unhandled error(s), the first:\n${unhandled.join('\n')}`)
  })
  return {
    url,
    pid: proc.pid,
    configPath,
    dbPath: join(configPath, '..', 'witness.db'),
    logTail: () => lines.slice(-40).join('\n'),
    alive: () => proc.exitCode === null && proc.signalCode === null,
    exitCode: () => proc.signalCode ?? proc.exitCode,
    rssMb: () => rssMb(proc.pid),
    async kill(signal) {
      proc.kill(signal)
      // A process that ignores SIGTERM for 10 s is killed.
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000)
      try {
        return await proc.exited
      } finally {
        clearTimeout(timer)
      }
    },
  }
}

/** A process's resident set size in MB, from /proc (0 when it cannot be read). */
export function rssMb(pid: number): number {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0)
    return kb / 1024
  } catch {
    return 0
  }
}
