/**
 * witness.yaml: valibot schemas, the pure `parseConfig` (unknown -> Config,
 * or a ConfigError listing every problem with its path) and `loadConfig`,
 * which reads the file, parses YAML with Bun and hashes the bytes.
 */
import { readFileSync } from 'node:fs'
import { homedir, hostname } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import * as v from 'valibot'
import { LineCounter, isMap, isNode, isScalar, isSeq, parseAllDocuments, parseDocument } from 'yaml'
import { PRESETS, PRESET_NAMES, type PresetName, isPresetName } from '../providers/presets.ts'
import { ADAPTERS } from '../providers/index.ts'
import { DEFAULT_MAX_TOKENS } from '../providers/translate/to-anthropic.ts'
import { type Wire, isRecord, publicEndpoint } from '../providers/types.ts'
import { ConfigError, type Issue } from './errors.ts'
import { sha256 } from './hash.ts'
import { listNames } from './text.ts'
import { AgentName, pathText, toIssues } from './validation.ts'

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
const DURATION = /^(\d+)(ms|s|m|h|d)$/

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

export interface ProviderSpec {
  name: string
  type: Wire
  preset: PresetName | null
  baseUrl: string
  /** The URL called (base URL plus /chat/completions or /messages), worked out once. */
  endpoint: string
  /** The same as stored in rows: no query string, no credentials. */
  publicEndpoint: string
  apiKeyEnv: string | null
  headers: Record<string, string>
  /** Whether an `openai` stream asks for its usage chunk. */
  streamUsage: boolean
  /** Whether a model's reasoning goes back to it in the history (send_reasoning). */
  sendReasoning: boolean
  /** An `anthropic` provider's max_tokens for an OpenAI client's request without one (default_max_tokens). */
  defaultMaxTokens: number
}

export interface StepSpec {
  provider: ProviderSpec
  model: string
  timeoutMs: number
  retries: number
  firstByteTimeoutMs: number
  idleTimeoutMs: number
}

/** retention: with its directory resolved against the config file. */
export interface RetentionSettings {
  keepDays: number
  archiveDir: string
  archiveKeepDays: number
  maxDbMb: number
}

/** sync: with paths resolved and `every` in ms (0 = only on demand). */
export interface SyncSettings {
  remote: string
  branch: string
  workDir: string
  everyMs: number
}

export interface Config {
  raw: RawConfig
  /** sha256 of the file's bytes (or of the canonical JSON when parsed from an object). */
  hash: string
  /** The file it came from, if any. */
  path: string | null
  machine: string
  databasePath: string
  maxBodyBytes: number
  bodyTimeoutMs: number
  providers: Map<string, ProviderSpec>
  chains: Map<string, StepSpec[]>
  policy: Policy
  deadman: Deadman
  retention: RetentionSettings
  /** null when the config has no `sync:` section. */
  sync: SyncSettings | null
  proof: { keyPath: string; checkpointEveryMs: number }
  /** Token hashes of agents and operators; null means witness runs open (loopback only). */
  auth: AuthConfig | null
  pricing: Pricing
}

export interface ParseOptions {
  /** Directory relative paths in the config are resolved against. */
  baseDir?: string
  hash?: string
  path?: string | null
  /** The host's name, the default `machine`; default: os.hostname(). */
  hostname?: string
  /**
   * The providers the document declares as written. Set when a copy is checked again with its
   * wrong parts taken out: a provider taken out for its own problems is not unknown to its chains.
   */
  declaredProviders?: ReadonlySet<string>
}

