/**
 * verify's work store: the evidence it gathers (every chain entry and every
 * row of the live database, its archives, or a git export) goes into a
 * temporary SQLite file instead of memory, and the checks (proof/verify.ts)
 * run as queries over it. Memory stays bounded by SQLite's page cache
 * (CACHE_MB) whatever the number of rows; the file needs about as much disk
 * as the rows and entries read.
 *
 * The file lives in a fresh directory `witness-verify-<pid>-…` under the
 * system's temp directory, or under `--work-dir` (for a machine whose /tmp is
 * small, or in memory). It is written without a journal or fsyncs (it is
 * thrown away), and removed by close(), or on SIGINT/SIGTERM/SIGHUP. It cannot be
 * unlinked while open: SQLite then fails (SQLITE_READONLY_DBMOVED). One a verify
 * killed with SIGKILL left (its pid gone, nothing in it written for
 * LEFTOVER_IDLE_MS) is removed by the next verify that opens a store there.
 *
 * A SQLite source (the live file, an archive) is attached read-only and
 * copied in C (`INSERT … SELECT`), in one read transaction, a range of ids
 * at a time (so a signal is handled between ranges). What the store holds
 * already wins: a row found again with other contents is noted in
 * `conflicts`, an entry found again at its position with other contents in
 * `forks`. The lines of a git export go in one at a time (sources.ts).
 *
 *   entries    seq, log_id, prev_hash, hash, record: one entry per position (log_id compares
 *              as an integer, as rows.id does, so the lookups by it use its index)
 *   rows       id, the 11 columns, request_id, response_id, and which of the two the source carries
 *   forks      positions seen twice with different contents: the entry kept's row and the other's
 *   conflicts  row ids seen twice with different contents
 *   lines      an export's first line of each row id: sha-256 of its text, where it is
 *   missing    ids of rows the chain names and the sources lack (filled by the checks)
 *   checkpoints  the signed checkpoints, each with where it was found (`source`) and whether it was
 *              read back from an export's git history; a copy of one already held (every field the
 *              same) is not added again, a copy of its id with other contents is
 *   checkpoint_files, checkpoint_texts  an export's checkpoint files as they are now: the id git
 *              gives each one's bytes; the sha-256 of each one's JSON written one way, and of each
 *              one the history check named (export-history.ts)
 *   history    each checkpoint file an export's git history held: its blob id, first path, and the
 *              commit that took it away (export-history.ts)
 */
