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
 * read fails the check. Both layouts of the folder are read
 * (checkpoint-files.ts): a checkpoint moved from one to the other, bytes or
 * JSON unchanged, is still in the folder. Only the checkpoints' folders are
 * read: a tree diff of small folders, quick over years of syncs, where
 * diffing the day files that grow all day took minutes. What the history
 * held goes into verify's work store, so memory does not grow with it. The rows and the chain need no history of their
 * own: the chain is checked against every checkpoint, the rows against it.
 */
import { existsSync, realpathSync } from 'node:fs'
import { join } from 'node:path'
import { gitEnv } from '../git-env.ts'
import type { Checkpoint } from './checkpoint.ts'
import { CHECKPOINT_FOLDERS } from './checkpoint-files.ts'
import { Breather, type WorkStore } from './work-store.ts'

export interface ExportHistory {
  /** Checkpoints the history holds and the folder does not, each named; a history that cannot be read. */
  problems: string[]
  /** How many such checkpoints were read back from the history: each went into the store (from_history), once, none that is in the folder. */
  removed: number
  /** What limits the check (not a git clone, a shallow one); null when the whole history was read. */
  note: string | null
}

const MAX_NAMED = 20
const ZERO = /^0+$/
/** Blobs read from git at a time. */
const BLOB_BATCH = 500

/**
 * Notes one of the folder's checkpoint files as it is now (gatherExport, which reads them, calls
 * this for each), for exportHistory to tell the history's checkpoints from: the id git gives its
 * bytes, and its JSON written one way.
 */
export function noteCheckpointFile(store: WorkStore, bytes: Uint8Array): void {
  store.db.query('INSERT OR IGNORE INTO checkpoint_files (sha) VALUES (?)').run(blobSha(bytes))
  store.db.query('INSERT OR IGNORE INTO checkpoint_texts (digest) VALUES (?)').run(jsonDigest(new TextDecoder().decode(bytes)))
}

/**
 * `keyId`: the key the folder is checked against (null: none). The folder's checkpoint files as they
 * are now are those noted in `store` (noteCheckpointFile); the checkpoints the history holds and
 * the folder does not go into `store` too. The history is read as git gives it, a line at a time,
 * and what it held is kept in the store: memory does not grow with the years of syncs.
 */
export async function exportHistory(clone: string, machine: string, keyId: string | null, store: WorkStore): Promise<ExportHistory> {
  const out: ExportHistory = { problems: [], removed: 0, note: null }
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
  const own = CHECKPOINT_FOLDERS.map((folder) => `${machine}/${folder}/`)
  const ours = (path: string) => own.some((prefix) => path.startsWith(prefix))
  const goneFolders = new Map<string, boolean>()
  const relevant = (path: string) => {
    if (ours(path)) return true
    // Another folder's: only one that is gone (renamed, deleted) can have held this machine's checkpoints.
    const folder = path.slice(0, path.indexOf('/'))
    if (keyId === null || !folder) return false
    if (!goneFolders.has(folder)) goneFolders.set(folder, !existsSync(join(clone, folder)))
    return goneFolders.get(folder)!
  }
  const { db } = store
  // Each blob the history held, with its first path and the commit that took it away (if one did).
  const hold = db.prepare('INSERT INTO history (sha, path, gone_in) VALUES (?, ?, ?) ON CONFLICT (sha) DO UPDATE SET gone_in = coalesce(gone_in, excluded.gone_in)')
  let commit = ''
  // Every change to any folder's checkpoints (both layouts) in the branch's history, a merge's against each parent.
  const pathspecs = CHECKPOINT_FOLDERS.map((folder) => `*/${folder}/*`)
  const log = await store.inTransaction(() =>
    gitLines(clone, ['log', '--format=%x01%H', '--raw', '--no-renames', '--no-abbrev', '--full-history', '-m', '--', ...pathspecs], (line) => {
      if (line.startsWith('\x01')) {
        commit = line.slice(1)
        return
      }
      const match = /^:\d+ \d+ ([0-9a-f]+) ([0-9a-f]+) ([A-Z])\d*\t(.+)$/.exec(line)
      if (!match || !relevant(match[4]!)) return
      const [, before, after, status, path] = match as unknown as [string, string, string, string, string]
      if (!ZERO.test(after)) hold.run(after, path, null)
      // The blob a commit removed, or replaced, against this parent.
      if (!ZERO.test(before)) hold.run(before, path, status === 'D' || status === 'M' ? commit : null)
    }),
  )
  hold.finalize()
  if (log.code !== 0) {
    out.problems.push(`its git history cannot be read (${log.stderr.split('\n')[0] || `git log exited ${log.code}`}), so checkpoints removed from it cannot be looked for`)
    return out
  }
  // Present: the same bytes (most), or the same JSON (a checkout that changed the line ends; checkpoint_texts).
  const candidates = db.query(
    `SELECT rowid AS at, sha, path, gone_in FROM history h WHERE rowid > ? AND NOT EXISTS (SELECT 1 FROM checkpoint_files f WHERE f.sha = h.sha) ORDER BY rowid LIMIT ${BLOB_BATCH}`,
  )
  const seen = db.query('SELECT 1 FROM checkpoint_texts WHERE digest = ?')
  const see = db.query('INSERT INTO checkpoint_texts (digest) VALUES (?)')
  let missing = 0
  const breather = new Breather()
  await store.inTransaction(async () => {
    for (let after = 0; ; ) {
      const batch = candidates.all(after) as { at: number; sha: string; path: string; gone_in: string | null }[]
      if (batch.length === 0) break
      after = batch.at(-1)!.at
      const contents = readBlobs(clone, batch.map((c) => c.sha))
      for (const { sha, path, gone_in: goneIn } of batch) {
        const text = contents.get(sha) ?? ''
        // What is named once is not named again (the same checkpoint as two blobs: line ends changed in a commit).
        const digest = jsonDigest(text)
        if (seen.get(digest)) continue
        let checkpoint: Partial<Record<keyof Checkpoint, unknown>> | null = null
        try {
          const value: unknown = JSON.parse(text)
          if (value !== null && typeof value === 'object' && !Array.isArray(value)) checkpoint = value
        } catch {
          // not a checkpoint even then: named all the same, if it was this folder's
        }
        const mine = ours(path)
        if (!mine && checkpoint?.key_id !== keyId) continue // another machine's, in a folder gone since
        see.run(digest)
        if (checkpoint) {
          store.addCheckpoint(checkpoint, path, true)
          out.removed++
        }
        if (++missing > MAX_NAMED) continue
        const what = `checkpoint ${checkpoint ? String(checkpoint.id ?? '?') : '?'} (${path}${checkpoint ? `, entry ${String(checkpoint.seq)}` : ''})`
        const where = mine ? '' : `, signed by this machine's key in a folder gone since,`
        out.problems.push(
          goneIn
            ? `${what}${where} was removed or changed in commit ${goneIn.slice(0, 12)}: sync never removes or changes a checkpoint, so the export was rewritten after it went out`
            : `${what}${where} is in the clone's history but not among ${machine}'s files (removed or changed and not committed)`,
        )
      }
      if (breather.due()) await breather.pause()
    }
  })
  if (missing > MAX_NAMED) out.problems.push(`and ${missing - MAX_NAMED} more checkpoint file(s) the history holds and the folder does not`)
  return out
}