/** Validates a parsed config document; throws ConfigError listing every problem. */
export function parseConfig(input: unknown, options: ParseOptions = {}): Config {
  const source = options.path ?? '(inline)'
  const result = v.safeParse(ConfigSchema, input)
  if (!result.success) {
    const issues = toIssues(result.issues)
    // A problem at, under or above one already listed is not listed again: above it, it is most likely
    // of the taking out (a chain whose only step was taken out is empty), not the operator's.
    const within = (inner: string, outer: string) => inner === outer || inner.startsWith(`${outer}.`) || inner.startsWith(`${outer}[`)
    for (const more of alsoWrong(input, result.issues, options)) {
      if (!issues.some((r) => within(more.path, r.path) || within(r.path, more.path))) issues.push(more)
    }
    throw new ConfigError(source, issues)
  }
  const raw = result.output
  const issues: Issue[] = []

  const providers = new Map<string, ProviderSpec>()
  for (const [name, p] of Object.entries(raw.providers)) {
    const presetName = p.preset ?? (isPresetName(name) ? name : null)
    const preset = presetName ? PRESETS[presetName] : null
    const type = p.type ?? preset?.type
    const baseUrl = p.base_url ?? preset?.baseUrl
    if (!type) issues.push({ path: `providers.${name}.type`, message: 'set type (openai or anthropic) or a preset' })
    if (type === 'openai' && p.default_max_tokens !== undefined) {
      issues.push({ path: `providers.${name}.default_max_tokens`, message: 'only for an anthropic provider (an OpenAI-compatible one takes a request without max_tokens)' })
    }
    if (!baseUrl) {
      issues.push({
        path: `providers.${name}.base_url`,
        message: presetName ? `preset "${presetName}" needs a base_url` : 'set base_url or a preset',
      })
    }
    if (type && baseUrl) {
      const endpoint = ADAPTERS[type].endpoint(baseUrl)
      providers.set(name, {
        name,
        type,
        preset: presetName,
        baseUrl,
        endpoint,
        publicEndpoint: publicEndpoint(endpoint),
        apiKeyEnv: p.api_key_env !== undefined ? p.api_key_env : preset && 'apiKeyEnv' in preset ? preset.apiKeyEnv : null,
        headers: p.headers ?? {},
        streamUsage: p.stream_usage,
        sendReasoning: p.send_reasoning ?? !(preset && 'refusesReasoning' in preset),
        defaultMaxTokens: p.default_max_tokens ?? DEFAULT_MAX_TOKENS,
      })
    }
  }

  const banned = new Set(raw.policy.banned_providers)
  const chains = new Map<string, StepSpec[]>()
  for (const [chainName, steps] of Object.entries(raw.chains)) {
    const resolved: StepSpec[] = []
    steps.forEach((step, i) => {
      const path = `chains.${chainName}[${i}].provider`
      const rawProvider = Object.hasOwn(raw.providers, step.provider) ? raw.providers[step.provider] : undefined
      if (!rawProvider) {
        if (options.declaredProviders?.has(step.provider)) {
          // Its own problems are listed; a ban is the chain's, and is listed too.
          if (banned.has(step.provider)) issues.push({ path, message: `provider "${step.provider}" is banned by policy.banned_providers ("${step.provider}")` })
          return
        }
        const defined = [...(options.declaredProviders ?? Object.keys(raw.providers))]
        issues.push({ path, message: `unknown provider "${step.provider}"; defined: ${listNames(defined)}` })
        return
      }
      const spec = providers.get(step.provider)
      const hit = [step.provider, spec?.preset, spec?.type].find((n) => n && banned.has(n))
      if (hit) {
        issues.push({ path, message: `provider "${step.provider}" is banned by policy.banned_providers ("${hit}")` })
        return
      }
      if (!spec) return
      const pick = <K extends keyof typeof TUNING_DEFAULTS>(key: K): number => step[key] ?? rawProvider[key] ?? TUNING_DEFAULTS[key]
      resolved.push({
        provider: spec,
        model: step.model,
        timeoutMs: pick('timeout_ms'),
        retries: pick('retries'),
        firstByteTimeoutMs: pick('first_byte_timeout_ms'),
        idleTimeoutMs: pick('idle_timeout_ms'),
      })
    })
    chains.set(chainName, resolved)
  }
  if (raw.policy.backoff_max_ms < raw.policy.backoff_min_ms) {
    issues.push({ path: 'policy.backoff_max_ms', message: 'must be at least policy.backoff_min_ms' })
  }
  const { retention } = raw
  if (retention.archive_keep_days > 0 && retention.archive_keep_days < retention.keep_days) {
    issues.push({ path: 'retention.archive_keep_days', message: 'must be 0 (keep forever) or at least retention.keep_days' })
  }
  if (raw.database_max_mb !== undefined && retention.max_db_mb !== undefined && retention.max_db_mb >= raw.database_max_mb) {
    issues.push({ path: 'retention.max_db_mb', message: 'must be below database_max_mb, or early archiving never happens before writes are refused' })
  }
  // A password, or over http(s) any user part at all (`https://ghp_…@github.com/…`: a token as the user name).
  if (raw.sync && (/^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]*@/i.test(raw.sync.remote) || /^https?:\/\/[^/@]*@/i.test(raw.sync.remote))) {
    issues.push({ path: 'sync.remote', message: 'must not contain a password or token (nor, over http(s), a user name); set WITNESS_SYNC_TOKEN (and WITNESS_SYNC_USER) instead' })
  }
  const machine = raw.machine ?? defaultMachine(options.hostname ?? hostname(), issues)
  issues.push(...authIssues(raw.auth))
  const open = openListenProblem(raw.listen.host, Boolean(raw.auth))
  if (open) issues.push({ path: 'listen.host', message: open })
  if (issues.length) throw new ConfigError(source, issues)

  const baseDir = options.baseDir ?? process.cwd()
  // `~/…` is the home directory, as in a shell; other relative paths are the config file's directory's.
  const home = (path: string) => (path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(2)) : path)
  const inBase = (path: string) => (isAbsolute(home(path)) ? home(path) : resolve(baseDir, path))
  return {
    raw,
    hash: options.hash ?? sha256(JSON.stringify(input)),
    path: options.path ?? null,
    machine,
    databasePath: inBase(raw.database),
    maxBodyBytes: Math.floor(raw.max_body_mb * 1024 * 1024),
    bodyTimeoutMs: raw.body_timeout_ms,
    providers,
    chains,
    policy: raw.policy,
    deadman: raw.deadman,
    retention: {
      keepDays: retention.keep_days,
      archiveDir: inBase(retention.archive_dir),
      archiveKeepDays: retention.archive_keep_days,
      maxDbMb: retention.max_db_mb ?? Math.min(512, (raw.database_max_mb ?? Infinity) * 0.8),
    },
    sync: raw.sync
      ? {
          remote: isLocalPath(raw.sync.remote) ? inBase(raw.sync.remote) : raw.sync.remote,
          branch: raw.sync.branch,
          workDir: inBase(raw.sync.work_dir),
          everyMs: durationMs(raw.sync.every),
        }
      : null,
    proof: {
      keyPath: raw.proof.key_path ? inBase(raw.proof.key_path) : join(dirname(inBase(raw.database)), 'witness-key.json'),
      checkpointEveryMs: durationMs(raw.proof.checkpoint_every),
    },
    auth: raw.auth ?? null,
    pricing: raw.pricing,
  }
}

