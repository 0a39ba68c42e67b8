/**
 * Run as a separate process: takes the SQLite write lock on the given file
 * and holds it until stdin closes (or the process is killed).
 * Prints "locked" once it holds the lock.
 */
import { Database } from 'bun:sqlite'

const path = process.argv[2]
if (!path) throw new Error('usage: hold-lock.ts DB')
const db = new Database(path)
db.exec('PRAGMA busy_timeout = 5000')
db.exec('BEGIN IMMEDIATE')
console.log('locked')
for await (const _ of Bun.stdin.stream()) {
  // wait for stdin to close
}
db.exec('ROLLBACK')
db.close()
