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
  /** Resident memory in MB (0 once it has exited). */
  rssMb(): number
  /** Sends the signal and waits for the exit; resolves with the exit code. */
  kill(signal: 'SIGKILL' | 'SIGTERM'): Promise<number>
}

/** Writes `config` (JSON is YAML) as dir/witness.yaml with the database dir/witness.db. */
export function writeDrillConfig(dir: string, config: Record<string, unknown>): string {
  return writeConfigFile(join(dir, 'witness.yaml'), config)
}

/** Starts `witness serve --config <configPath> --port 0`; resolves once it listens. Killed when the drill ends, if still alive. */
export async function startWitnessProcess(configPath: string, ctx: Pick<DrillContext, 'cleanup'>): Promise<WitnessProcess> {
  const { proc, url } = await spawnWitness(configPath)
  ctx.cleanup(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL')
      await proc.exited
    }
  })
  const tail: string[] = []
  void (async () => {
    const decoder = new TextDecoder()
    try {
      for await (const chunk of proc.stderr) {
        tail.push(decoder.decode(chunk, { stream: true }))
        if (tail.length > 200) tail.splice(0, tail.length - 200)
      }
    } catch {
      // the process is gone
    }
  })()
  return {
    url,
    pid: proc.pid,
    configPath,
    dbPath: join(configPath, '..', 'witness.db'),
    logTail: () => tail.join('').split('\n').slice(-40).join('\n'),
    alive: () => proc.exitCode === null && proc.signalCode === null,
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