/**
 * The machine's name when `machine:` is not set: the host name exactly as
 * os.hostname() gives it. It names the machine's folder in the sync export,
 * so it must pass the same check as `machine:` (no `/`, no leading `.`, not
 * empty); a host name that does not is a config problem, never quietly
 * changed into a name that might be another machine's.
 */
function defaultMachine(host: string, issues: Issue[]): string {
  const checked = v.safeParse(Name, host)
  if (!checked.success) {
    issues.push({ path: 'machine', message: `not set, and the host name ${JSON.stringify(host)} cannot name this machine's folder (${checked.issues[0].message}); set machine: explicitly` })
  }
  return host
}

/**
 * One line per provider whose API key variable (its `api_key_env`, or its preset's) is not set, or
 * set empty, in `env`: every step on it is skipped ("API key … is not set"), so a router started
 * so would answer 502 to every call through it. Names the variable, never a value.
 */
export function unsetApiKeys(config: Pick<Config, 'providers'>, env: Record<string, string | undefined>): string[] {
  return keylessProviders(config, env).map(
    ({ name, variable, state }) => `provider "${name}": its API key variable ${variable} is ${state} in this environment, so its steps will be skipped`,
  )
}

/**
 * The providers a chain calls whose API key variable is not set (or empty) in `env`, each with the
 * chains that call it: what `check-config --require-keys` refuses (a provider no chain names is
 * never called, so its key is not needed).
 */
