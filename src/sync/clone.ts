/**
 * The local clone the export is committed to (`sync.work_dir`), and its
 * exchanges with the remote: fetch and rebase, push with retries, and the
 * count of what waits to be pushed. Its working tree holds only the
 * machine's own folder (own-folder.ts). Each machine only ever writes its own
 * folder, so rebasing onto other machines' pushes never conflicts; a push
 * that loses a race is retried after another fetch and rebase.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { writeTo } from './file-write.ts'
import { join } from 'node:path'
import { SyncError } from '../errors.ts'
import { type Git, firstLines, gitOk } from './git.ts'
import { checkOutOwnFolder } from './own-folder.ts'
import { LOOSE_OBJECTS_MAX } from './pack-clone.ts'

const REPO_ID_FILE = 'witness-repo-id'

export interface Clone {
  /** A random id made when the clone was created (a new clone starts the export over). */
  repoId: string
  /** Whether the clone has no commit yet. */
  empty: boolean
}

/**
 * Creates the clone if needed (init + origin, no network), points origin at `remote`, clears what a
 * killed run left, and checks out only `machine`'s folder (own-folder.ts; an older clone is converted).
 */
export async function prepareClone(git: Git, workDir: string, remote: string, branch: string, machine: string): Promise<Clone> {
  mkdirSync(workDir, { recursive: true })
  const gitDir = join(workDir, '.git')
  if (!existsSync(join(gitDir, REPO_ID_FILE))) {
    if (!existsSync(gitDir)) {
      await gitOk(git, ['init', '-q'])
      await gitOk(git, ['symbolic-ref', 'HEAD', `refs/heads/${branch}`])
    }
    writeTo(join(gitDir, REPO_ID_FILE), `${crypto.randomUUID()}\n`)
  }
  const current = await git(['remote', 'get-url', 'origin'])
  if (current.code !== 0) await gitOk(git, ['remote', 'add', 'origin', remote])
  else if (current.stdout.trim() !== remote) await gitOk(git, ['remote', 'set-url', 'origin', remote])

  // Only witness's own git runs here (under the sync lock), and one a killed run left running has been
  // ended (git-group.ts endLeftoverGit), so any lock git left is a killed git's (the sync kills git
  // past its time limit): HEAD.lock or a ref's lock would fail every later run.
  removeGitLocks(gitDir)
  if (existsSync(join(gitDir, 'rebase-merge')) || existsSync(join(gitDir, 'rebase-apply'))) await git(['rebase', '--abort'])
  const empty = (await git(['rev-parse', '-q', '--verify', 'HEAD'])).code !== 0
  if (!empty) await gitOk(git, ['reset', '-q', '--hard', 'HEAD'])
  await gitOk(git, ['clean', '-fdq', '--', machine])
  // After the reset: what the working tree holds is then HEAD's, and nothing uncommitted is lost.
  await checkOutOwnFolder(git, machine)
  return { repoId: readFileSync(join(gitDir, REPO_ID_FILE), 'utf8').trim(), empty }
}

/** Removes git's lock files (`index.lock`, `HEAD.lock`, `refs/**.lock`, `packed-refs.lock`, ...) under `dir`. */
function removeGitLocks(dir: string): void {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      // The object store holds no locks worth a walk through every object.
      if (entry.name !== 'objects') removeGitLocks(path)
    } else if (entry.name.endsWith('.lock')) rmSync(path, { force: true })
  }
}

export type RemoteState =
  /** Fetched; the clone is rebased onto the remote branch (or the branch does not exist yet). */
  | { reachable: true }
  | { reachable: false; reason: string }

/** The last commit this clone pushed (a remote branch that no longer holds it was rewritten). */
const PUSHED_REF = 'refs/witness/pushed'

