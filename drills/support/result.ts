/**
 * What every drill returns: its counts (kills, requests, rows checked,
 * inputs tried, …) and the problems it found, each a sentence naming what
 * was wrong. A drill passes when it found no problem.
 */

/** `small` runs in seconds inside the test suite; `full` is the `npm run drills` size. */
export type DrillSize = 'small' | 'full'

export interface DrillOptions {
  /** Seed for the drill's random choices and its simulators' (default: a fresh one, reported). */
  seed?: number
}

export interface DrillResult {
  drill: string
  size: DrillSize
  /** The seed of its random choices (pass it again to replay the run). */
  seed: number
  durationMs: number
  /** What was done and checked, by name, in the order they are reported. */
  counts: Record<string, number>
  /** Every problem found (the first 200 in full; `problemCount` has them all). */
  problems: string[]
  problemCount: number
  /** Things worth knowing that are not problems (an endpoint skipped, a measurement). */
  notes: string[]
}

/** Collects problems, keeping the first few hundred messages and counting all of them. */
export class Problems {
  readonly list: string[] = []
  count = 0

  add(message: string): void {
    this.count++
    if (this.list.length < 200) this.list.push(message)
  }

  /** Adds `message` unless `ok`; returns `ok`. */
  check(ok: boolean, message: () => string): boolean {
    if (!ok) this.add(message())
    return ok
  }
}

/** Counts a drill keeps as it runs. */
export class Counts {
  readonly values: Record<string, number> = {}

  add(name: string, by = 1): void {
    this.values[name] = (this.values[name] ?? 0) + by
  }

  set(name: string, value: number): void {
    this.values[name] = value
  }

  get(name: string): number {
    return this.values[name] ?? 0
  }
}