export function keylessChainProviders(config: Pick<Config, 'providers' | 'chains'>, env: Record<string, string | undefined>): { name: string; variable: string; state: 'not set' | 'empty'; chains: string[] }[] {
  return keylessProviders(config, env).flatMap((missing) => {
    const chains = [...config.chains].filter(([, steps]) => steps.some((step) => step.provider.name === missing.name)).map(([chain]) => chain)
    return chains.length ? [{ ...missing, chains }] : []
  })
}

function keylessProviders(config: Pick<Config, 'providers'>, env: Record<string, string | undefined>): { name: string; variable: string; state: 'not set' | 'empty' }[] {
  return [...config.providers.values()].flatMap(({ name, apiKeyEnv }) => {
    if (!apiKeyEnv || env[apiKeyEnv]?.trim()) return []
    return [{ name, variable: apiKeyEnv, state: env[apiKeyEnv] === undefined ? ('not set' as const) : ('empty' as const) }]
  })
}

/** `15m` -> 900000; `0` -> 0. */
export function durationMs(value: 0 | string): number {
  if (value === 0 || value === '0') return 0
  const [, amount, unit] = DURATION.exec(value)!
  const unitMs = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit as 'ms' | 's' | 'm' | 'h' | 'd']
  return Number(amount) * unitMs
}

/** A git remote that is a path on this machine (not a URL, not scp-like `host:path`). */
function isLocalPath(remote: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:\/\//i.test(remote) && !/^[^/]+:/.test(remote)
}

/**
 * An `auth` that lists nobody would answer every endpoint with 401; two principals sharing a token
 * hash would make a token's identity ambiguous.
 */
function authIssues(auth: AuthConfig | undefined): Issue[] {
  if (!auth) return []
  if (Object.keys(auth.agents).length === 0 && Object.keys(auth.operators).length === 0) {
    return [{ path: 'auth', message: 'lists no agent and no operator, so every endpoint would answer 401: list at least one (see `witness token new`); to run open, leave `auth` out (then witness listens on loopback only)' }]
  }
  const issues: Issue[] = []
  const seen = new Map<string, string>()
  for (const kind of ['agents', 'operators'] as const) {
    for (const [name, { token_sha256 }] of Object.entries(auth[kind])) {
      const path = `auth.${kind}.${name}.token_sha256`
      const hash = token_sha256.toLowerCase()
      const other = seen.get(hash)
      if (other) issues.push({ path, message: `same token hash as ${other}; every agent and operator needs its own token` })
      else seen.set(hash, `auth.${kind}.${name}`)
    }
  }
  return issues
}

/**
 * Why witness must not listen on `host` (null when it may). Without `auth`
 * any client can name itself any agent, so an open witness stays on loopback.
 */
export function openListenProblem(host: string, hasAuth: boolean): string | null {
  if (hasAuth || isLoopback(host)) return null
  return `"${host}" is not a loopback address, and without \`auth\` witness runs open (any client could write rows under any agent's name); set \`auth\` (see \`witness token new\`) or listen on 127.0.0.1`
}

function isLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || /^::ffff:127\./.test(h)
}

/**
 * What else is wrong with a config that failed its schema: the checks across settings (a chain
 * naming an unknown or banned provider, a provider without a base URL, an open listen address)
 * run only on a config that passed it. So the parts the schema refused are taken out (and where
 * a required value was refused, what holds it: the step, the entry), and the rest is checked
 * again. Every problem is listed at once, not one round of fixes at a time. The problems found
 * are returned at the places they have in `input`: a step taken out moves those after it up, and
 * their paths are moved back.
 */
