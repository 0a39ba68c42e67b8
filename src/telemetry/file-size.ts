/** The bytes a database takes on disk: the file plus its write-ahead log. */
import { statSync } from 'node:fs'

export function databaseBytes(path: string): number {
  if (path === ':memory:') return 0
  let total = 0
  for (const file of [path, `${path}-wal`]) {
    try {
      total += statSync(file).size
    } catch {
      // no WAL right now (checkpointed and removed): nothing to add
    }
  }
  return total
}
