/**
 * The simulator's chaos mode (`chaos-P`): P percent of requests misbehave
 * in a way picked at random from what real providers do: hang, fail (500,
 * 503), rate-limit (429 with Retry-After), send a malformed or empty body,
 * and, for streams, cut the connection, stall, or end without the final
 * event. The pick is drawn from the simulator's seeded generator and
 * recorded with the request, so drills can check each row against what
 * the upstream really did.
 */
import { between } from './random.ts'
import type { Directives } from './directives.ts'

/** Faults any request may get. */
export const CHAOS_FAULTS = ['hang', 'status-500', 'status-503', 'status-429', 'malformed', 'empty'] as const
/** Faults only a stream can get. */
export const STREAM_FAULTS = ['cut', 'stall', 'no-done'] as const

/**
 * Applies chaos to a request's directives. Returns the directives to play
 * and the fault picked (`none` when the request is left alone).
 */
export function pickChaos(d: Directives, stream: boolean, random: () => number): { directives: Directives; fault: string } {
  if (d.chaosPercent === null || random() * 100 >= d.chaosPercent) return { directives: d, fault: 'none' }
  const faults: readonly string[] = stream ? [...CHAOS_FAULTS, ...STREAM_FAULTS] : CHAOS_FAULTS
  const fault = faults[between(random, 0, faults.length - 1)]!
  const out: Directives = { ...d }
  // A cut or stall lands before the last content chunk, so the stream is really broken.
  const at = between(random, 0, Math.max(0, d.chunks - 1))
  switch (fault) {
    case 'hang':
      out.hang = true
      break
    case 'status-429':
      out.status = 429
      out.retryAfterS = 1
      break
    case 'status-500':
    case 'status-503':
      out.status = Number(fault.slice('status-'.length))
      break
    case 'malformed':
      out.malformed = true
      break
    case 'empty':
      out.empty = true
      break
    case 'cut':
      out.cutAfter = at
      break
    case 'stall':
      out.stallAfter = at
      break
    case 'no-done':
      out.noDone = true
      break
  }
  return { directives: out, fault: fault === 'status-429' ? 'status-429+retry-after-1' : fault }
}