function alsoWrong(input: unknown, refused: readonly v.BaseIssue<unknown>[], options: ParseOptions, depth = 0): Issue[] {
  if (depth >= 3 || input === null || typeof input !== 'object') return []
  const pruned = structuredClone(input) as Record<string, unknown>
  // What to take out, found before anything is: taking an array's item out moves the ones after it.
  const out = new Map<object, { path: string; keys: Set<string | number> }>()
  for (const issue of refused) {
    const keys = (issue.path ?? []).map((item) => item.key as string | number)
    if (keys.length === 0) return [] // the whole document is wrong: nothing to check across
    const holders: unknown[] = [pruned]
    for (const key of keys.slice(0, -1)) {
      const here = holders.at(-1)
      holders.push(here !== null && typeof here === 'object' ? (here as Record<string | number, unknown>)[key] : undefined)
    }
    // A value already taken out and now missing was required: take out what holds it (the step, the entry).
    let level = keys.length - 1
    const present = (at: number) => {
      const holder = holders[at]
      return holder !== null && typeof holder === 'object' && keys[at]! in holder && !out.get(holder)?.keys.has(keys[at]!)
    }
    if (!present(level) && level > 0) level--
    if (!present(level)) continue
    const holder = holders[level] as object
    if (!out.has(holder)) out.set(holder, { path: pathText(keys.slice(0, level)), keys: new Set() })
    out.get(holder)!.keys.add(keys[level]!)
  }
  if (out.size === 0) return []
  // Array items taken out, by the array's path: a path into `pruned` is put back at its place in `input`.
  const removed = new Map<string, number[]>()
  for (const [holder, { path, keys }] of out) {
    if (Array.isArray(holder)) {
      const indexes = [...keys].map(Number).sort((a, b) => a - b)
      for (const index of [...indexes].reverse()) holder.splice(index, 1)
      removed.set(path, indexes)
    } else for (const key of keys) delete (holder as Record<string | number, unknown>)[key]
  }
  const restore = (issue: Issue): Issue => ({ ...issue, path: placeBefore(issue.path, removed) })
  const providers = (input as Record<string, unknown>).providers
  const written = options.declaredProviders ?? new Set(isRecord(providers) ? Object.keys(providers) : [])
  const again = v.safeParse(ConfigSchema, pruned)
  if (!again.success) return [...toIssues(again.issues), ...alsoWrong(pruned, again.issues, { ...options, declaredProviders: written }, depth + 1)].map(restore)
  try {
    parseConfig(pruned, { ...options, declaredProviders: written })
    return []
  } catch (error) {
    return error instanceof ConfigError ? error.issues.map(restore) : []
  }
}

/** `path` in an array some of whose items were taken out, at the place it had before. */
function placeBefore(path: string, removed: ReadonlyMap<string, readonly number[]>): string {
  for (const [array, indexes] of removed) {
    if (!path.startsWith(`${array}[`)) continue
    const close = path.indexOf(']', array.length)
    let index = Number(path.slice(array.length + 1, close))
    for (const gone of indexes) if (gone <= index) index++
    return `${array}[${index}]${path.slice(close + 1)}`
  }
  return path
}

/** The path of the config file: --config, then WITNESS_CONFIG, then ./witness.yaml. */
export function configPathFrom(flag: string | undefined): string {
  return flag ?? process.env.WITNESS_CONFIG ?? 'witness.yaml'
}

/** Reads, parses and validates a YAML config file. */
export function loadConfig(path: string): Config {
  const absolute = resolve(path)
  return parseConfigText(readConfigBytes(absolute), absolute)
}

/** A config file's bytes (what its hash is taken of); a ConfigError when it cannot be read. */
export function readConfigBytes(path: string): Uint8Array {
  try {
    return readFileSync(path)
  } catch (error) {
    throw new ConfigError(path, [{ path: '', message: `cannot read file: ${(error as Error).message}` }])
  }
}

