/**
 * What the router knows about its own calls, for /heartbeat and promotion:
 * the calls in flight with their deadlines (a call past every timeout its
 * chain allows is stuck), the last successful call, and since when each
 * chain has failed without a success. Fed by one hook in router/dispatch.ts.
 * Durations are measured on the monotonic clock: a wall clock stepped ahead
 * (NTP, a VM resumed) must not make every call in flight look stuck, nor
 * every chain failing, and so trigger a rollback.
 */
import type { Clock } from '../clock.ts'
import type { Config, StepSpec } from '../config.ts'

/** One request in flight; exactly one of `succeed`/`fail` may be called before `end`. */
export interface CallHandle {
  succeed(): void
  /** The chain was exhausted (every step failed or was skipped), or its stream failed after its first event. */
  fail(): void
  /**
   * Every step refused the request itself (400, 413, 422). That is no failure of a chain on the last
   * known good, or one that has served requests on the running config (one agent's prompt too long);
   * it is one otherwise (a mistyped model is refused so too).
   */
  refused(): void
  end(): void
  /**
   * A write of the call's rows (its pending row, its finish, a fallback row), passed through: while
   * one waits to commit (another process holding the database's lock, up to
   * `database_busy_timeout_ms`), the call is the database's, and that wait moves its deadline on.
   * A locked database is the database's reason, which no rollback of the config cures.
   */
  committing<T>(write: Promise<T>): Promise<T>
}

interface Call {
  chain: string
  startedAt: number
  /** Past it (plus any commit wait under way) the call is stuck; moved on by each commit wait that ended. */
  deadline: number
  /** Writes of the call waiting to commit, and since when one has (null: none). */
  commits: number
  committingSince: number | null
}

interface ChainHealth {
  /** First failure since the last success (null: the last request succeeded). */
  failingSince: number | null
  /** The latest failure since then. */
  failedAt: number | null
  /** Whether a request on it has succeeded since this record began (the config's start or swap). */
  succeeded: boolean
  /** Failures since failingSince. */
  failures: number
  /** Whether the episode went on across a quiet longer than the window (see SPARSE_GAPS). */
  sparse: boolean
}

/**
 * On a config that has not proven itself, a chain that has never served a request on it keeps
 * failing across quiets up to this many windows long (traffic sparser than the window: an agent
 * calling every ten minutes), once it has failed SPARSE_FAILURES times in a row: otherwise a config
 * broken for every call would never count as failing under such traffic, and never be rolled back.
 */
const SPARSE_GAPS = 6
const SPARSE_FAILURES = 3

export class RuntimeState {
  /** Monotonic ms at the start (uptime). */
  readonly startedAt: number
  /** Wall time of the last successful call (reported). */
  lastSuccessAt: number | null = null
  /** The hashes of the configs that successful calls ran on (a call keeps the config it started with). */
  private readonly served = new Set<string>()
  private readonly calls = new Map<number, Call>()
  private readonly chains = new Map<string, ChainHealth>()
  /**
   * Chains a reload removed that no config since has brought back: a request still naming one fails
   * that chain (it was renamed or dropped by mistake). Kept across later reloads, until the running
   * config is the last known good (forgetRemoved), or a restart (see DeadmanSwitch.resume).
   */
  private removed = new Set<string>()
  /** Counts resetChains(): a call begun before a reset reports nothing into the new config's record. */
  private generation = 0
  private nextId = 0

  /** Whether a config (by hash) has proven itself: the last known good (set by the deadman switch). */
  proven: (configHash: string) => boolean = () => false

  constructor(private readonly clock: Clock) {
    this.startedAt = clock.monotonic()
  }

  /** Counts a request in flight on `chain`, with the longest its steps may take. */
  begin(chain: string, steps: readonly StepSpec[], config: Config): CallHandle {
    const id = ++this.nextId
    const now = this.clock.monotonic()
    const call: Call = { chain, startedAt: now, deadline: now + callBudgetMs(steps, config), commits: 0, committingSince: null }
    this.calls.set(id, call)
    // A call that ends after a reload ran on the old config: its chain may be gone, or no longer the
    // same. Counted into the new record, it could hold /heartbeat at 503 for a chain no one calls, or
    // hide a new config on which every call fails.
    const generation = this.generation
    return {
      succeed: () => {
        this.lastSuccessAt = this.clock.now()
        this.served.add(config.hash)
        if (generation === this.generation) this.chains.set(chain, { failingSince: null, failedAt: null, succeeded: true, failures: 0, sparse: false })
      },
      fail: () => {
        if (generation === this.generation) this.failed(chain, config.deadman.failing_window_s * 1000, config.hash)
      },
      refused: () => {
        // Whether a refusal is the request's (a prompt too long for the model) or the config's (a
        // mistyped model, a field the provider does not take, a model too small for the agents) cannot
        // be read from it. On the last known good, or once the chain has served a request on the running
        // config, the config works: the refusal is the request's. Before, it may be the config's.
        if (generation !== this.generation || this.chains.get(chain)?.succeeded || this.proven(config.hash)) return
        this.failed(chain, config.deadman.failing_window_s * 1000, config.hash)
      },
      end: () => {
        this.calls.delete(id)
      },
      committing: <T>(write: Promise<T>): Promise<T> => {
        if (call.commits++ === 0) call.committingSince = this.clock.monotonic()
        return write.finally(() => {
          if (--call.commits === 0 && call.committingSince !== null) {
            call.deadline += this.clock.monotonic() - call.committingSince
            call.committingSince = null
          }
        })
      },
    }
  }

