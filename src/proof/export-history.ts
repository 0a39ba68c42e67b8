/**
 * What a git export's history says of one machine's folder. `witness sync`
 * only ever adds to it: new files, and lines appended to its day and chain
 * files (public-key.json aside, which a new signing key replaces). So a
 * commit that removed a line or a file there rewrote the export after it
 * went out. The signed checkpoints cannot show that alone: whoever removes
 * the later checkpoints can rewrite every row after the first one left, and
 * recompute the chain over them. So verify --repo names each such commit,
 * and reads the checkpoints it removed back from the history, to check the
 * chain as it is now against them too.
 */
import type { Checkpoint } from './checkpoint.ts'

export interface ExportHistory {
  /** Each commit that removed or changed what sync wrote, named. */
  problems: string[]
  /** Checkpoints as they were before a commit removed or changed their files. */
  removedCheckpoints: Checkpoint[]
  /** Why the history could not be read (not a git clone, no git); null when it was. */
  unread: string | null
}

const MAX_NAMED = 20
const MAX_PATHS = 3

export function exportHistory(clone: string, machine: string): ExportHistory {
  const out: ExportHistory = { problems: [], removedCheckpoints: [], unread: null }
  const log = git(clone, ['log', '--no-renames', '--format=%x01%H %cI', '--numstat', '--', `${machine}/`])
  if (log.code !== 0) {
    out.unread = `its git history was not checked (${log.stderr.split('\n')[0] || 'git failed'})`
    return out
  }
  let commit: { sha: string; at: string; lines: number; paths: string[] } | null = null
  const flush = () => {
    if (!commit || commit.paths.length === 0) return
    if (out.problems.length < MAX_NAMED) {
      const more = commit.paths.length > MAX_PATHS ? `, and ${commit.paths.length - MAX_PATHS} more` : ''
      out.problems.push(
        `commit ${commit.sha.slice(0, 12)} (${commit.at}) removed or changed ${commit.lines} line(s) that sync wrote, in ${commit.paths.slice(0, MAX_PATHS).join(', ')}${more}: sync only appends, so the export was rewritten after it went out`,
      )
    }
    for (const path of commit.paths.filter((p) => p.startsWith(`${machine}/checkpoints/`))) {
      const before = git(clone, ['show', `${commit.sha}^:${path}`])
      if (before.code !== 0) continue
      try {
        out.removedCheckpoints.push(JSON.parse(before.stdout) as Checkpoint)
      } catch {
        // not a checkpoint before either: the commit is named above all the same
      }
    }
  }
  for (const line of log.stdout.split('\n')) {
    if (line.startsWith('\x01')) {
      flush()
      const [sha, at] = line.slice(1).split(' ')
      commit = { sha: sha!, at: at ?? '', lines: 0, paths: [] }
      continue
    }
    const [, removed, path] = line.split('\t')
    if (!commit || path === undefined || path === `${machine}/public-key.json`) continue
    // `-` is a binary file's count: nothing sync writes is one, so any change to one counts.
    if (removed === '-' || Number(removed) > 0) {
      commit.lines += Number(removed) || 0
      commit.paths.push(path)
    }
  }
  flush()
  return out
}

function git(cwd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const result = Bun.spawnSync(['git', '-C', cwd, ...args], { env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' }, stdout: 'pipe', stderr: 'pipe' })
    return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() }
  } catch (error) {
    return { code: -1, stdout: '', stderr: `git cannot run: ${(error as Error).message}` }
  }
}
