/**
 * Files witness keeps private that it did not create: a database restored
 * from a backup or made by `sqlite3` keeps the mode it came with (0644), and
 * SQLite gives its WAL and shared-memory files the same; a signing key copied
 * in may be readable by all. witness's own files are made private (cli.ts's
 * umask, keys.ts), these are only said: the operator owns them.
 */
import { statSync } from 'node:fs'

/** A warning for each of `paths` that users other than its owner and group may read or write; none for files not there. */
export function exposedFiles(paths: readonly { path: string; what: string; groupToo?: boolean }[]): string[] {
  const out: string[] = []
  for (const { path, what, groupToo } of paths) {
    const mode = statSync(path, { throwIfNoEntry: false })?.mode
    if (mode === undefined) continue
    const open = mode & (groupToo ? 0o077 : 0o007)
    if (open === 0) continue
    const fix = groupToo ? 'chmod go-rwx' : 'chmod o-rwx'
    out.push(`${what} ${path} is open to ${groupToo ? 'users other than its owner' : 'other users'} (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): ${fix} '${path}'`)
  }
  return out
}