/** The sha-256 of a file's JSON written one way (line ends and spacing aside), or of the text itself when it is not JSON. */
function jsonDigest(text: string): Uint8Array {
  let json = text
  try {
    json = JSON.stringify(JSON.parse(text))
  } catch {
    // compared as it is
  }
  return Bun.SHA256.hash(json) as Uint8Array
}

/** The id git gives a file's bytes (sha1 of `blob <size>\0` and the bytes). */
function blobSha(bytes: Uint8Array): string {
  const hasher = new Bun.CryptoHasher('sha1')
  hasher.update(`blob ${bytes.length}\0`)
  hasher.update(bytes)
  return hasher.digest('hex')
}

/** Reads blobs by id in one `git cat-file --batch` (a batch of them: each is held until the batch is done). */
function readBlobs(clone: string, shas: readonly string[]): Map<string, string> {
  const result = Bun.spawnSync(['git', '--no-replace-objects', '-C', clone, 'cat-file', '--batch'], {
    stdin: new TextEncoder().encode(`${shas.join('\n')}\n`),
    stdout: 'pipe',
    stderr: 'pipe',
    env: localGitEnv(),
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

/**
 * git's environment: the caller's, without any `GIT_*` variable (git-env.ts: `GIT_GLOB_PATHSPECS`
 * makes `*` stop at a `/`, so the pathspecs would miss the by-day folders and every removal from
 * them; `GIT_LITERAL_PATHSPECS` matches none at all; `GIT_DIR` reads another repository), then
 * witness's own.
 */
function localGitEnv(): Record<string, string | undefined> {
  return { ...gitEnv('local'), GIT_TERMINAL_PROMPT: '0', GIT_NO_REPLACE_OBJECTS: '1', LC_ALL: 'C' }
}

/** Runs git, giving each line of its output to `onLine` as it comes (a history of years is never held whole). */
async function gitLines(cwd: string, args: string[], onLine: (line: string) => void): Promise<{ code: number; stderr: string }> {
  let proc: Bun.Subprocess<'ignore', 'pipe', 'pipe'>
  try {
    proc = Bun.spawn(['git', '--no-replace-objects', '-C', cwd, ...args], { env: localGitEnv(), stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
  } catch (error) {
    return { code: -1, stderr: `git cannot run: ${(error as Error).message}` }
  }
  const stderr = new Response(proc.stderr).text()
  const decoder = new TextDecoder()
  let rest = ''
  try {
    for await (const chunk of proc.stdout) {
      const lines = (rest + decoder.decode(chunk, { stream: true })).split('\n')
      rest = lines.pop()!
      for (const line of lines) onLine(line)
    }
  } catch (error) {
    proc.kill() // `onLine` failed (the work file's disk full): git is not left writing to a pipe no one reads
    throw error
  }
  rest += decoder.decode()
  if (rest) onLine(rest)
  return { code: await proc.exited, stderr: await stderr }
}

function git(cwd: string, args: string[]): { code: number; stdout: string; stderr: string } {
  try {
    const result = Bun.spawnSync(['git', '--no-replace-objects', '-C', cwd, ...args], { env: localGitEnv(), stdout: 'pipe', stderr: 'pipe' })
    return { code: result.exitCode, stdout: result.stdout.toString(), stderr: result.stderr.toString() }
  } catch (error) {
    return { code: -1, stdout: '', stderr: `git cannot run: ${(error as Error).message}` }
  }
}
