/**
 * witness.yaml's shape: the valibot schemas of every section, the types
 * inferred from them, and the per-attempt defaults. parseConfig
 * (config.ts) validates against them and derives the Config the rest of
 * witness reads.
 */
import * as v from 'valibot'
import { PRESET_NAMES } from '../providers/presets.ts'
import { AgentName } from './validation.ts'

const Ms = v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(86_400_000))
/** The longest wait before a retry (see RetryWaitMs). */
export const MAX_RETRY_WAIT_MS = 240_000
const Count = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(100))
export const Name = v.pipe(v.string(), v.regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'use letters, digits, ".", "_" or "-" (at most 64)'))
/**
 * The name of the environment variable that holds a provider's key, as operators write them
 * (GROQ_API_KEY). A key pasted in its place (Groq's `gsk_…`, Hugging Face's `hf_…`, GitHub's
 * `ghp_…`, Gemini's `AIza…`) is refused: taken for a name, it would be written into every row
 * that says the variable is not set (rows are synced to git), into answers and into logs. The
 * message never shows the value: only its first 4 characters and its length, to find it by.
 */
const ENV_NAME_MESSAGE = 'must name the environment variable that holds the key (like GROQ_API_KEY), not the key itself'
const EnvName = v.pipe(
  v.string(ENV_NAME_MESSAGE),
  v.regex(/^[A-Z_][A-Z0-9_]*$/, (issue) => `${ENV_NAME_MESSAGE}: a name is capital letters, digits and "_" (${givenStart(issue.input)})`),
  // An access key id in capitals and digits (AWS's AKIA…, 20 of them) passes the rule above.
  v.check(
    (name) => name.includes('_') || name.length < 16,
    (issue) => `${ENV_NAME_MESSAGE}: 16 or more capitals and digits without "_" look like a key, not a name (${givenStart(issue.input)})`,
  ),
)
/** At most 4 characters of a value that may be a key, and its length. */
function givenStart(input: unknown): string {
  return `what is given starts ${JSON.stringify(String(input).slice(0, 4))} and is ${String(input).length} characters long`
}
export const DURATION = /^(\d+)(ms|s|m|h|d)$/

/** Names JavaScript reserves on objects: valibot's record leaves such keys out of what it returns. */
const RESERVED_KEYS = ['__proto__', 'constructor', 'prototype']

/**
 * A record keyed by names the operator chooses (providers, chains, agents, prices): a reserved name
 * is refused here, where the record alone would drop its entry without a word (an agent not
 * watched, an operator locked out).
 */
function named<T extends v.GenericSchema>(record: T) {
  const reserved = (input: unknown) => (input !== null && typeof input === 'object' ? RESERVED_KEYS.find((key) => Object.hasOwn(input, key)) : undefined)
  return v.pipe(
    v.custom<unknown>((input) => reserved(input) === undefined, (issue) => `"${reserved(issue.input)}" cannot be a name here (JavaScript reserves it): choose another`),
    record,
  )
}

const HttpUrl = v.pipe(v.string(), v.check((url) => URL.canParse(url) && /^https?:\/\//.test(url), 'must be an http(s) URL'))

/** Timeouts and retries a provider sets and a chain step may override. */
const Tuning = {
  timeout_ms: v.optional(Ms),
  retries: v.optional(Count),
  first_byte_timeout_ms: v.optional(Ms),
  idle_timeout_ms: v.optional(Ms),
}

/** An HTTP header name (a token) and a value fetch can send (below). */
const HeaderName = v.pipe(v.string(), v.regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name (letters, digits and !#$%&\'*+.^_`|~-)'))
// What fetch sends: visible ASCII, spaces and tabs, and Latin-1 (one byte each). Anything else
// (a line break, a control character, an emoji) it refuses, so every call on the provider would fail.
const HeaderValue = v.pipe(
  v.string(),
  v.regex(/^[\t\x20-\x7e\x80-\xff]*$/, 'must be printable text in Latin-1 (no line break, control character or character past U+00FF: HTTP cannot carry it, and every call would fail); percent-encode anything else'),
)

export const ProviderSchema = v.strictObject({
  type: v.optional(v.picklist(['openai', 'anthropic'])),
  preset: v.optional(v.picklist(PRESET_NAMES, `must be one of: ${PRESET_NAMES.join(', ')}`)),
  base_url: v.optional(HttpUrl),
  /** The variable holding the API key; null: the provider takes none (a preset's variable is then not read). */
  api_key_env: v.optional(v.nullable(EnvName)),
  headers: v.optional(v.record(HeaderName, HeaderValue)),
  /**
   * `openai` type: whether a stream asks for its usage chunk (`stream_options.include_usage`), so its
   * row gets token counts. Off for an upstream that refuses the field (the row's tokens are then
   * whatever the stream reports on its own, often none).
   */
  stream_usage: v.optional(v.boolean(), true),
  /**
   * `openai` type: whether a reasoning model's reasoning, kept in an Anthropic client's history as
   * witness's thinking blocks, goes back to the provider that produced it (as `reasoning_content`
   * or `reasoning`, whichever it sent). Kimi, DeepSeek and vLLM want it in a tool loop; Groq and
   * Cerebras refuse the field. Default: true, false for the groq preset.
   */
  send_reasoning: v.optional(v.boolean()),
  /**
   * `anthropic` type: the `max_tokens` sent for an OpenAI client's request that sets none, since
   * the Messages API requires one and OpenAI has no such default. Default: 4096.
   */
  default_max_tokens: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1))),
  ...Tuning,
})

export const StepSchema = v.strictObject({
  provider: v.string(),
  model: v.pipe(v.string(), v.minLength(1), v.maxLength(256)),
  ...Tuning,
})

/**
 * A wait before a retry: at most 4 minutes. The stats treat a 10-minute slice as final 5 minutes
 * after its last call ended (SEAL_AFTER_MS, telemetry/stats-window.ts), so a retry must start by then.
 */
const RetryWaitMs = v.pipe(Ms, v.maxValue(MAX_RETRY_WAIT_MS, `at most ${MAX_RETRY_WAIT_MS} ms (4 minutes): the stats count a request as finished 5 minutes after its last call`))

export const PolicySchema = v.strictObject({
  banned_providers: v.optional(v.array(v.string()), []),
  /** Longest Retry-After witness waits for; a longer one falls back instead. */
  retry_after_cap_ms: v.optional(RetryWaitMs, 10_000),
  backoff_min_ms: v.optional(Ms, 250),
  backoff_max_ms: v.optional(RetryWaitMs, 4_000),
  /** Retry a timed-out attempt on the same step (default: fall back at once). */
  retry_timeouts: v.optional(v.boolean(), false),
  cooldown_failures: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1)), 3),
  cooldown_s: v.optional(v.pipe(v.number(), v.minValue(0)), 60),
})

