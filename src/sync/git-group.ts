/**
 * The processes of a sync's git, told apart for certain from every other
 * process, and ended: past git's time limit, when witness exits while git
 * runs, and by the next run when the one that started it was killed.
 *
 * - Each git runs detached: in a session, so a process group, of its own
 *   (the group's id is git's pid), with what it starts (a remote helper,
 *   ssh, a local remote's receive-pack and its hooks).
 * - Each git gets a random token in its environment (RUN_TOKEN_VAR), which
 *   git passes to everything it starts: a process is that git's when its
 *   /proc/<pid>/environ carries the token. One whose environment cannot be
 *   read (another user's, a zombie's) is not.
 * - The group is sent SIGKILL only while one of its members carries the
 *   token, or while git itself is not yet reaped: a process group's id is
 *   not given out again while the group has members (nor a pid before it is
 *   reaped), and every member of a group holding one of git's processes
 *   descends from git (a group lies in one session, and a session is joined
 *   only by being born into it). So a group id given out again (to a
 *   daemon whose leader has exited) is never signalled. Members of git's
 *   group whose environment was emptied (`env -i` in a hook) go with it.
 * - The group and token of the git running are recorded in a file (the
 *   sync's `<work_dir>.lock.git`) while it runs, for the next run should
 *   this one be killed (SIGKILL, an OOM kill): endLeftoverGit. A witness
 *   that exits otherwise (a signal it handles, an error, the server's stop)
 *   ends the gits it runs on its way out (process.on('exit')).
 *
 * Where there is no /proc (not Linux) no process can be told apart: a git
 * not yet reaped is still ended with its group at its time limit and at
 * exit, and what a killed run left is not looked for.
 */
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { SyncError } from '../errors.ts'

/** The variable, in git's environment, that marks its processes. */
export const RUN_TOKEN_VAR = 'WITNESS_SYNC_RUN'

/** How long endLeftoverGit waits for what it killed to be gone. */
const LEFTOVER_WAIT_MS = 10_000
/** How long witness's exit waits for the gits it killed to be gone (beyond it, their record stays for the next run). */
const EXIT_WAIT_MS = 2_000

const HAVE_PROC = existsSync('/proc/self/stat')
const TOKEN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

/** A git's process group, and the token in its environment. */
export interface GitGroup {
  /** The group's id: git's pid (git runs detached). */
  readonly pgid: number
  readonly token: string
}

/** The process Bun.spawn returned, as far as this file needs it. */
export interface SpawnedGit {
  readonly pid: number
  readonly exitCode: number | null
  readonly signalCode: string | number | null
}

/** A git followed from its spawn until it is done. */
export interface FollowedGit {
  /** SIGKILL to git's whole group, if it still is git's (see the top of this file). */
  kill(): void
  /** git is done: it is no longer followed, and its record is removed. */
  done(): void
}

interface Followed extends GitGroup {
  file: string | undefined
  proc: SpawnedGit
}

/** The gits this process runs, ended by its exit. */
const running = new Set<Followed>()
let exitHookSet = false

/** A fresh token for a git's environment (RUN_TOKEN_VAR). */
export function newRunToken(): string {
  return crypto.randomUUID()
}

/**
 * Follows a git just spawned (detached, with `token` in its environment as RUN_TOKEN_VAR) until
 * `done()`: records its group in `file`, and ends it if this process exits first. If the file
 * cannot be written, git is killed with its group and SyncError thrown: a git whose record is
 * missing would be left running, unseen, by a run killed now.
 */
export function followGit(proc: SpawnedGit, token: string, file?: string): FollowedGit {
  const git: Followed = { pgid: proc.pid, token, file, proc }
  running.add(git)
  if (!exitHookSet) {
    exitHookSet = true
    process.on('exit', endAtExit)
  }
  const done = () => {
    running.delete(git)
    if (file) rmSync(file, { force: true })
  }
  if (file) {
    try {
      writeFileSync(file, `${git.pgid} ${token}\n`)
    } catch (error) {
      killIfOurs(git)
      running.delete(git)
      // Not written, or written in part: no token to act on.
      removeQuietly(file)
      throw new SyncError(`sync: cannot record the git running in ${file} (${(error as Error).message}), so a killed run could not end it; git was stopped`)
    }
  }
  return { kill: () => killIfOurs(git), done }
}

/**
 * Ends what is left of the git recorded in `groupFile`, if the run that started it was killed
 * while it ran: SIGKILL to its group while any process in it carries its token, until none does
 * (zombies aside). Call it holding the sync's lock, before touching the clone. A record without a
 * token (an older witness's) is removed, and nothing is signalled. Throws SyncError if git's
 * processes still run after LEFTOVER_WAIT_MS.
 */
export async function endLeftoverGit(groupFile: string): Promise<void> {
  const recorded = readGroup(groupFile)
  if (recorded) {
    const deadline = performance.now() + LEFTOVER_WAIT_MS
    for (let left = marked(recorded); left.length; left = marked(recorded)) {
      if (performance.now() >= deadline) {
        throw new SyncError(`sync: git left running by a killed run (process group ${recorded.pgid}: ${left.join(', ')}) is still there after SIGKILL; the clone was not touched`)
      }
      signalGroup(recorded.pgid)
      await Bun.sleep(20)
    }
  }
  rmSync(groupFile, { force: true })
}

/** At this process's exit: the gits it runs are killed, and their records removed once none of them runs. */
function endAtExit(): void {
  for (const git of running) killIfOurs(git)
  const deadline = performance.now() + EXIT_WAIT_MS
  for (const git of running) {
    while (marked(git).length && performance.now() < deadline) {
      Bun.sleepSync(10)
      killIfOurs(git)
    }
    // Still running (stuck in the kernel): the record stays, and the next run ends it before touching the clone.
    if (git.file && !marked(git).length) removeQuietly(git.file)
  }
}

function removeQuietly(file: string): void {
  try {
    rmSync(file, { force: true })
  } catch {
    // A directory it cannot write to: the next run finds the record and ends what it names, if anything.
  }
}

function killIfOurs(git: Followed): void {
  const reaped = git.proc.exitCode !== null || git.proc.signalCode !== null
  if (!reaped || marked(git).length) signalGroup(git.pgid)
}

function signalGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL')
  } catch {
    // Gone already.
  }
}

function readGroup(groupFile: string): GitGroup | null {
  if (!existsSync(groupFile)) return null
  const [pid, token] = readFileSync(groupFile, 'utf8').trim().split(' ')
  const pgid = Number(pid)
  return Number.isSafeInteger(pgid) && pgid > 1 && token && TOKEN.test(token) ? { pgid, token } : null
}

/** The pids in `group` that run and carry its token (none where there is no /proc). */
function marked(group: GitGroup): number[] {
  if (!HAVE_PROC) return []
  const entry = `\0${RUN_TOKEN_VAR}=${group.token}\0`
  const pids: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || pgidOf(name) !== group.pgid) continue
    // Another user's process cannot be read, and a zombie's environment is gone: neither is git's.
    if (`\0${environOf(name)}`.includes(entry)) pids.push(Number(name))
  }
  return pids
}

/** A process's group id, or null when it is gone. */
function pgidOf(pid: string): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name is in parentheses and may hold spaces or parentheses: the fields follow the last ')'.
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2])
  } catch {
    return null
  }
}

/** A process's environment (NUL-separated, NUL-ended), or '' when it cannot be read. */
function environOf(pid: string): string {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1')
  } catch {
    return ''
  }
}
