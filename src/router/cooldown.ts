/**
 * Cooldown (a circuit breaker per provider+model): after N consecutive
 * failures a target is skipped for a while, then a single probe request is
 * let through; its success closes the breaker, its failure opens it again.
 */
import type { Clock } from '../clock.ts'
import type { ProviderSpec } from '../config.ts'
import { isoTime } from '../clock.ts'
import { ProviderError } from '../../providers/provider-error.ts'

export interface CooldownOptions {
  failures: number
  cooldownMs: number
  clock: Clock
}

interface State {
  consecutive: number
  openUntil: number
  probing: boolean
}

/** What a step may do now. */
export type Admission =
  | { ok: true; ticket: Ticket }
  | { ok: false; reason: string }

/** Reports the outcome of tries admitted by the breaker. */
export interface Ticket {
  /** The one request let through to see whether a cooling target is back: it gets one try, not its step's retries. */
  readonly probe: boolean
  succeed(): void
  fail(error: unknown): void
  /** Ends the ticket without an outcome (client went away); frees a probe slot. */
  release(): void
}

export class Cooldowns {
  private readonly states = new Map<string, State>()

  constructor(private readonly options: CooldownOptions) {}

  /** Asks whether `key` may be called; `force` ignores cooldown (every step cooling down). */
  admit(key: string, force = false): Admission {
    const state = this.states.get(key)
    const now = this.options.clock.now()
    let probe = false
    if (state && state.consecutive >= this.options.failures && !force) {
      if (now < state.openUntil) {
        return { ok: false, reason: `cooling down after ${state.consecutive} consecutive failures (until ${isoTime(state.openUntil)})` }
      }
      if (state.probing) return { ok: false, reason: 'cooling down, a probe request is in flight' }
      state.probing = true
      probe = true
    }
    let done = false
    const end = () => {
      if (probe && !done) {
        const s = this.states.get(key)
        if (s) s.probing = false
      }
      done = true
    }
    return {
      ok: true,
      ticket: {
        probe,
        succeed: () => {
          this.states.delete(key)
          end()
        },
        fail: (error) => {
          if (!counts(error)) return
          const s = this.states.get(key) ?? { consecutive: 0, openUntil: 0, probing: false }
          s.consecutive++
          if (s.consecutive >= this.options.failures) s.openUntil = this.options.clock.now() + this.options.cooldownMs
          this.states.set(key, s)
        },
        release: end,
      },
    }
  }

  /**
   * Forgets what is known of the providers a reload (or a rollback) changed: their failures may
   * have been the old settings' doing (a wrong key, a wrong base URL), and the new ones get a clean
   * slate. Providers left as they were keep theirs: an outage does not end with an unrelated edit.
   */
  forgetProviders(names: Iterable<string>): void {
    const prefixes = [...names].map((name) => `${name}/`)
    if (prefixes.length === 0) return
    for (const key of [...this.states.keys()]) if (prefixes.some((prefix) => key.startsWith(prefix))) this.states.delete(key)
  }

  /** Whether `key` is currently skipped (for "is every step cooling down?"). */
  isCooling(key: string): boolean {
    const state = this.states.get(key)
    if (!state || state.consecutive < this.options.failures) return false
    return this.options.clock.now() < state.openUntil || state.probing
  }

  /** A snapshot for heartbeat and metrics. */
  snapshot(): { key: string; consecutive: number; openUntil: string | null }[] {
    return [...this.states].map(([key, s]) => ({
      key,
      consecutive: s.consecutive,
      openUntil: s.consecutive >= this.options.failures ? isoTime(s.openUntil) : null,
    }))
  }
}

/** Failures that say something about the provider's health (not about the request). */
function counts(error: unknown): boolean {
  if (!(error instanceof ProviderError)) return false
  if (error.kind === 'aborted') return false
  if (error.kind !== 'http') return true
  const status = error.httpStatus ?? 0
  return status >= 500 || [401, 403, 404, 408, 429, 498].includes(status)
}

/** The providers whose settings differ between two configs (or that only one of them has). */
export function changedProviders(previous: ReadonlyMap<string, ProviderSpec>, next: ReadonlyMap<string, ProviderSpec>): string[] {
  const names = new Set([...previous.keys(), ...next.keys()])
  return [...names].filter((name) => JSON.stringify(previous.get(name) ?? null) !== JSON.stringify(next.get(name) ?? null))
}
