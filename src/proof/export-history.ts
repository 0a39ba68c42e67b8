/**
 * What a git export's history says of one machine's signed checkpoints.
 * `witness sync` only ever adds a checkpoint file, and never changes or
 * removes one. The checkpoints are what a rewrite cannot forge: whoever
 * rewrites the rows after some entry must recompute the chain from there,
 * and every checkpoint signed past that entry then stops matching it. So a
 * rewrite must remove those checkpoints too, and the history still holds
 * them. Every checkpoint file any commit of the branch ever held (a merge's
 * sides included) is read back: one of this folder's, or one signed by this
 * machine's key in a folder gone since (a folder renamed to escape this),
 * that is not in the folder now is a problem, and is checked against the
 * chain as it is now all the same.
 *
 * Checkpoints are compared as JSON, not as bytes: a checkout may change line
 * ends (core.autocrlf). Git runs without replace refs (`refs/replace/*` could
 * put another history in the branch's place), and a history that cannot be
 * read fails the check. Only the checkpoints' folders are read: a tree diff of
 * small folders, quick over years of syncs, where diffing the day files that
 * grow all day took minutes. The rows and the chain need no history of their
 * own: the chain is checked against every checkpoint, the rows against it.
 */
import { existsSync, realpathSync } from 'node:fs'
import { join } from 'node:path'
import type { Checkpoint } from './checkpoint.ts'

export interface ExportHistory {
  /** Checkpoints the history holds and the folder does not, each named; a history that cannot be read. */
  problems: string[]
  /** Those checkpoints, read back from the history (each once; none that is in the folder). */
  removedCheckpoints: Checkpoint[]
  /** What limits the check (not a git clone, a shallow one); null when the whole history was read. */
  note: string | null
}

const MAX_NAMED = 20
const ZERO = /^0+$/

/**
 * `keyId`: the key the folder is checked against (null: none); `files`: the folder's checkpoint files
 * as they are now (the ones verify reads), to compare the history with.
 */
export function exportHistory(clone: string, machine: string, keyId: string | null, files: readonly Uint8Array[]): ExportHistory {
  const out: ExportHistory = { problems: [], removedCheckpoints: [], note: null }
  const top = git(clone, ['rev-parse', '--show-toplevel'])
  if (top.code !== 0) {
    out.note = `its git history was not checked (${top.stderr.split('\n')[0] || 'not a git clone'})`
    return out
  }
  if (!samePath(top.stdout.trim(), clone)) {
    out.note = `its git history was not checked: ${clone} is inside the git repository ${top.stdout.trim()}, not a clone of the export`
    return out
  }
  if (git(clone, ['rev-parse', '--is-shallow-repository']).stdout.trim() === 'true') {
    out.note = 'the clone is shallow: a checkpoint removed before its oldest commit cannot be found (verify a full clone)'
  }
  // Every change to any folder's checkpoints in the branch's history, a merge's against each parent.
  const log = git(clone, ['log', '--format=%x01%H', '--raw', '--no-renames', '--no-abbrev', '--full-history', '-m', '--', '*/checkpoints/*'])
  if (log.code !== 0) {
    out.problems.push(`its git history cannot be read (${log.stderr.split('\n')[0] || `git log exited ${log.code}`}), so checkpoints removed from it cannot be looked for`)
    return out
  }
  const own = `${machine}/checkpoints/`
  const goneFolders = new Map<string, boolean>()
  const relevant = (path: string) => {
    if (path.startsWith(own)) return true
    // Another folder's: only one that is gone (renamed, deleted) can have held this machine's checkpoints.
    const folder = path.slice(0, path.indexOf('/'))
    if (keyId === null || !folder) return false
    if (!goneFolders.has(folder)) goneFolders.set(folder, !existsSync(join(clone, folder)))
    return goneFolders.get(folder)!
  }
  // Each blob the history held, with its path and the commit that took it away (if one did).
  const held = new Map<string, { path: string; goneIn: string | null }>()
  let commit = ''
  for (const line of log.stdout.split('\n')) {
    if (line.startsWith('\x01')) {
      commit = line.slice(1)
      continue
    }
    const match = /^:\d+ \d+ ([0-9a-f]+) ([0-9a-f]+) ([A-Z])\d*\t(.+)$/.exec(line)
    if (!match || !relevant(match[4]!)) continue
    const [, before, after, status, path] = match as unknown as [string, string, string, string, string]
    const note = (sha: string, goneIn: string | null) => {
      if (ZERO.test(sha)) return
      const seen = held.get(sha)
      held.set(sha, { path: seen?.path ?? path, goneIn: seen?.goneIn ?? goneIn })
    }
    note(after, null)
    // The blob a commit removed, or replaced, against this parent.
    note(before, status === 'D' || status === 'M' ? commit : null)
  }
  // Present: the same bytes (most), or the same JSON (a checkout that changed the line ends).
  const presentBytes = new Set(files.map(blobSha))
  const candidates = [...held].filter(([sha]) => !presentBytes.has(sha))
  if (candidates.length === 0) return out
  // What is named once is not named again (the same checkpoint as two blobs: line ends changed in a commit).
  const seen = new Set(files.map((bytes) => asJson(new TextDecoder().decode(bytes))))
  const contents = readBlobs(clone, candidates.map(([sha]) => sha))
  let missing = 0
  for (const [sha, { path, goneIn }] of candidates) {
    const text = contents.get(sha) ?? ''
    if (seen.has(asJson(text))) continue
    let checkpoint: Checkpoint | null = null
    try {
      checkpoint = JSON.parse(text) as Checkpoint
    } catch {
      // not a checkpoint even then: named all the same, if it was this folder's
    }
    const ours = path.startsWith(own)
    if (!ours && checkpoint?.key_id !== keyId) continue // another machine's, in a folder gone since
    seen.add(asJson(text))
    if (checkpoint) out.removedCheckpoints.push(checkpoint)
    if (++missing > MAX_NAMED) continue
    const what = `checkpoint ${checkpoint?.id ?? '?'} (${path}${checkpoint ? `, entry ${checkpoint.seq}` : ''})`
    const where = ours ? '' : `, signed by this machine's key in a folder gone since,`
    out.problems.push(
      goneIn
        ? `${what}${where} was removed or changed in commit ${goneIn.slice(0, 12)}: sync never removes or changes a checkpoint, so the export was rewritten after it went out`
        : `${what}${where} is in the clone's history but not among ${machine}'s files (removed or changed and not committed)`,
    )
  }
  if (missing > MAX_NAMED) out.problems.push(`and ${missing - MAX_NAMED} more checkpoint file(s) the history holds and the folder does not`)
  return out
}

