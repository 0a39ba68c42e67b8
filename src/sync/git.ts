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
 * - the caller's `GIT_*` variables that choose the repository, index,
 *   objects, pathspecs, config or identity are left out of git's
 *   environment (run from a git hook, `GIT_DIR` would point the sync at
 *   another repository); those of the way to the remote stay (git-env.ts);
 * - every message taken from git's output is redacted;
 * - git's automatic gc is off (pack-clone.ts keeps the clone packed, in the foreground).
 *
 * Each git runs in a session (so a process group) of its own, with what it
 * starts, and carries a token in its environment that tells its processes
 * apart, so that all of it can be ended at once: past the time limit, at
 * witness's exit, and by the next run when the one that started it was
 * killed (git-group.ts). Without a terminal, ssh cannot ask for a
 * passphrase or a host key's approval: it fails at once, as under cron.
 */
import { gitEnv } from '../git-env.ts'
import { redact } from '../redaction.ts'
import { SyncError } from '../errors.ts'
import { RUN_TOKEN_VAR, followGit, newRunToken } from './git-group.ts'

export interface GitResult {
  code: number
  stdout: string
  stderr: string
  /** stdout as git wrote it, not redacted: for reading data (blobs), never for a message. */
  bytes: Uint8Array
}

export interface GitOptions {
  cwd: string
  /** WITNESS_SYNC_TOKEN, if set. */
  token?: string
  /** The user name sent with the token (WITNESS_SYNC_USER, default "witness"). */
  user?: string
  /** Environment for git (default: this process's), less what git-env.ts leaves out. */
  env?: Record<string, string | undefined>
  /** Per-command time limit (default 120 s). */
  timeoutMs?: number
  /** Where the process group and token of the git running are recorded while it runs (git-group.ts endLeftoverGit). */
  groupFile?: string
}

/** Runs git with `args`, and `input` on its standard input (none when it is not given). */
export type Git = (args: string[], input?: string) => Promise<GitResult>

// Automatic gc off: it would run detached, outside the time limit and the process group; pack-clone.ts packs instead.
const NO_AUTO_GC = ['-c', 'gc.auto=0', '-c', 'maintenance.auto=false']

// Runs in git's shell for `get` only, and prints the token from the environment (not from its own text).
const HELPER = '!f() { test "$1" = get || exit 0; echo "username=${WITNESS_SYNC_USER:-witness}"; echo "password=${WITNESS_SYNC_TOKEN}"; }; f'

/** A git runner for one working directory. Resolves with the exit code; throws only if git cannot run. */
export function createGit(options: GitOptions): Git {
  const secrets = options.token ? [options.token] : []
  const auth = options.token ? ['-c', 'credential.helper=', '-c', `credential.helper=${HELPER}`] : []
  const env: Record<string, string | undefined> = {
    ...gitEnv('remote', options.env ?? process.env),
    GIT_TERMINAL_PROMPT: '0',
    GCM_INTERACTIVE: 'never',
    LC_ALL: 'C',
    WITNESS_SYNC_TOKEN: options.token,
    WITNESS_SYNC_USER: options.user ?? 'witness',
  }
  const timeoutMs = options.timeoutMs ?? 120_000
  return async (args, input) => {
    let proc: Bun.Subprocess<'ignore' | Uint8Array, 'pipe', 'pipe'>
    // A token of this git's own, which it passes to all it starts: what tells them apart (git-group.ts).
    const token = newRunToken()
    try {
      // detached: a new session, so a process group of git's own (its id is git's pid).
      proc = Bun.spawn(['git', ...NO_AUTO_GC, ...auth, ...args], { cwd: options.cwd, env: { ...env, [RUN_TOKEN_VAR]: token }, stdin: input === undefined ? 'ignore' : new TextEncoder().encode(input), stdout: 'pipe', stderr: 'pipe', detached: true })
    } catch (error) {
      throw new SyncError(`sync: cannot run git (${(error as Error).message}); install git`)
    }
    // Recorded, and ended if witness exits first; if it cannot be recorded, git is stopped and this throws.
    const group = followGit(proc, token, options.groupFile)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      group.kill()
    }, timeoutMs)
    try {
      const [bytes, stderr, code] = await Promise.all([new Response(proc.stdout).bytes(), new Response(proc.stderr).text(), proc.exited])
      return {
        code: timedOut ? 124 : code,
        stdout: redact(new TextDecoder().decode(bytes), secrets),
        bytes,
        stderr: timedOut ? `git ${args[0]} timed out after ${timeoutMs} ms` : redact(stderr, secrets),
      }
    } finally {
      clearTimeout(timer)
      group.done()
    }
  }
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
