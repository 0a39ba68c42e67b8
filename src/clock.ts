/** Time, injected so tests can move it: wall time for rows, monotonic time for durations. */
export interface Clock {
  /** Wall clock, epoch ms. */
  now(): number
  /** Monotonic ms, for latencies and timeouts. */
  monotonic(): number
}

export const systemClock: Clock = {
  now: () => Date.now(),
  monotonic: () => performance.now(),
}

/** ISO-8601 UTC with milliseconds: 2026-11-25T13:24:33.123Z */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString()
}
