/**
 * witness.yaml's meaning: the pure `parseConfig` (unknown -> Config, or a
 * ConfigError listing every problem with its path) over the schemas of
 * config-schema.ts, with the checks across fields; config-file.ts reads
 * the file.
 */
import { homedir, hostname } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import * as v from 'valibot'
import { PRESETS, type PresetName, isPresetName } from '../providers/presets.ts'
import { ADAPTERS } from '../providers/index.ts'
import { DEFAULT_MAX_TOKENS } from '../providers/translate/to-anthropic.ts'
import { type Wire, isRecord, publicEndpoint } from '../providers/types.ts'
import { ConfigError, type Issue } from './errors.ts'
import { type AuthConfig, ConfigSchema, DURATION, type Deadman, Name, type Policy, type Pricing, type RawConfig, TUNING_DEFAULTS } from './config-schema.ts'
import { sha256 } from './hash.ts'
import { listNames } from './text.ts'
import { pathText, toIssues } from './validation.ts'

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
  issues.push(...routerNameIssues(raw), ...authIssues(raw.auth))
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
 * An agent named like the router (deadman.name), with a token or watched: the router's own rollback
 * rows are under that name, so its token would read them, and its beats would be taken for the router's.
 */
function routerNameIssues(raw: RawConfig): Issue[] {
  const name = raw.deadman.name
  const own = `is the router's own name (deadman.name), under which its rollbacks are written`
  const issues: Issue[] = []
  if (raw.auth && Object.hasOwn(raw.auth.agents, name)) issues.push({ path: `auth.agents.${name}`, message: `${own}: give the agent another name, or the router another deadman.name` })
  if (Object.hasOwn(raw.deadman.agents, name)) issues.push({ path: `deadman.agents.${name}`, message: `${own}: watch the agent under another name, or give the router another deadman.name` })
  return issues
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