const Seconds = v.pipe(v.number(), v.minValue(0.001), v.maxValue(31_536_000))
/** A wait set as a timer: Bun runs a timer of more than 2^31 - 1 ms (24.8 days) at once. */
const TimerSeconds = v.pipe(Seconds, v.maxValue(2_147_483, 'at most 2147483 (24.8 days, the longest timer)'))
const Command = v.pipe(v.string(), v.minLength(1), v.maxLength(4096))

/** An agent that heartbeats to witness and what to do when it falls silent. */
export const WatchedAgentSchema = v.strictObject({
  max_silence_s: Seconds,
  /** Run once per silence, with WITNESS_AGENT and WITNESS_CONFIG_HASH in the environment. */
  rollback_command: v.optional(Command),
})

/** The deadman switch: last-known-good config, health windows, agents' heartbeats. */
export const DeadmanSchema = v.strictObject({
  /** The router's own name: agent_name of the rollback rows for its own config. */
  name: v.optional(AgentName, 'witness'),
  check_every_s: v.optional(TimerSeconds, 30),
  /** Passing health (with at least one successful call) this long promotes the config to last known good. */
  promote_after_s: v.optional(Seconds, 300),
  /** Every chain that was called has failed, with no success, this long: unhealthy. */
  failing_window_s: v.optional(Seconds, 300),
  /** Extra time past a call's own timeouts before it counts as stuck. */
  stuck_grace_s: v.optional(Seconds, 30),
  /** Time limit for rollback, restart and alert commands (killed when it passes). */
  command_timeout_s: v.optional(TimerSeconds, 60),
  /** Run by `witness watchdog` after restoring the last-known-good config. */
  restart_command: v.optional(Command),
  /** Run with a one-line summary on every rollback, failed rollback and silent agent. */
  alert_command: v.optional(Command),
  agents: v.optional(named(v.record(AgentName, WatchedAgentSchema)), {}),
})

const Days = v.pipe(v.number(), v.minValue(0), v.maxValue(36_500))
const Path = v.pipe(v.string(), v.minLength(1))
/** `0` (off), or a number with a unit: `500ms`, `30s`, `15m`, `6h`, `1d`. */
const Duration = v.union(
  [v.literal(0), v.literal('0'), v.pipe(v.string(), v.regex(DURATION, 'use 0 or a number with a unit: 500ms, 30s, 15m, 6h, 1d'))],
  'use 0 or a number with a unit: 500ms, 30s, 15m, 6h, 1d',
)
const Branch = v.pipe(v.string(), v.regex(/^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$/, 'must be a plain git branch name'))

export const RetentionSchema = v.strictObject({
  /** Finished rows older than this leave the live database. */
  keep_days: v.optional(Days, 30),
  archive_dir: v.optional(Path, './data/archive'),
  /** 0 keeps archive files forever. */
  archive_keep_days: v.optional(Days, 0),
  /** Past this size, the oldest rows are archived early (default 512, or 80% of database_max_mb if that is lower). */
  max_db_mb: v.optional(v.pipe(v.number(), v.minValue(1))),
})

export const SyncSchema = v.strictObject({
  remote: Path,
  branch: v.optional(Branch, 'main'),
  work_dir: v.optional(Path, './data/sync'),
  every: v.optional(Duration, '15m'),
})