import { Database, constants } from 'bun:sqlite'
import { lstatSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { constants as os, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { processAlive } from '../process-alive.ts'
import { IdRanges } from './id-ranges.ts'
import { LOG_COLUMNS, type LogRow } from './record.ts'
import { hasTable } from '../telemetry/schema.ts'
import type { ChainEntry } from './verify.ts'

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/** SQLite's page cache for the work file: what the gathering and the checks hold, whatever the rows. */
const CACHE_MB = 32

/** Ids (or positions) copied per statement; between two, a signal can be handled. */
const COPY_RANGE = 5_000

/** How long a loop over the store runs before it gives the event loop a turn (where a signal is handled). */
const BREATHE_MS = 50

/**
 * Long loops over the store (and long runs of copies) give the event loop a turn now and then: a
 * signal's handler runs only there, so without these a SIGINT would wait for verify to finish.
 */
export class Breather {
  private last = performance.now()
  /** Whether it is time for a turn (then `await pause()`). */
  due(): boolean {
    return performance.now() - this.last >= BREATHE_MS
  }
  async pause(): Promise<void> {
    await Bun.sleep(0)
    this.last = performance.now()
  }
}

/** What a row's source carries besides its 11 columns (rows.carries): compared with the chain only then. */
export const CARRIES_REQUEST_ID = 1
export const CARRIES_RESPONSE_ID = 2

const DATA = LOG_COLUMNS.filter((c) => c !== 'id')

/** A checkpoint's fields, as the work store keeps them (untyped: an export's file may hold anything). */
export const CHECKPOINT_FIELDS = ['id', 'machine', 'seq', 'head_hash', 'time', 'key_id', 'signature'] as const

const SCHEMA = `
  CREATE TABLE entries (seq INTEGER PRIMARY KEY, log_id INTEGER, prev_hash, hash, record);
  CREATE INDEX entries_log_id ON entries (log_id, seq);
  CREATE TABLE rows (id INTEGER PRIMARY KEY, ${DATA.join(', ')}, request_id, response_id, carries INTEGER NOT NULL);
  CREATE TABLE forks (seq, kept_log_id, other_log_id);
  CREATE TABLE conflicts (id INTEGER PRIMARY KEY);
  CREATE TABLE lines (id INTEGER PRIMARY KEY, digest BLOB NOT NULL, file INTEGER NOT NULL, line INTEGER NOT NULL);
  CREATE TABLE missing (id INTEGER PRIMARY KEY);
  CREATE TABLE checkpoints (n INTEGER PRIMARY KEY, ${CHECKPOINT_FIELDS.join(', ')}, source TEXT NOT NULL, from_history INTEGER NOT NULL);
  CREATE INDEX checkpoints_id ON checkpoints (id);
  CREATE TABLE checkpoint_files (sha TEXT PRIMARY KEY) WITHOUT ROWID;
  CREATE TABLE checkpoint_texts (digest BLOB PRIMARY KEY) WITHOUT ROWID;
  CREATE TABLE history (sha TEXT PRIMARY KEY, path TEXT NOT NULL, gone_in TEXT);
`

export interface WorkStore {
  /** The store's connection: the checks and the sources query the tables above through it. */
  readonly db: Database
  /** The directory holding the work file; close() removes it. */
  readonly dir: string
  /**
   * Copies the rows, chain entries and checkpoints of the SQLite file at `path` (attached
   * read-only) in one read snapshot; `inSnapshot` reads more in the same snapshot, through the
   * schema name it is given. `shown` names the file as messages give its checkpoints' source.
   */
  copyDatabase<T>(path: string, shown: string, inSnapshot: (schema: string) => T | Promise<T>): Promise<T>
  /** Adds a checkpoint read from a file (`source`: where), unless one just like it is held already. */
  addCheckpoint(c: Partial<Record<(typeof CHECKPOINT_FIELDS)[number], unknown>>, source: string, fromHistory?: boolean): void
  /** Adds an entry read from an export (or notes a fork, when its position holds another). */
  addEntry(entry: ChainEntry): void
  /** Adds a row read from an export; it carries its request_id, not its response_id. */
  addRow(row: LogRow, requestId: unknown): void
  /** The first line seen of row `id` in an export: the sha-256 of its text, and where it is. */
  firstLine(id: number): { digest: Uint8Array; file: number; line: number } | null
  noteFirstLine(id: number, digest: Uint8Array, file: number, line: number): void
  noteConflict(id: number): void
  /** Drops the rows noted in conflicts (an export's: neither line is taken). */
  dropConflicting(): void
  /** Whether the store holds any row or entry. */
  holdsAny(): boolean
  /** Runs `fn` in one write transaction (the lines of an export), across its awaits. */
  inTransaction<T>(fn: () => Promise<T>): Promise<T>
  close(): void
}

/** Opens a new work store in a fresh directory under `parent` (default: the system's temp directory). */
export function openWorkStore(parent: string = tmpdir()): WorkStore {
  removeLeftovers(resolve(parent))
  let dir: string | null = null
  const remove = () => {
    if (dir !== null) rmSync(dir, { recursive: true, force: true })
  }
  // Taken before the directory is made, so no signal can come between its making and this.
  const onSignal = (signal: NodeJS.Signals) => {
    remove()
    process.exit(128 + os.signals[signal])
  }
  // SIGHUP too: a terminal closed on a verify left its work directory behind.
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal)
  const stopListening = () => {
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal)
  }
  let db: Database
  try {
    dir = mkdtempSync(join(resolve(parent), `witness-verify-${process.pid}-`))
    db = new Database(join(dir, 'work.db'), constants.SQLITE_OPEN_READWRITE | constants.SQLITE_OPEN_CREATE | constants.SQLITE_OPEN_URI)
    db.exec('PRAGMA journal_mode = OFF')
    db.exec('PRAGMA synchronous = OFF')
    db.exec(`PRAGMA cache_size = -${CACHE_MB * 1024}`)
    db.exec('PRAGMA busy_timeout = 5000')
    // Sorts and other temporary files go beside the work file, not to a /tmp that --work-dir avoided.
    db.exec(`PRAGMA temp_store_directory = '${dir.replaceAll("'", "''")}'`)
    db.exec(SCHEMA)
  } catch (error) {
    stopListening()
    remove()
    throw error
  }
  const workDir = dir

  const insertRow = db.prepare(`INSERT INTO rows (id, ${DATA.join(', ')}, request_id, response_id, carries) VALUES (${['?', ...DATA.map(() => '?')].join(', ')}, ?, NULL, ${CARRIES_REQUEST_ID})`)
  const entryAt = db.prepare('SELECT log_id, hash, record FROM entries WHERE seq = ?')
  const insertEntry = db.prepare('INSERT INTO entries (seq, log_id, prev_hash, hash, record) VALUES (?, ?, ?, ?, ?)')
  const insertFork = db.prepare('INSERT INTO forks (seq, kept_log_id, other_log_id) VALUES (?, ?, ?)')
  const firstLineOf = db.prepare('SELECT digest, file, line FROM lines WHERE id = ?')
  const insertLine = db.prepare('INSERT INTO lines (id, digest, file, line) VALUES (?, ?, ?, ?)')
  const insertConflict = db.prepare('INSERT OR IGNORE INTO conflicts (id) VALUES (?)')
  const insertCheckpoint = db.prepare(
    `INSERT INTO checkpoints (${CHECKPOINT_FIELDS.join(', ')}, source, from_history) SELECT ${CHECKPOINT_FIELDS.map((_, i) => `?${i + 1}`).join(', ')}, ?8, ?9
     WHERE NOT EXISTS (SELECT 1 FROM checkpoints WHERE ${sameCheckpoint('checkpoints', CHECKPOINT_FIELDS.map((_, i) => `?${i + 1}`))})`,
  )

  return {
    db,
    dir: workDir,
    async copyDatabase(path, shown, inSnapshot) {
      db.query('ATTACH ? AS src').run(readOnlyUri(path))
      try {
        db.exec('BEGIN')
        try {
          const read = await inSnapshot('src')
          await copyRows(db)
          if (hasTable(db, 'log_chain', 'src')) await copyEntries(db)
          if (hasTable(db, 'checkpoints', 'src')) await copyCheckpoints(db, shown)
          return read
        } finally {
          if (db.inTransaction) db.exec('COMMIT') // a full disk made SQLite roll it back: the error that did is the one to say
        }
      } finally {
        db.exec('DETACH src')
      }
    },
    addEntry(e) {
      const kept = entryAt.get(e.seq) as Pick<ChainEntry, 'log_id' | 'hash' | 'record'> | null
      if (!kept) insertEntry.run(e.seq, e.log_id, e.prev_hash, e.hash, e.record)
      else if (kept.hash !== e.hash || kept.log_id !== e.log_id || kept.record !== e.record) insertFork.run(e.seq, kept.log_id, e.log_id)
    },
    addCheckpoint(c, source, fromHistory = false) {
      insertCheckpoint.run(...CHECKPOINT_FIELDS.map((f) => cell(c[f])), source, fromHistory ? 1 : 0)
    },
    addRow(row, requestId) {
      insertRow.run(row.id, ...DATA.map((c) => cell(row[c])), cell(requestId))
    },
    firstLine: (id) => firstLineOf.get(id) as { digest: Uint8Array; file: number; line: number } | null,
    noteFirstLine: (id, digest, file, line) => void insertLine.run(id, digest, file, line),
    noteConflict: (id) => void insertConflict.run(id),
    dropConflicting: () => void db.exec('DELETE FROM rows WHERE id IN (SELECT id FROM conflicts)'),
    holdsAny: () => (db.query('SELECT EXISTS (SELECT 1 FROM rows) OR EXISTS (SELECT 1 FROM entries) AS any').get() as { any: number }).any === 1,
    async inTransaction(fn) {
      db.exec('BEGIN')
      try {
        return await fn()
      } finally {
        // Nothing to roll back to (no journal): a store whose gathering failed is thrown away.
        if (db.inTransaction) db.exec('COMMIT')
      }
    },
    close() {
      stopListening()
      try {
        db.exec("PRAGMA temp_store_directory = ''") // process-wide: not left naming a directory about to go
        db.close()
      } finally {
        remove()
      }
    },
  }
}