/** A file's JSON, written one way (line ends and spacing aside); the text itself when it is not JSON. */
function asJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text))
  } catch {
    return text
  }
}

/** The id git gives a file's bytes (sha1 of `blob <size>\0` and the bytes). */
function blobSha(bytes: Uint8Array): string {
  const hasher = new Bun.CryptoHasher('sha1')
  hasher.update(`blob ${bytes.length}\0`)
  hasher.update(bytes)
  return hasher.digest('hex')
}

/** Reads blobs by id in one `git cat-file --batch`. */
function readBlobs(clone: string, shas: readonly string[]): Map<string, string> {
  const result = Bun.spawnSync(['git', '--no-replace-objects', '-C', clone, 'cat-file', '--batch'], {
    stdin: new TextEncoder().encode(`${shas.join('\n')}\n`),
    stdout: 'pipe',
    stderr: 'pipe',
    env: gitEnv(),
  })
  const out = new Map<string, string>()
  const bytes = result.stdout
  const decoder = new TextDecoder()
  let at = 0
  while (at < bytes.length) {
    const eol = bytes.indexOf(10, at)
    if (eol < 0) break
    const [sha, , size] = decoder.decode(bytes.subarray(at, eol)).split(' ')
    const length = Number(size)
    if (!Number.isFinite(length)) {
      at = eol + 1 // `<sha> missing`
      continue
    }
    out.set(sha!, decoder.decode(bytes.subarray(eol + 1, eol + 1 + length)))
    at = eol + 1 + length + 1
  }
  return out
}

function samePath(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b)
  } catch {
    return false
  }
}

function gitEnv(): Record<string, string | undefined> {
  return { ...process.env, GIT_TERMINAL_PROMPT: '0', GIT_NO_REPLACE_OBJECTS: '1', LC_ALL: 'C' }
}

function git(cwd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const result = Bun.spawnSync(['git', '--no-replace-objects', '-C', cwd, ...args], { env: gitEnv(), stdout: 'pipe', stderr: 'pipe' })
    return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() }
  } catch (error) {
    return { code: -1, stdout: '', stderr: `git cannot run: ${(error as Error).message}` }
  }
}