  /**
   * A request named a chain the running config does not have. One a reload removed counts as
   * a failure of that chain: agents still calling it get 404s, which a rollback would cure. Any other
   * name (an agent's typo, a stranger's guess) is not the config's doing, and is not kept.
   */
  unknownChain(chain: string, windowMs: number): void {
    if (this.removed.has(chain)) this.failed(chain, windowMs, null)
  }

  /**
   * A failure of `chain`; one after a quiet longer than `windowMs` since the last begins a new
   * episode, unless the chain has never served a request on a config that has not proven itself
   * (`configHash`) and the quiet is at most SPARSE_GAPS windows.
   */
  private failed(chain: string, windowMs: number, configHash: string | null): void {
    const health = this.chains.get(chain)
    const now = this.clock.monotonic()
    const quiet = health?.failingSince != null && health.failedAt !== null ? now - health.failedAt : null
    const untried = health?.succeeded !== true && configHash !== null && !this.proven(configHash)
    const goesOn = quiet !== null && (quiet <= windowMs || (untried && quiet <= SPARSE_GAPS * windowMs))
    this.chains.set(chain, {
      failingSince: goesOn ? health!.failingSince : now,
      failedAt: now,
      succeeded: health?.succeeded ?? false,
      failures: goesOn ? health!.failures + 1 : 1,
      sparse: goesOn ? health!.sparse || quiet! > windowMs : false,
    })
  }

  inFlight(): number {
    return this.calls.size
  }

  /** Whether a call that started on the config with this hash has succeeded. */
  servedOn(configHash: string): boolean {
    return this.served.has(configHash)
  }

  /** Calls still running past their deadline (their commit waits not counted), oldest first. */
  stuck(): { chain: string; runningMs: number }[] {
    const now = this.clock.monotonic()
    return [...this.calls.values()]
      .filter((c) => now > c.deadline + (c.committingSince === null ? 0 : now - c.committingSince))
      .sort((a, b) => a.startedAt - b.startedAt)
      .map((c) => ({ chain: c.chain, runningMs: now - c.startedAt }))
  }

  /**
   * The chains called so far, when every one of them has been failing,
   * without a success, over at least `windowMs`: from its first failure to
   * its latest, with no quiet longer than the window between two of them,
   * so failures must go on that long. A failure followed by no traffic (a
   * night's quiet after one provider hiccup), or two hours apart, is no
   * outage, and must not hold /heartbeat at 503 and have a good config
   * rolled back. On a config not yet proven, a chain that has never served
   * a call on it fails across quiets of up to SPARSE_GAPS windows too, once
   * it has failed SPARSE_FAILURES times in a row (sparse traffic).
   */
  allChainsFailing(windowMs: number): { chains: string[]; sinceMs: number } | null {
    if (this.chains.size === 0) return null
    const now = this.clock.monotonic()
    let latest = 0
    for (const health of this.chains.values()) {
      if (health.failingSince === null || health.failedAt === null || health.failedAt - health.failingSince < windowMs) return null
      if (health.sparse && health.failures < SPARSE_FAILURES) return null
      latest = Math.max(latest, health.failingSince)
    }
    return { chains: [...this.chains.keys()].sort(), sinceMs: now - latest }
  }

  /**
   * The running config is the last known good (promoted, or reloaded back onto it): the chains
   * removed before it (and their failures) are forgotten. A rollback could not cure them, and an
   * agent left calling one (a forgotten cron) must not, once the rest of the traffic goes quiet,
   * get a proven config rolled back.
   */
  forgetRemoved(): void {
    for (const chain of this.removed) this.chains.delete(chain)
    this.removed.clear()
  }

  /**
   * Forgets chain failures (a new config's chains start with a clean slate). `removed`: the chains
   * the config before had; `has`: whether the new config has a chain (those it has are not removed,
   * and one removed by an earlier reload and brought back is no longer counted).
   */
  resetChains(removed: Iterable<string> = [], has: (chain: string) => boolean = () => false): void {
    this.chains.clear()
    this.removed = new Set([...this.removed, ...removed].filter((chain) => !has(chain)))
    this.generation++
  }
}

/**
 * The longest a request on these steps may take: every try's timeout, the
 * waits between tries (up to the larger of the backoff cap and the
 * Retry-After cap with its jitter), plus `deadman.stuck_grace_s`. Waits for
 * its rows to commit come on top (CallHandle.committing).
 */
function callBudgetMs(steps: readonly StepSpec[], config: Config): number {
  // A Retry-After is waited out with up to a second of jitter (retryWaitMs).
  const wait = Math.max(config.policy.backoff_max_ms, config.policy.retry_after_cap_ms + 1000)
  const tries = steps.reduce((sum, s) => sum + (s.retries + 1) * s.timeoutMs + s.retries * wait, 0)
  return tries + config.deadman.stuck_grace_s * 1000
}
