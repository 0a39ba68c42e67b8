/**
 * Running git for the sync, asynchronously (it must never block `serve`'s
 * event loop), with a time limit, and with credentials kept out of sight:
 *
 * - a token in WITNESS_SYNC_TOKEN reaches git only through its credential
 *   mechanism: an inline helper, given on the command line for this one
 *   call, that prints the token from git's environment. Other helpers are
 *   switched off for the call, so nothing (e.g. `credential.helper=store`)
 *   can save it. It is never put in a remote URL, .git/config, a file, a
 *   commit or a message;
 * - git never prompts (GIT_TERMINAL_PROMPT=0); ssh keys work as usual;
 * - every message taken from git's output is redacted.
 *
 * Each git runs in a session (so a process group) of its own, with what it
 * starts (a remote helper, ssh, a local remote's receive-pack and its
 * hooks), so that all of it can be ended at once: past the time limit, and
 * by the next run when the one that started it was killed (SIGKILL, an OOM
 * kill, a timeout in cron or systemd), which left it running in the clone.
 * The group of the git running is recorded in a file (`groupFile`); the next
 * run ends what is left of it (endLeftoverGit) before it touches the clone,
 * whose lock files it removes. Without a terminal, ssh cannot ask for a
 * passphrase or a host key's approval: it fails at once, as under cron.
 */
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { redact } from '../redaction.ts'
import { SyncError } from '../errors.ts'

export interface GitResult {
  code: number
  stdout: string
  stderr: string
}

export interface GitOptions {
  cwd: string
  /** WITNESS_SYNC_TOKEN, if set. */
  token?: string
  /** The user name sent with the token (WITNESS_SYNC_USER, default "witness"). */
  user?: string
  /** Environment for git (default: this process's). */
  env?: Record<string, string | undefined>
  /** Per-command time limit (default 120 s). */
  timeoutMs?: number
  /** Where the process group of the git running is recorded while it runs (see endLeftoverGit). */
  groupFile?: string
}

export type Git = (args: string[]) => Promise<GitResult>

// Runs in git's shell for `get` only, and prints the token from the environment (not from its own text).
const HELPER = '!f() { test "$1" = get || exit 0; echo "username=${WITNESS_SYNC_USER:-witness}"; echo "password=${WITNESS_SYNC_TOKEN}"; }; f'

/** A git runner for one working directory. Resolves with the exit code; throws only if git cannot run. */
export function createGit(options: GitOptions): Git {
  const secrets = options.token ? [options.token] : []
  const auth = options.token ? ['-c', 'credential.helper=', '-c', `credential.helper=${HELPER}`] : []
  const env: Record<string, string | undefined> = {
    ...(options.env ?? process.env),
    GIT_TERMINAL_PROMPT: '0',
    GCM_INTERACTIVE: 'never',
    LC_ALL: 'C',
    WITNESS_SYNC_TOKEN: options.token,
    WITNESS_SYNC_USER: options.user ?? 'witness',
  }
  const timeoutMs = options.timeoutMs ?? 120_000
  return async (args) => {
    let proc: ReturnType<typeof Bun.spawn<'ignore', 'pipe', 'pipe'>>
    try {
      // detached: a new session, so a process group of git's own (its id is git's pid).
      proc = Bun.spawn(['git', ...auth, ...args], { cwd: options.cwd, env, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe', detached: true })
    } catch (error) {
      throw new SyncError(`sync: cannot run git (${(error as Error).message}); install git`)
    }
    if (options.groupFile) recordGroup(options.groupFile, proc.pid)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(proc.pid)
    }, timeoutMs)
    try {
      const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
      return {
        code: timedOut ? 124 : code,
        stdout: redact(stdout, secrets),
        stderr: timedOut ? `git ${args[0]} timed out after ${timeoutMs} ms` : redact(stderr, secrets),
      }
    } finally {
      clearTimeout(timer)
      if (options.groupFile) rmSync(options.groupFile, { force: true })
    }
  }
}

/** How long endLeftoverGit waits for a group it killed to be gone. */
const LEFTOVER_WAIT_MS = 10_000

/**
 * Ends what is left of the git whose group `groupFile` records, if the run that started it was
 * killed while it ran: SIGKILL to the whole group, then a wait until none of it runs. Call it
 * holding the sync's lock, before touching the clone. A pid is not given out again while a process
 * group of that number has members, and the group's leader is checked by its start time, so no
 * other process is signalled. Where /proc is missing (not Linux), what is left is not looked for.
 * Throws SyncError if the group still runs after LEFTOVER_WAIT_MS.
 */
export async function endLeftoverGit(groupFile: string): Promise<void> {
  const recorded = readGroup(groupFile)
  if (recorded && existsSync('/proc')) {
    const leaderStart = startTimeOf(recorded.pgid)
    // A leader of another start time: the pid was given out again, so the group was gone.
    if (leaderStart === null || leaderStart === recorded.start) {
      const deadline = performance.now() + LEFTOVER_WAIT_MS
      while (groupMembers(recorded.pgid).length) {
        if (performance.now() >= deadline) {
          throw new SyncError(`sync: git left running by a killed run (process group ${recorded.pgid}: ${groupMembers(recorded.pgid).join(', ')}) is still there after SIGKILL; the clone was not touched`)
        }
        killGroup(recorded.pgid)
        await Bun.sleep(20)
      }
    }
  }
  rmSync(groupFile, { force: true })
}

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL')
  } catch {
    // Gone already.
  }
}

function recordGroup(groupFile: string, pid: number): void {
  writeFileSync(groupFile, `${pid} ${startTimeOf(pid) ?? '-'}\n`)
}

function readGroup(groupFile: string): { pgid: number; start: string | null } | null {
  if (!existsSync(groupFile)) return null
  const [pid, start] = readFileSync(groupFile, 'utf8').trim().split(' ')
  const pgid = Number(pid)
  return Number.isSafeInteger(pgid) && pgid > 1 ? { pgid, start: start && start !== '-' ? start : null } : null
}

/** The fields of /proc/<pid>/stat after the command name (state first), or null when there is no such process. */
function statOf(pid: number | string): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name is in parentheses and may hold spaces or parentheses: the fields follow the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return null
  }
}

/** A process's start time (clock ticks after boot), or null when it is gone (or there is no /proc). */
function startTimeOf(pid: number): string | null {
  return statOf(pid)?.[19] ?? null
}

/** The pids in process group `pgid` that still run (a zombie, dead and waiting to be reaped, does not). */
function groupMembers(pgid: number): number[] {
  const members: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const fields = statOf(name)
    if (fields && Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') members.push(Number(name))
  }
  return members
}

/** Runs git and throws a SyncError (with git's redacted message) if it fails. */
export async function gitOk(git: Git, args: string[]): Promise<string> {
  const result = await git(args)
  if (result.code !== 0) throw new SyncError(`sync: git ${args[0]} failed: ${firstLines(result.stderr || result.stdout)}`)
  return result.stdout
}

/** The useful part of git's error output, on one line. */
export function firstLines(text: string, max = 3): string {
  return (
    text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('hint:'))
      .slice(0, max)
      .join(' / ') || '(no message)'
  )
}
