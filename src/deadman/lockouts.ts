/**
 * Tokens a reload stopped accepting: those of the agents and operators that
 * the config before the last reload knew by a hash this one does not have
 * (a `token_sha256` mistyped in a pushed config, an agent left out, or a
 * token revoked on purpose). Every request carrying one is refused (401).
 * An agent locked out this way is not rolled back for a silence it did not
 * choose, and when the refusals go on for `failing_window_s` without that
 * owner getting in with another token (a rotation clears it), the operator
 * is alerted, once. It is never a health reason: whoever holds a revoked
 * token could then have the watchdog roll the revocation back.
 *
 * Only the dropped entries are kept, across later reloads until a config
 * accepts them again or their owner gets in with another token, and a
 * refused token is hashed against them alone: a stranger's guesses are not
 * counted. A restart compares its config with the last known good instead
 * (DeadmanSwitch.resume): what the last known good accepted is watched
 * again, and alerted on once more, at every start until the running config
 * is the last known good itself.
 */
import type { Clock } from '../clock.ts'
import type { Config } from '../config.ts'
import type { AuthConfig } from '../config-schema.ts'
import { ownerOf } from '../auth/tokens.ts'

interface Refused {
  kind: 'agent' | 'operator'
  name: string
  count: number
  /** Monotonic ms of the first and the latest refusal. */
  firstAt: number
  lastAt: number
  /** The operator has been told of it. */
  alerted: boolean
}

export class Lockouts {
  /** What each reload dropped that no config since has taken back. */
  private dropped: AuthConfig[] = []
  private readonly refused = new Map<string, Refused>()

  constructor(private readonly clock: Clock) {}

  /**
   * A reload swapped `previous` for `next`: the tokens only `previous` accepted are watched from now
   * on, with those earlier reloads dropped that `next` does not accept either. Returns the owners
   * (`agent bezalel`) whose tokens this swap dropped.
   */
  reloaded(previous: Config, next: Config): string[] {
    const still = this.dropped.flatMap((dropped) => droppedBy(dropped, next.auth) ?? [])
    const now = previous.auth ? droppedBy(previous.auth, next.auth) : null
    this.dropped = now ? [...still, now] : still
    // A lockout going on across an unrelated reload goes on (and is not alerted twice); one whose token is taken back ends.
    for (const [key, refused] of this.refused) {
      if (!this.dropped.some((auth) => entriesOf(auth, refused.kind)[refused.name] !== undefined)) this.refused.delete(key)
    }
    return now ? [...Object.keys(now.agents).map((name) => `agent ${name}`), ...Object.keys(now.operators).map((name) => `operator ${name}`)] : []
  }

  /** The running config refused `token`. */
  refusedToken(token: string): void {
    // Every set is hashed against, whichever matches (as ownerOf compares every hash).
    const owners = this.dropped.map((auth) => ownerOf(token, auth))
    const owner = owners.find((o) => o !== null)
    if (!owner) return
    const key = `${owner.kind} ${owner.name}`
    const seen = this.refused.get(key)
    const now = this.clock.monotonic()
    this.refused.set(key, { ...owner, count: (seen?.count ?? 0) + 1, firstAt: seen?.firstAt ?? now, lastAt: now, alerted: seen?.alerted ?? false })
  }

  /**
   * `name` got in with a token the running config accepts (a rotated one): it is not locked out,
   * and its old token is no longer watched. A process left behind that still knocks with the old
   * one (a stale cron) must not keep the agent counted as locked out, which spares it the rollback
   * for a silence of its own.
   */
  accepted(kind: 'agent' | 'operator', name: string): void {
    if (this.refused.size) this.refused.delete(`${kind} ${name}`)
    if (!this.dropped.some((auth) => entriesOf(auth, kind)[name] !== undefined)) return
    this.dropped = this.dropped.flatMap((auth) => {
      const rest = { ...auth, [kind === 'agent' ? 'agents' : 'operators']: Object.fromEntries(Object.entries(entriesOf(auth, kind)).filter(([owner]) => owner !== name)) }
      return Object.keys(rest.agents).length + Object.keys(rest.operators).length ? [rest] : []
    })
  }

  /** What the operator has not been told yet: the owners refused over at least `windowMs` (first refusal to latest). */
  alerts(windowMs: number): string[] {
    const out: string[] = []
    for (const r of this.refused.values()) {
      if (r.alerted || r.lastAt - r.firstAt < windowMs) continue
      r.alerted = true
      out.push(
        `${r.kind} ${r.name}'s token, accepted by an earlier config, has been refused for ${Math.round((r.lastAt - r.firstAt) / 1000)} s (${r.count} times): ` +
          'a token_sha256 mistyped in the config, or a token revoked whose holder has not stopped',
      )
    }
    return out
  }

  /** Whether `agent`'s token was refused within `windowMs`: its silence is the reload's doing. */
  lockedOut(agent: string, windowMs: number): boolean {
    const refused = this.refused.get(`agent ${agent}`)
    return refused !== undefined && this.clock.monotonic() - refused.lastAt <= windowMs
  }
}

/** The agents' or the operators' entries of `auth`. */
function entriesOf(auth: AuthConfig, kind: 'agent' | 'operator'): AuthConfig['agents'] {
  return kind === 'agent' ? auth.agents : auth.operators
}

/** The entries of `previous` whose token `next` does not accept, under any name: a token renamed is not dropped. */
function droppedBy(previous: AuthConfig, next: AuthConfig | null): AuthConfig | null {
  const accepted = new Set(next ? [...Object.values(next.agents), ...Object.values(next.operators)].map((entry) => entry.token_sha256.toLowerCase()) : [])
  const keep = (from: Record<string, { token_sha256: string }>) => Object.fromEntries(Object.entries(from).filter(([, entry]) => !accepted.has(entry.token_sha256.toLowerCase())))
  const dropped = { ...previous, agents: keep(previous.agents), operators: keep(previous.operators) }
  return Object.keys(dropped.agents).length + Object.keys(dropped.operators).length ? dropped : null
}