/** Fetches the branch and puts the clone's own commits on top of it. */
export async function updateFromRemote(git: Git, branch: string): Promise<RemoteState> {
  // Fewer objects than pack-clone.ts packs at once come loose, and go into its next pack: kept as a pack of their own (git's
  // default past 100), each fetch's pack would hold whole copies of the blobs its deltas need, one such pack a sync.
  const fetched = await git(['-c', `fetch.unpackLimit=${LOOSE_OBJECTS_MAX}`, 'fetch', '-q', 'origin', `+refs/heads/${branch}:refs/remotes/origin/${branch}`])
  if (fetched.code !== 0) {
    if (/couldn't find remote ref/i.test(fetched.stderr)) {
      // No such branch there (yet, or any longer: deleted, or the repository made anew). What this clone
      // took for the remote's is gone with it, so everything it holds counts as waiting, and is pushed.
      await git(['update-ref', '-d', `refs/remotes/origin/${branch}`])
      return { reachable: true }
    }
    return { reachable: false, reason: firstLines(fetched.stderr) }
  }
  const empty = (await git(['rev-parse', '-q', '--verify', 'HEAD'])).code !== 0
  if (empty) {
    await gitOk(git, ['reset', '-q', '--hard', `origin/${branch}`])
    return { reachable: true }
  }
  // A push that timed out here may have landed all the same: what the remote holds of this clone's
  // commits was pushed, and is what a later rewrite of the branch would be told by.
  if ((await git(['merge-base', '--is-ancestor', 'HEAD', `origin/${branch}`])).code === 0) await git(['update-ref', PUSHED_REF, 'HEAD'])
  const rebased = await git(['rebase', '-q', `origin/${branch}`])
  if (rebased.code !== 0) {
    await git(['rebase', '--abort'])
    // What this clone pushed before is gone from the remote branch: its history was rewritten.
    const pushedBefore = await git(['rev-parse', '-q', '--verify', PUSHED_REF])
    const rewritten = pushedBefore.code === 0 && (await git(['merge-base', '--is-ancestor', pushedBefore.stdout.trim(), `origin/${branch}`])).code === 1
    if (rewritten) {
      throw new SyncError(
        `sync: the remote branch ${branch} was rewritten (force-pushed): it no longer holds what this clone pushed before, so its commits cannot be replayed on it. The rows are safe in the database: move sync.work_dir aside and run witness sync again, to export them into a fresh clone (lines the remote has are not written twice)`,
      )
    }
    throw new SyncError(
      `sync: rebasing onto origin/${branch} failed (${firstLines(rebased.stderr || rebased.stdout)}): the remote changed this machine's files. Either another machine uses the same machine name, or the branch was rewritten (force-pushed, after a push of this clone's that it could not confirm). The rows are safe in the database: once the cause is found, move sync.work_dir aside and run witness sync again, to export them into a fresh clone (lines the remote has are not written twice)`,
    )
  }
  return { reachable: true }
}

/** Commits the machine's folder; returns whether there was anything to commit. */
export async function commitExport(git: Git, machine: string, message: string): Promise<boolean> {
  await gitOk(git, ['add', '-A', '--', machine])
  if ((await git(['diff', '--cached', '--quiet'])).code === 0) return false
  await gitOk(git, [
    '-c', `user.name=witness ${machine}`, '-c', `user.email=witness@${machine}.invalid`, '-c', 'commit.gpgsign=false',
    'commit', '-q', '--no-verify', '-m', message,
  ])
  return true
}

/**
 * Pushes the clone's commits; when the push loses a race with another
 * machine, fetches, rebases and tries again (up to `attempts` times).
 * Resolves with null when everything is pushed, or the reason it is not.
 */
export async function pushWithRetry(git: Git, branch: string, attempts: number): Promise<string | null> {
  for (let attempt = 1; ; attempt++) {
    if ((await waiting(git, branch)).commits === 0) return null
    const pushed = await git(['push', '-q', 'origin', `HEAD:refs/heads/${branch}`])
    if (pushed.code === 0) {
      // Make origin/<branch> match what was pushed, whatever the remote's fetch refspec; and remember it.
      await git(['update-ref', `refs/remotes/origin/${branch}`, 'HEAD'])
      await git(['update-ref', PUSHED_REF, 'HEAD'])
      return null
    }
    // Lost a race (another machine pushed first; over git:// that can read `[remote rejected] … cannot
    // lock ref`): pull and try again. A hook that declines every try is tried `attempts` times too.
    const rejected = /\[(remote )?rejected\]|non-fast-forward|fetch first/i.test(pushed.stderr)
    if (!rejected || attempt >= attempts) return firstLines(pushed.stderr)
    await Bun.sleep(50 + Math.random() * 200 * attempt)
    const remote = await updateFromRemote(git, branch)
    if (!remote.reachable) return remote.reason
  }
}

/**
 * Whether a reason the remote was not updated is the network (the remote
 * is down, unreachable or overloaded: the commits wait, and that is no failure), not a
 * refusal that retrying will not change (no such repository, a hook or a
 * protected branch declined, credentials refused).
 */
export function unreachable(reason: string): boolean {
  // Over HTTP a server that is down behind its proxy (Gitea restarting) answers 502/503/504, and a busy one 429.
  return /could not resolve|unable to connect|failed to connect|couldn't connect|connection (refused|timed out|reset)|timed out|network is unreachable|no route to host|temporary failure|hung up unexpectedly|early EOF|returned error: (429|50[234])\b/i.test(reason)
}

/** Commits and export lines in the clone that the remote does not have yet. */
export async function waiting(git: Git, branch: string): Promise<{ commits: number; rows: number }> {
  if ((await git(['rev-parse', '-q', '--verify', 'HEAD'])).code !== 0) return { commits: 0, rows: 0 }
  const hasRemote = (await git(['rev-parse', '-q', '--verify', `refs/remotes/origin/${branch}`])).code === 0
  const range = hasRemote ? [`refs/remotes/origin/${branch}..HEAD`] : ['HEAD']
  const commits = Number((await gitOk(git, ['rev-list', '--count', ...range])).trim())
  if (commits === 0) return { commits: 0, rows: 0 }
  let rows = 0
  for (const line of (await gitOk(git, ['log', '--numstat', '--format=', ...range])).split('\n')) {
    const [added, , path] = line.split('\t')
    if (path?.endsWith('.ndjson')) rows += Number(added) || 0
  }
  return { commits, rows }
}
