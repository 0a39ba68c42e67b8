/**
 * Runs an operator's command (rollback, restart, alert) with `sh -c`, a
 * time limit and extra environment variables, and reports how it ended:
 * exit status, whether it was killed for time, and the first lines of its
 * output (redacted). The command runs in its own process group, so a
 * timeout kills everything it started, not just the shell; so does a stop of
 * witness past its grace, for the commands still running (CommandGroups).
 */
import { PRESETS } from '../../providers/presets.ts'
import { redact } from '../redaction.ts'
import { withoutControls } from '../text.ts'

export interface CommandOptions {
  /**
   * The environment it inherits (the router's), before `vars`, without witness's own credentials
   * (isWitnessCredential): a command may run where others can reach it (a rollback's git in an
   * agent's checkout runs that checkout's hooks), and none needs the providers' keys or witness's tokens.
   */
  env: Record<string, string | undefined>
  /** Variables it is given (WITNESS_AGENT, WITNESS_CONFIG_HASH, ...). */
  vars: Record<string, string>
  timeoutMs: number
  /** Positional arguments ($1, $2, ...). */
  args?: string[]
  /** Variables holding secrets whatever their names (the providers' api_key_env): their values are cut from the output too. */
  secretNames?: readonly string[]
  /** Where its process group is kept while it runs, to be ended with the others (witness stopping). */
  groups?: CommandGroups
}

export interface CommandResult {
  /** Null when it was killed (timed out) or could not be started. */
  exitStatus: number | null
  timedOut: boolean
  /** The first lines of stdout then stderr. */
  output: string
  durationMs: number
}

export const OUTPUT_LINES = 20
const OUTPUT_CHARS = 4_000
/** After a kill, how long the output pipes are waited for. */
const DRAIN_MS = 500

/** The process groups of commands still running, ended together when witness stops. */
export class CommandGroups {
  private readonly pids = new Set<number>()

  add(pid: number): void {
    this.pids.add(pid)
  }

  delete(pid: number): void {
    this.pids.delete(pid)
  }

  /** Kills the groups of the commands still running. */
  end(): void {
    for (const pid of this.pids) killGroup(pid)
    this.pids.clear()
  }
}

/**
 * The groups of the commands a process runs without a CommandGroups of its own (the watchdog's
 * restart and alert commands): a watchdog stopped while one runs ends it (commands/watchdog.ts),
 * or, run from cron, the command would go on with no time limit and act outside any run.
 */
export const processCommandGroups = new CommandGroups()

export async function runCommand(command: string, options: CommandOptions): Promise<CommandResult> {
  const started = performance.now()
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(options.env)) if (v !== undefined && !isWitnessCredential(k, options.secretNames)) env[k] = v
  Object.assign(env, options.vars)
  let proc: ReturnType<typeof spawn>
  try {
    proc = spawn(command, env, options.args ?? [])
  } catch (error) {
    return { exitStatus: null, timedOut: false, output: `could not start: ${(error as Error).message}`, durationMs: 0 }
  }
  const stdout = collect(proc.stdout)
  const stderr = collect(proc.stderr)
  let timedOut = false
  // Kept while the shell runs: its pid, the group's id, cannot be another process's until it has
  // exited. What it leaves running after it exits is its own (a rollback_command may start a service):
  // not killed later, when that id could have been given to an unrelated process.
  const groups = options.groups ?? processCommandGroups
  groups.add(proc.pid)
  const timer = setTimeout(() => {
    timedOut = true
    killGroup(proc.pid)
  }, options.timeoutMs)
  const exitStatus = await proc.exited
  clearTimeout(timer)
  groups.delete(proc.pid)
  // A child that left the group could hold the pipes open: never wait for them long.
  const drained = await Promise.race([Promise.all([stdout.text, stderr.text]), Bun.sleep(DRAIN_MS).then(() => null)])
  const [out, err] = drained ?? [stdout.sofar(), stderr.sofar()]
  return {
    exitStatus: timedOut || proc.signalCode ? null : exitStatus,
    timedOut,
    output: firstLines(`${out}${err}`, secretsIn(env, options.secretNames)),
    durationMs: Math.round(performance.now() - started),
  }
}