/** The ids a query gives, in ascending order, as ranges; gives the event loop a turn now and then. */
export async function idsOf(db: Database, sql: string, ...params: (string | number)[]): Promise<IdRanges> {
  const ids = new IdRanges()
  const breather = new Breather()
  for (const { id } of db.query(sql).iterate(...params) as Iterable<{ id: number }>) {
    ids.add(id)
    if (breather.due()) await breather.pause()
  }
  return ids
}

/**
 * A value of an export's line as the store keeps it: strings, numbers and nulls as they are; anything
 * else (true, an object) as the bytes of its JSON text, a blob, which no record's value (a string,
 * a number or null) equals, so it reads as changed (a string `"true"` would not).
 */
function cell(value: unknown): string | number | Uint8Array | null {
  if (value === undefined || value === null) return null
  if (typeof value === 'string' || typeof value === 'number') return value
  return new TextEncoder().encode(JSON.stringify(value))
}

/** The `file:` URI that attaches `path` read-only (`?`, `#` and `%` escaped, so no part is taken for a query). */
function readOnlyUri(path: string): string {
  return `file://${resolve(path).replace(/[%?#]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)}?mode=ro`
}

/** Copies src's rows into the store, a range of ids at a time; rows it holds already with other contents go to conflicts. */
async function copyRows(db: Database): Promise<void> {
  const meta = hasTable(db, 'request_log_meta', 'src')
  const source = meta
    ? `SELECT r.id, ${DATA.map((c) => `r.${c}`).join(', ')}, m.request_id, m.response_id, ${CARRIES_REQUEST_ID | CARRIES_RESPONSE_ID} AS carries
       FROM src.request_log r LEFT JOIN src.request_log_meta m ON m.log_id = r.id WHERE r.id BETWEEN ?1 AND ?2`
    : `SELECT r.id, ${DATA.map((c) => `r.${c}`).join(', ')}, NULL AS request_id, NULL AS response_id, 0 AS carries FROM src.request_log r WHERE r.id BETWEEN ?1 AND ?2`
  const differs = [...DATA, 'request_id', 'response_id', 'carries'].map((c) => `w.${c} IS NOT s.${c}`).join(' OR ')
  await copyInRanges(db, 'request_log', 'id', [
    `INSERT OR IGNORE INTO conflicts (id) SELECT s.id FROM (${source}) s JOIN rows w ON w.id = s.id WHERE ${differs}`,
    // Twice in this file with different contents (a table rebuilt without its key, a second meta row): one copy is made up.
    `INSERT OR IGNORE INTO conflicts (id) SELECT id FROM (SELECT DISTINCT * FROM (${source})) GROUP BY id HAVING count(*) > 1`,
    `INSERT OR IGNORE INTO rows (id, ${DATA.join(', ')}, request_id, response_id, carries) ${source}`,
  ])
}