/** Parses config file bytes as if they were at `path` (used for reloads and validation). */
export function parseConfigText(bytes: Uint8Array, path: string): Config {
  const text = utf8Text(bytes, path)
  let doc: unknown
  try {
    doc = Bun.YAML.parse(text)
  } catch (error) {
    throw new ConfigError(path, yamlProblems(text, error as Error))
  }
  // The `yaml` package reads the file again, for what Bun's parser does not say: several
  // documents (`---`, which Bun reads as a list of them) and keys given twice (duplicateKeys).
  const lines = new LineCounter()
  const documents = parseAllDocuments(text, { uniqueKeys: false, lineCounter: lines })
  if (documents.length > 1) throw new ConfigError(path, [{ path: '', message: `holds ${documents.length} YAML documents (separated by ---); a config is one mapping (providers:, chains:, …)` }])
  if (Array.isArray(doc)) throw new ConfigError(path, [{ path: '', message: 'is a list; a config is one mapping (providers:, chains:, …)' }])
  // Nothing but blank lines and comments: YAML reads that as null, which valibot words as a wrong type.
  if (documents.length === 0 || documents[0]!.contents === null) {
    throw new ConfigError(path, [{ path: '', message: 'is empty (nothing but blank lines or comments): a config needs at least providers: and chains: (see the README\'s Config section)' }])
  }
  if (doc === null || typeof doc !== 'object') throw new ConfigError(path, [{ path: '', message: 'holds a single value, not a mapping; a config is one mapping (providers:, chains:, …)' }])
  const options = { baseDir: dirname(path), hash: sha256(bytes), path }
  const duplicates = documents[0] ? duplicateKeys(documents[0].contents, lines) : []
  if (!duplicates.length) return parseConfig(doc, options)
  // Listed with whatever else is wrong: the later key would silently have replaced the earlier.
  let others: Issue[] = []
  try {
    parseConfig(doc, options)
  } catch (error) {
    if (error instanceof ConfigError) others = error.issues
  }
  throw new ConfigError(path, [...duplicates, ...others])
}

/** The file's text; a ConfigError naming the line of the first byte that is not UTF-8 (a decoder would have put U+FFFD in its place unsaid). */
function utf8Text(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    // not UTF-8: where, below
  }
  const decodes = (end: number, whole: boolean) => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, end), { stream: !whole })
      return true
    } catch {
      return false
    }
  }
  // The shortest prefix that fails holds the bad byte last (a prefix cut inside a character does not fail).
  let good = 0
  let bad = decodes(bytes.length, false) ? bytes.length + 1 : bytes.length
  while (bad - good > 1) {
    const mid = (good + bad) >> 1
    if (decodes(mid, false)) good = mid
    else bad = mid
  }
  let at = Math.min(bad, bytes.length) - 1
  // A character's first byte whose sequence the failing byte broke is the one to name (not one whose
  // sequence ended before it).
  for (let i = at - 1; i >= Math.max(0, at - 3) && bytes[i]! >= 0x80; i--) {
    const lead = bytes[i]!
    if (lead < 0xc0) continue
    if (i + (lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2) > at) at = i
    break
  }
  const line = bytes.subarray(0, at).filter((b) => b === 0x0a).length + 1
  const where = bad > bytes.length ? `a character cut short at the end (line ${line})` : `byte 0x${bytes[at]!.toString(16).toUpperCase().padStart(2, '0')} at line ${line}`
  throw new ConfigError(path, [{ path: '', message: `is not UTF-8: ${where}; save the file as UTF-8` }])
}

/** Where a file Bun cannot parse is wrong: the `yaml` package's errors say the line and column (Bun's do not). */
function yamlProblems(text: string, error: Error): Issue[] {
  // Their first line names the place ("… at line 8, column 1:"); the lines after it draw it.
  const found = parseDocument(text).errors.map((e) => ({ path: '', message: `not valid YAML: ${e.message.split('\n')[0]!.replace(/:$/, '')}` }))
  return found.length ? found : [{ path: '', message: `not valid YAML: ${error.message}` }]
}

/**
 * Keys given twice in one mapping, each named by its path (`providers.kimi`) and the line of its
 * second appearance. YAML parsers keep the last one without a word, so a second `auth:` block (a
 * pasted `token new`) would drop every agent of the first, a second `policy:` its banned
 * providers. Bun's parser reads the values; the `yaml` package's syntax tree finds these.
 */
function duplicateKeys(contents: unknown, lines: LineCounter): Issue[] {
  const out: Issue[] = []
  const walk = (node: unknown, path: (string | number)[]) => {
    if (isMap(node)) {
      const seen = new Set<string>()
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
        const at = isNode(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]).line : null
        if (seen.has(key)) {
          out.push({ path: pathText([...path, key]), message: `given twice in one mapping${at ? ` (again at line ${at})` : ''}: the later would silently replace the earlier; merge them` })
        }
        seen.add(key)
        walk(pair.value, [...path, key])
      }
    } else if (isSeq(node)) node.items.forEach((item, i) => walk(item, [...path, i]))
  }
  walk(contents, [])
  return out
}