/** Proof: the machine's signing key and how often it signs the chain's head. */
export const ProofSchema = v.strictObject({
  /** The Ed25519 key file (mode 0600); default: witness-key.json next to the database. */
  key_path: v.optional(Path),
  checkpoint_every: v.optional(Duration, '5m'),
})

const TokenHash = v.pipe(v.string(), v.regex(/^[0-9a-fA-F]{64}$/, 'must be the hex sha256 of the token (64 hex digits; see `witness token new`)'))
const Principals = v.optional(named(v.record(AgentName, v.strictObject({ token_sha256: TokenHash }))), {})

/** Who may call witness: token hashes only (the config may live in a git repo). */
export const AuthSchema = v.strictObject({
  agents: Principals,
  operators: Principals,
})

const PerMtok = v.pipe(v.number(), v.minValue(0), v.maxValue(1_000_000))

/** Prices in USD per million tokens, keyed by `provider/model` or `model`. */
export const PricingSchema = named(
  v.record(v.pipe(v.string(), v.minLength(1), v.maxLength(300)), v.strictObject({ input_per_mtok: PerMtok, output_per_mtok: PerMtok })),
)

/**
 * An address to listen on: an IPv4 or IPv6 address (bracketed or not) or a host name. No scheme,
 * port or spaces: check-config must refuse what serve cannot bind (Ansible installs what it passes).
 */
export const LISTEN_HOST_HELP = 'an IP address or a host name, without a scheme, port or spaces (127.0.0.1, ::1, 0.0.0.0, witness.internal)'
const ListenHost = v.pipe(v.string(), v.check(isListenHost, LISTEN_HOST_HELP))

/** Whether `host` is an address witness can listen on (listen.host, serve --host). */
export function isListenHost(host: string): boolean {
  // IPv6, bracketed or not: hex digits and at least two colons (IPv4 may end it: ::ffff:127.0.0.1).
  if (/^(?:\[(?=(?:[^:]*:){2})[0-9a-f:.]+\]|(?=(?:[^:]*:){2})[0-9a-f:.]+)$/i.test(host)) return true
  // Digits and dots only: an IPv4 address, four numbers up to 255 (not 999.1.1.1, not 1.2.3).
  if (/^[\d.]+$/.test(host)) return /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$/.test(host)
  return /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i.test(host)
}

export const ConfigSchema = v.strictObject({
  machine: v.optional(Name),
  listen: v.optional(
    v.strictObject({
      host: v.optional(ListenHost, '127.0.0.1'),
      port: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535)), 8787),
    }),
    {},
  ),
  database: v.optional(v.pipe(v.string(), v.minLength(1)), './data/witness.db'),
  database_sync: v.optional(v.picklist(['full', 'normal']), 'full'),
  database_busy_timeout_ms: v.optional(Ms, 5_000),
  /**
   * Where the writer connection runs: the main thread (default: measured
   * faster on two cores, see docs/BENCHMARKS.md) or its own thread (fsync
   * waits off the event loop, at the cost of a message per batch).
   */
  database_writer: v.optional(v.picklist(['inline', 'thread']), 'inline'),
  /**
   * With `database_sync: full` and the inline writer, where the fsync of each
   * commit is waited for: on Bun's thread pool (default: the event loop never
   * waits for the disk) or inside COMMIT on the event loop (measured 10-15%
   * more requests/s when the CPU is saturated on a fast disk, but every commit
   * stalls every request and stream for one fsync). See src/telemetry/wal-fsync.ts.
   */
  database_fsync: v.optional(v.picklist(['thread_pool', 'event_loop']), 'thread_pool'),
  database_max_mb: v.optional(v.pipe(v.number(), v.minValue(1))),
  max_body_mb: v.optional(v.pipe(v.number(), v.minValue(0.001), v.maxValue(1024)), 32),
  /** The whole request body must arrive within this (a slow or stalled body gets 408). */
  body_timeout_ms: v.optional(Ms, 30_000),
  providers: named(v.record(Name, ProviderSchema)),
  chains: v.pipe(
    named(v.record(Name, v.pipe(v.array(StepSchema), v.minLength(1, 'a chain needs at least one step')))),
    v.check((chains) => Object.keys(chains).length > 0, 'at least one chain: a router without one serves nothing'),
  ),
  policy: v.optional(PolicySchema, {}),
  deadman: v.optional(DeadmanSchema, {}),
  retention: v.optional(RetentionSchema, {}),
  sync: v.optional(SyncSchema),
  proof: v.optional(ProofSchema, {}),
  auth: v.optional(AuthSchema),
  pricing: v.optional(PricingSchema, {}),
})

export type RawConfig = v.InferOutput<typeof ConfigSchema>
export type Policy = v.InferOutput<typeof PolicySchema>
export type Deadman = v.InferOutput<typeof DeadmanSchema>
export type AuthConfig = v.InferOutput<typeof AuthSchema>
export type Pricing = v.InferOutput<typeof PricingSchema>

/** Defaults for the per-attempt knobs when neither provider nor step sets them. */
export const TUNING_DEFAULTS = {
  timeout_ms: 120_000,
  retries: 1,
  first_byte_timeout_ms: 60_000,
  idle_timeout_ms: 30_000,
} as const