/** Copies src's chain entries into the store; a position it holds already with another entry goes to forks. */
async function copyEntries(db: Database): Promise<void> {
  await copyInRanges(db, 'log_chain', 'seq', [
    `INSERT INTO forks (seq, kept_log_id, other_log_id) SELECT s.seq, w.log_id, s.log_id FROM src.log_chain s JOIN entries w ON w.seq = s.seq
     WHERE s.seq BETWEEN ?1 AND ?2 AND (w.hash IS NOT s.hash OR w.log_id IS NOT s.log_id OR w.record IS NOT s.record) ORDER BY s.seq`,
    // Twice in this file with different contents (a table rebuilt without its key).
    `INSERT INTO forks (seq, kept_log_id, other_log_id) SELECT seq, min(log_id), max(log_id)
     FROM (SELECT DISTINCT seq, log_id, prev_hash, hash, record FROM src.log_chain WHERE seq BETWEEN ?1 AND ?2) GROUP BY seq HAVING count(*) > 1 ORDER BY seq`,
    'INSERT OR IGNORE INTO entries (seq, log_id, prev_hash, hash, record) SELECT seq, log_id, prev_hash, hash, record FROM src.log_chain WHERE seq BETWEEN ?1 AND ?2',
  ])
}

/**
 * The SQL condition that a checkpoint held in `table` is the one whose fields are `values`: the id
 * by `=`, which the index on it answers (`IS` would scan every checkpoint held for each one added;
 * an id that is NULL, in a file written by hand, is then never the same), the other fields by `IS`.
 * A source's id is given as `+s.id`: compared with src's INTEGER column, the store's untyped one
 * would be converted to a number first, and its index not used either.
 */