/** How a command ended, for messages: `exited 0`, `timed out after 30 s`. */
export function describeResult(result: CommandResult, timeoutMs: number): string {
  if (result.timedOut) return `timed out after ${timeoutMs / 1000} s (killed)`
  if (result.exitStatus === null) return result.output.startsWith('could not start') ? result.output : 'was killed by a signal'
  return `exited ${result.exitStatus}`
}

export function succeeded(result: CommandResult): boolean {
  return result.exitStatus === 0
}

function spawn(command: string, env: Record<string, string>, args: string[]) {
  return Bun.spawn(['/bin/sh', '-c', command, 'sh', ...args], {
    env,
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    detached: true,
  })
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL')
  } catch {
    // already gone
  }
}

/** Reads a stream, keeping only what the output summary can show. */
function collect(stream: ReadableStream<Uint8Array>): { text: Promise<string>; sofar(): string } {
  let kept = ''
  const decoder = new TextDecoder()
  const text = (async () => {
    for await (const chunk of stream) {
      if (kept.length < OUTPUT_CHARS) kept += decoder.decode(chunk, { stream: true })
    }
    return kept
  })().catch(() => kept)
  return { text, sofar: () => kept }
}

function firstLines(text: string, secrets: readonly string[]): string {
  // Redacted before it is cut: a secret the cut would split leaves no prefix behind.
  // Without control characters (but line ends): a hook in an agent's checkout writes here too, and exports show it.
  const lines = withoutControls(redact(text, secrets)).slice(0, OUTPUT_CHARS).split('\n')
  const kept = lines.slice(0, OUTPUT_LINES).join('\n').trimEnd()
  return lines.length > OUTPUT_LINES ? `${kept}\n…` : kept
}

/**
 * The values of the secrets a command inherits (provider API keys, witness
 * and sync tokens, anything named like a key, token, secret or password,
 * and the variables in `names`): its output goes into rows, so they are cut
 * out whatever shape they have.
 */
function secretsIn(env: Record<string, string | undefined>, names: readonly string[] = []): string[] {
  return Object.entries(env)
    .filter(([name, value]) => value !== undefined && value.length >= 8 && isSecretName(name, names))
    .map(([, value]) => value!)
}

/**
 * Whether a variable holds a credential, for its value's redaction: one the config names
 * (`secretNames`: the providers' api_key_env) or one named like a key, token, secret or password.
 */
function isSecretName(name: string, names: readonly string[] = []): boolean {
  return names.includes(name) || /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL)/i.test(name)
}

/** witness's own tokens, which no command of an operator needs. */
const WITNESS_TOKENS = new Set(['WITNESS_TOKEN', 'WITNESS_SYNC_TOKEN'])
const PRESET_KEYS = new Set<string>(Object.values(PRESETS).flatMap((preset) => ('apiKeyEnv' in preset && preset.apiKeyEnv ? [preset.apiKeyEnv] : [])))

/**
 * Whether a variable is one of witness's own credentials, left out of a command's environment: a
 * provider's key (the config's api_key_env, a preset's), or witness's tokens. Others stay: an
 * alert_command's own (TELEGRAM_BOT_TOKEN), where systemd put the service's (CREDENTIALS_DIRECTORY).
 */
function isWitnessCredential(name: string, names: readonly string[] = []): boolean {
  return names.includes(name) || WITNESS_TOKENS.has(name) || PRESET_KEYS.has(name)
}

/** The variables a config reads provider API keys from (`api_key_env`, or a preset's). */
export function apiKeyNames(config: { providers: ReadonlyMap<string, { apiKeyEnv: string | null }> }): string[] {
  return [...config.providers.values()].flatMap((p) => (p.apiKeyEnv ? [p.apiKeyEnv] : []))
}
