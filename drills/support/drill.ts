/**
 * Running a drill: its seed, a temp directory, simulators and processes
 * that are stopped however the drill ends, and the bookkeeping that turns
 * its problems and counts into a DrillResult.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freshSeed } from '../../src/sim/random.ts'
import { type Simulator, type SimulatorOptions, startSimulator } from '../../src/sim/server.ts'
import { Counts, type DrillOptions, type DrillResult, type DrillSize, Problems } from './result.ts'

export interface DrillContext {
  seed: number
  /** A temp directory, removed when the drill ends. */
  dir: string
  problems: Problems
  counts: Counts
  notes: string[]
  /** Runs `fn` when the drill ends, however it ends (last registered, first run). */
  cleanup(fn: () => unknown): void
  /** Starts a simulator (seeded with the drill's seed unless told otherwise), stopped when the drill ends. */
  simulator(options?: SimulatorOptions): Simulator
}

/** Runs a drill body with its bookkeeping and returns the result; a body that throws is a problem, not a crash. */
export async function runDrill(drill: string, size: DrillSize, options: DrillOptions, body: (ctx: DrillContext) => Promise<void>): Promise<DrillResult> {
  const startedAt = performance.now()
  const seed = options.seed ?? freshSeed()
  const problems = new Problems()
  const counts = new Counts()
  const notes: string[] = []
  const cleanups: (() => unknown)[] = []
  const cleanup = (fn: () => unknown) => void cleanups.push(fn)
  const dir = mkdtempSync(join(tmpdir(), `witness-drill-${drill}-`))
  cleanup(() => rmSync(dir, { recursive: true, force: true }))
  const simulator = (simOptions: SimulatorOptions = {}) => {
    const sim = startSimulator({ seed, ...simOptions })
    cleanup(() => sim.stop())
    return sim
  }
  try {
    await body({ seed, dir, problems, counts, notes, cleanup, simulator })
  } catch (error) {
    problems.add(`the drill itself failed: ${(error as Error).stack ?? String(error)}`)
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn()
      } catch (error) {
        problems.add(`cleaning up failed: ${(error as Error).message}`)
      }
    }
  }
  return {
    drill,
    size,
    seed,
    durationMs: Math.round(performance.now() - startedAt),
    counts: counts.values,
    problems: problems.list,
    problemCount: problems.count,
    notes,
  }
}