function sameCheckpoint(table: string, values: readonly string[]): string {
  return CHECKPOINT_FIELDS.map((f, i) => `${table}.${f} ${f === 'id' ? '=' : 'IS'} ${values[i]}`).join(' AND ')
}

/** Copies src's checkpoints into the store (`shown`: the file, as their source), but for those it holds already, every field the same. */
async function copyCheckpoints(db: Database, shown: string): Promise<void> {
  await copyInRanges(
    db,
    'checkpoints',
    'id',
    [
      `INSERT INTO checkpoints (${CHECKPOINT_FIELDS.join(', ')}, source, from_history) SELECT ${CHECKPOINT_FIELDS.map((f) => `s.${f}`).join(', ')}, ?3, 0
       FROM src.checkpoints s WHERE s.id BETWEEN ?1 AND ?2
       AND NOT EXISTS (SELECT 1 FROM checkpoints w WHERE ${sameCheckpoint('w', CHECKPOINT_FIELDS.map((f) => (f === 'id' ? '+s.id' : `s.${f}`)))}) ORDER BY s.id`,
    ],
    [shown],
  )
}

/** Runs each statement (taking a range of keys as ?1 and ?2, then `params`), in order, over consecutive ranges of `key` in src's `table`. */
async function copyInRanges(db: Database, table: string, key: string, sql: readonly string[], params: readonly string[] = []): Promise<void> {
  const statements = sql.map((text) => db.prepare(text))
  try {
    await inRanges(db, table, key, (from, to) => {
      for (const statement of statements) statement.run(from, to, ...params)
    })
  } finally {
    for (const statement of statements) statement.finalize()
  }
}

/**
 * Calls `copy` for consecutive ranges of `key` in src's `table`, COPY_RANGE keys each (however sparse
 * the keys: a range ends at the key that many keys on), giving the event loop a turn now and then.
 */
async function inRanges(db: Database, table: string, key: string, copy: (from: bigint, to: bigint) => void): Promise<void> {
  // As 64-bit integers: a key past 2^53 (put there by hand) rounded to a JS number would fall
  // between two ranges, or past the last, and never be copied.
  const { lo, hi } = db.query(`SELECT min(${key}) AS lo, max(${key}) AS hi FROM src.${table}`).safeIntegers(true).get() as { lo: bigint | null; hi: bigint | null }
  if (lo === null || hi === null) return
  const rangeEnd = db.prepare(`SELECT ${key} AS k FROM src.${table} WHERE ${key} >= ? ORDER BY ${key} LIMIT 1 OFFSET ${COPY_RANGE - 1}`).safeIntegers(true)
  const breather = new Breather()
  try {
    for (let from = lo; ; ) {
      const to = (rangeEnd.get(from) as { k: bigint } | null)?.k ?? hi
      copy(from, to)
      if (to >= hi) return
      from = to + 1n
      if (breather.due()) await breather.pause()
    }
  } finally {
    rangeEnd.finalize()
  }
}

/** How long a dead verify's work directory must have been left untouched before another removes it. */
const LEFTOVER_IDLE_MS = 10 * 60_000

/**
 * The work directories under `parent` that verifies killed with SIGKILL left (690 MB for 1M rows):
 * their pid runs no more here, and nothing in them was written for LEFTOVER_IDLE_MS (a verify in
 * another pid namespace sharing the directory writes into its own all the time). Another user's,
 * or one that cannot be read, is left.
 */
function removeLeftovers(parent: string): void {
  let names: string[]
  try {
    names = readdirSync(parent)
  } catch {
    return // mkdtemp says why, if it matters
  }
  const now = Date.now()
  for (const name of names) {
    const pid = /^witness-verify-(\d+)-/.exec(name)?.[1]
    if (pid === undefined || processAlive(Number(pid))) continue
    const dir = join(parent, name)
    try {
      if (!lstatSync(dir).isDirectory()) continue
      const newest = Math.max(lstatSync(dir).mtimeMs, ...readdirSync(dir).map((f) => lstatSync(join(dir, f)).mtimeMs))
      if (now - newest >= LEFTOVER_IDLE_MS) rmSync(dir, { recursive: true, force: true })
    } catch {
      // gone meanwhile, or not ours to read or remove
    }
  }
}
