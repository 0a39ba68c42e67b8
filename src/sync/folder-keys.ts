/**
 * The export's folders checked against this machine's signing key, before
 * anything is exported:
 *
 * - this machine's folder published by another key: a second machine syncs
 *   under this name (a cloned VM that kept its config), whose rows may fall
 *   on other days and never meet this one's lines in a day file; before, it
 *   replaced the key, forked the folder's chain and exited 0;
 * - this machine's key published by another folder: this database was
 *   exported under another name (a rename the sync state no longer knows,
 *   after a sync to another remote).
 *
 * The machine's own folder is read from the working tree; the others are
 * not checked out (own-folder.ts), so their `public-key.json` is read from
 * the clone's HEAD, in one `git cat-file --batch`.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { SyncError } from '../errors.ts'
import { type Git, firstLines, gitOk } from './git.ts'

const KEY_FILE = 'public-key.json'

/** Throws SyncError when a folder and this machine's key disagree (see the top of this file). */
export async function checkFolders(git: Git, workDir: string, machine: string, keyId: string): Promise<void> {
  for (const [folder, text] of await otherFoldersKeys(git, machine)) {
    if (keyIdIn(text) === keyId) refuseRename(folder, machine)
  }
  const path = join(workDir, machine, KEY_FILE)
  const published = existsSync(path) ? keyIdIn(readFileSync(path, 'utf8')) : undefined
  // Not there, or not JSON (written over with this machine's key, as before; verify --repo names such a file).
  if (published === undefined || published === keyId) return
  throw new SyncError(
    `sync: ${machine}/public-key.json in the remote is key ${String(published)}, not this machine's key ${keyId}: another machine syncs as "${machine}" (a copy of this one that kept its config?), or this machine's signing key was replaced; nothing exported (give each machine its own name with machine:)`,
  )
}

/**
 * Stops the export under a new machine name into a clone that exported the
 * old one: the new folder would start partway through the chain (and never
 * verify), and the old one would stay, counted again by fleet.
 */
export function refuseRename(before: string, now: string): never {
  throw new SyncError(
    `sync: this database was exported as "${before}", and machine is now "${now}"; nothing exported. To rename: delete "${before}/" from the remote (git rm -r, commit, push), move sync.work_dir aside and sync again: the "${now}" folder then gets every row from the start, and fleet does not count them under both names. Or set machine: back to "${before}"`,
  )
}

/** The `public-key.json` of every other top-level folder of HEAD (none before the first commit), as text. */
async function otherFoldersKeys(git: Git, machine: string): Promise<Map<string, string>> {
  if ((await git(['rev-parse', '-q', '--verify', 'HEAD'])).code !== 0) return new Map()
  const folders = (await gitOk(git, ['ls-tree', '-z', 'HEAD']))
    .split('\0')
    .map((entry) => /^\d+ tree [0-9a-f]+\t(.+)$/s.exec(entry)?.[1])
    // A name with a line end cannot be asked for on cat-file's input (nor is it a machine's: sync refuses such names).
    .filter((name): name is string => name !== undefined && name !== machine && !name.startsWith('.') && !name.includes('\n'))
  if (folders.length === 0) return new Map()
  const result = await git(['cat-file', '--batch'], folders.map((folder) => `HEAD:${folder}/${KEY_FILE}\n`).join(''))
  if (result.code !== 0) throw new SyncError(`sync: git cat-file failed: ${firstLines(result.stderr)}`)
  const keys = new Map<string, string>()
  // The answers come in the order asked: `<oid> <type> <size>`, the bytes and a line end; or `<name> missing` alone.
  const { bytes } = result
  let at = 0
  for (const folder of folders) {
    const eol = bytes.indexOf(10, at)
    if (eol < 0) break
    const header = /^[0-9a-f]+ (\S+) (\d+)$/.exec(new TextDecoder().decode(bytes.subarray(at, eol)))
    at = eol + 1
    if (!header) continue
    const length = Number(header[2])
    if (header[1] === 'blob') keys.set(folder, new TextDecoder().decode(bytes.subarray(at, at + length)))
    at += length + 1
  }
  return keys
}

/** The key id a `public-key.json` names; undefined when it is not JSON. */
function keyIdIn(text: string): unknown {
  try {
    return (JSON.parse(text) as { key_id?: unknown } | null)?.key_id
  } catch {
    return undefined
  }
}
