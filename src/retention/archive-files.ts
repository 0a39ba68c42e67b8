/**
 * The monthly archive files: `request_log-YYYY-MM.db` (SQLite, the exact
 * request_log schema, the same ids, plus the side tables and indexes copied
 * from the live database's own definitions), compressed with zstd to
 * `request_log-YYYY-MM.db.zst` once the month is closed. Compressed months
 * are read through a decompressed copy in `<archive_dir>/.cache/` (or, for a
 * reader that may not write there, in a cache of its own: copyPaths).
 */
import { Database } from 'bun:sqlite'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs'
import { mkdir, open, rename } from 'node:fs/promises'
import { homedir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import zlib from 'node:zlib'
import { ArchiveDamagedError, ArchiveError, ArchiveHalfWrittenError } from '../errors.ts'
import { writeFileDurably, syncDir } from '../jobs/durable-file.ts'
import { sha256 } from '../hash.ts'
import { REQUEST_LOG_DDL, columnsOf, hasTable } from '../telemetry/schema.ts'
import type { SideTable } from './side-tables.ts'

const NAME = /^request_log-(\d{4}-\d{2})\.db(\.zst)?$/

export interface ArchiveFile {
  month: string
  /** `request_log-YYYY-MM.db` if it exists, else the `.db.zst`. */
  path: string
  compressed: boolean
  /** Both the `.db` and the `.db.zst` exist (a compression was cut short). */
  both: boolean
}

export function archivePath(dir: string, month: string, compressed = false): string {
  return join(dir, `request_log-${month}.db${compressed ? '.zst' : ''}`)
}

export function cacheDir(dir: string): string {
  return join(dir, '.cache')
}

/** Every archive file in `dir`, oldest month first. */
export function listArchives(dir: string): ArchiveFile[] {
  if (!existsSync(dir)) return []
  const months = new Map<string, { db: boolean; zst: boolean }>()
  for (const name of readdirSync(dir)) {
    const match = NAME.exec(name)
    if (!match) continue
    const entry = months.get(match[1]!) ?? { db: false, zst: false }
    if (match[2]) entry.zst = true
    else entry.db = true
    months.set(match[1]!, entry)
  }
  return [...months.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([month, { db, zst }]) => ({ month, path: archivePath(dir, month, !db), compressed: !db, both: db && zst }))
}

/** Quotes an identifier taken from the schema (never from input). */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}


/**
 * Opens (creating if needed) the writable archive of a month. A month that
 * was already compressed is decompressed back to `.db` first (a late row
 * for a closed month). The schema is brought up to the live database's:
 * request_log exactly, each side table from the live definition (columns
 * added since are added), and the indexes of those tables. That is a write
 * transaction, which a reader of the file can make busy: the caller retries
 * (a second call finds the file made or decompressed).
 */
export function openArchiveForWrite(dir: string, month: string, live: Database, sides: readonly SideTable[]): Database {
  mkdirSync(dir, { recursive: true })
  const path = archivePath(dir, month)
  const packed = archivePath(dir, month, true)
  if (!existsSync(path) && existsSync(packed)) {
    writeFileDurably(path, Bun.zstdDecompressSync(readFileSync(packed)))
    unlinkSync(packed)
    syncDir(dir)
  }
  if (!existsSync(path)) createArchive(dir, path, live, sides)
  const db = openArchiveWriter(path, false)
  try {
    ensureArchiveSchema(db, live, sides)
    return db
  } catch (error) {
    // Busy (a reader's lock): the caller may open it again.
    db.close()
    throw error
  }
}

/**
 * The connection the mover writes a month with. Its rollback journal is kept between transactions
 * (TRUNCATE), not deleted after each: a reader (read-only) that sees a journal there, and finds it
 * gone when it opens it, must take it for a crash's and fails (SQLITE_READONLY_ROLLBACK, "attempt to
 * write a readonly database"), which a read of the month failed with now and then during every run.
 */
function openArchiveWriter(path: string, create: boolean): Database {
  const db = new Database(path, { create, readwrite: true, strict: true })
  db.exec('PRAGMA busy_timeout = 0')
  db.exec('PRAGMA synchronous = FULL')
  db.exec('PRAGMA journal_mode = TRUNCATE')
  return db
}

/**
 * Makes a new month's file with its tables under a temporary name, then renames it into place: a
 * read listing the archives in between found an empty database ("no such table: request_log"), and
 * would have found one for good had the run failed before the tables were committed.
 */
function createArchive(dir: string, path: string, live: Database, sides: readonly SideTable[]): void {
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`)
  try {
    const db = openArchiveWriter(tmp, true)
    try {
      ensureArchiveSchema(db, live, sides)
    } finally {
      db.close()
    }
    renameSync(tmp, path)
    syncDir(dir)
  } catch (error) {
    rmSync(tmp, { force: true })
    if (error instanceof Error) error.message = `cannot make ${path} (${tmp}): ${error.message}`
    throw error
  } finally {
    // The kept (empty) journal of the temporary name.
    rmSync(`${tmp}-journal`, { force: true })
  }
}

function ensureArchiveSchema(archive: Database, live: Database, sides: readonly SideTable[]): void {
  const liveSql = (type: string, name: string) =>
    (live.query('SELECT sql FROM sqlite_master WHERE type = ? AND name = ?').get(type, name) as { sql: string | null } | null)?.sql ?? null
  const tables = ['request_log', ...sides.map((s) => s.table).filter((t) => hasTable(live, t))]
  archive.transaction(() => {
    if (!hasTable(archive, 'request_log')) archive.exec(REQUEST_LOG_DDL)
    for (const table of tables.slice(1)) {
      if (!hasTable(archive, table)) {
        archive.exec(liveSql('table', table)!)
        continue
      }
      const have = new Set(columnsOf(archive, table))
      const liveColumns = live.query(`PRAGMA table_info(${ident(table)})`).all() as { name: string; type: string }[]
      for (const column of liveColumns) {
        if (!have.has(column.name)) archive.exec(`ALTER TABLE ${ident(table)} ADD COLUMN ${ident(column.name)} ${column.type || 'ANY'}`)
      }
    }
    const indexes = live
      .query(`SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN (SELECT value FROM json_each(?))`)
      .all(JSON.stringify(tables)) as { name: string; sql: string }[]
    for (const index of indexes) {
      if (!archive.query("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?").get(index.name)) archive.exec(index.sql)
    }
  }).immediate()
}

/**
 * Compresses a month's `.db` to `.db.zst` (verified by decompressing it,
 * written to a temp file, fsynced, renamed), then deletes the `.db`.
 * A crash leaves the `.db`, or both (the next run finishes the job).
 */
export async function compressArchive(dir: string, month: string): Promise<void> {
  const path = archivePath(dir, month)
  // Opening read-write rolls back a hot journal left by a crash, so the bytes are a whole database.
  const settle = new Database(path, { readwrite: true, create: false })
  try {
    settle.exec('PRAGMA busy_timeout = 5000')
    settle.query('SELECT count(*) FROM request_log').get()
    // Asynchronous (off the event loop) where it can be: inside `serve` the router keeps running.
    const bytes = Buffer.from(await Bun.file(path).bytes())
    const packed = await compressWithChecksum(bytes)
    if (!(await Bun.zstdDecompress(packed)).equals(bytes)) {
      throw new ArchiveError(`archive: compressing ${path} did not round-trip; kept the .db`)
    }
    writeFileDurably(archivePath(dir, month, true), packed)
    // The .db and its (empty) journal go under an exclusive lock: a reader that has the file open
    // looks at the journal only under its shared lock, and one gone between its look and its open
    // would be taken for a crash's (see openArchiveWriter).
    settle.exec('BEGIN EXCLUSIVE')
    try {
      unlinkSync(path)
      rmSync(`${path}-journal`, { force: true })
    } finally {
      settle.exec('ROLLBACK')
    }
  } finally {
    settle.close()
  }
  syncDir(dir)
}

/**
 * zstd at level 9, its frame carrying a checksum of the content (Bun.zstdCompress has no such
 * option): decompressing a `.db.zst` damaged since then fails, naming it, rather than giving a
 * database with wrong bytes (measured on a 7.7 MB month with one bit flipped at 60 places: without
 * the checksum 38 decompressed into wrong bytes without an error; with it, none). Off the event loop.
 */
function compressWithChecksum(bytes: Buffer): Promise<Buffer> {
  const params = { [zlib.constants.ZSTD_c_compressionLevel]: 9, [zlib.constants.ZSTD_c_checksumFlag]: 1 }
  return new Promise((done, fail) => zlib.zstdCompress(bytes, { params }, (error, packed) => (error ? fail(error) : done(packed))))
}

/**
 * A path to a readable SQLite file for an archive: the `.db` itself, or a
 * decompressed copy of the `.db.zst` in the cache (made once per version,
 * and its use noted, so the archive job can remove copies no read uses).
 */
export function readablePath(dir: string, file: ArchiveFile): string {
  if (!file.compressed) return file.path
  const fresh = freshCopy(dir, file)
  if (fresh) {
    noteUse(fresh)
    return fresh
  }
  const version = versionOf(file.path)
  const bytes = decompressed(file)
  const [own, mine] = copyPaths(dir, file.month)
  let cached = own
  try {
    mkdirSync(dirname(own), { recursive: true })
    writeFileDurably(own, bytes)
  } catch (error) {
    if (!cannotWriteThere(error)) throw error
    cached = mine
    mkdirSync(dirname(mine), { recursive: true, mode: 0o700 })
    writeFileDurably(mine, bytes)
  }
  markVersion(cached, version)
  checkCopy(cached, file)
  return cached
}

/** A compressed archive's database bytes (synchronously: the command line's path). */
function decompressed(file: ArchiveFile): Uint8Array {
  try {
    return Bun.zstdDecompressSync(readFileSync(file.path))
  } catch (error) {
    throw cannotDecompress(file, error)
  }
}

function cannotDecompress(file: ArchiveFile, error: unknown): ArchiveDamagedError {
  return new ArchiveDamagedError(`archive ${file.path} cannot be decompressed (${(error as Error).message}): the file is cut or damaged; restore it from a copy`, [file.path], error)
}

/** Whether SQLite failed because a file is not a whole database (cut, overwritten, damaged pages). */
export function isDamage(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^SQLITE_(CORRUPT|NOTADB|IOERR_SHORT_READ)/.test(code)
}

/**
 * Checks a fresh decompressed copy with SQLite's quick_check, once per
 * version of the archive: the frames of months compressed before their
 * checksum (compressWithChecksum) carry none, so a damaged `.db.zst` can
 * decompress into a damaged database, which would otherwise answer queries
 * wrongly or fail them without naming the file. Only on this
 * synchronous path (the command line: verify, fleet): the check reads the
 * whole file (seconds for a large month), which the server's asynchronous
 * path (prepareReadable) must not hold its event loop for.
 */
function checkCopy(cached: string, file: ArchiveFile): void {
  let verdict: string
  try {
    const db = new Database(cached, { readonly: true })
    try {
      verdict = (db.query('PRAGMA quick_check').values() as string[][]).map((r) => r[0]).join('; ')
    } finally {
      db.close()
    }
  } catch (error) {
    verdict = (error as Error).message
  }
  if (verdict === 'ok') return
  rmSync(cached, { force: true })
  throw new ArchiveDamagedError(`archive ${file.path} is damaged: the database it decompresses to fails SQLite's check (${verdict.slice(0, 200)}); restore it from a copy`, [file.path])
}

/**
 * Makes the decompressed copy of a compressed archive, if it is missing or
 * older than the `.db.zst`, off the event loop (reading, decompressing and
 * writing are asynchronous), so that a server reading a month for the
 * first time keeps answering meanwhile. `readablePath` then finds it fresh.
 */
export async function prepareReadable(dir: string, file: ArchiveFile): Promise<void> {
  // Gone since it was listed (reopened for a late row, or deleted): openArchiveReadonly sorts that out.
  if (!file.compressed || !existsSync(file.path) || freshCopy(dir, file)) return
  const version = versionOf(file.path)
  const compressed = await Bun.file(file.path).bytes()
  let bytes: Uint8Array
  try {
    bytes = await Bun.zstdDecompress(compressed)
  } catch (error) {
    throw cannotDecompress(file, error)
  }
  const [own, mine] = copyPaths(dir, file.month)
  try {
    // The temp file is beside the archives, not in the cache, where the archive job's pruneCache would remove it.
    await writeCopy(own, dir, file, bytes, version)
  } catch (error) {
    if (!cannotWriteThere(error)) throw error
    await mkdir(dirname(mine), { recursive: true, mode: 0o700 })
    await writeCopy(mine, dirname(mine), file, bytes, version)
  }
}

/** Temp file (in `tempDir`), fsync, rename: a crash never leaves half a copy under the cached name. */
async function writeCopy(cached: string, tempDir: string, file: ArchiveFile, bytes: Uint8Array, version: number): Promise<void> {
  const tmp = join(tempDir, `.request_log-${file.month}.db.cache.${process.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`)
  try {
    await mkdir(dirname(cached), { recursive: true })
    const handle = await open(tmp, 'w')
    try {
      await handle.writeFile(bytes)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await rename(tmp, cached)
    markVersion(cached, version)
  } catch (error) {
    try {
      rmSync(tmp, { force: true })
    } catch {
      // a read-only file system refuses even that; the error below is the one to tell
    }
    if (error instanceof Error) error.message = `cannot write the decompressed copy of ${file.path} (${tmp}): ${error.message}`
    throw error
  }
}

/**
 * Where a decompressed copy of a month is kept: in the cache beside the archives, or, for a reader
 * that may not write there (a member of the database's group, a read-only mount, a full disk),
 * in a cache of its own, `~/.cache/witness/archives/<the archive directory's hash>/` (mode 0700;
 * `$XDG_CACHE_HOME` if set). The archive job prunes the first (pruneCache), every read of the archives the second (prunePrivateCache).
 */
function copyPaths(dir: string, month: string): [string, string] {
  const name = `request_log-${month}.db`
  const home = process.env.XDG_CACHE_HOME || join(homedir(), '.cache')
  return [join(cacheDir(dir), name), join(home, 'witness', 'archives', sha256(resolve(dir)).slice(0, 16), name)]
}

/** A fresh copy of `file` in either place, or null. */
function freshCopy(dir: string, file: ArchiveFile): string | null {
  return copyPaths(dir, file.month).find((path) => cacheIsFresh(path, file)) ?? null
}

/** Whether writing the copy beside the archives failed because this reader may not, or cannot, write there. */
function cannotWriteThere(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ENOSPC' || code === 'EDQUOT'
}

/**
 * Runs `use` on each archive in `dir`, oldest first, opened read-only (a compressed one
 * decompressed off the event loop first), giving the loop back between them. One that cannot be
 * read does not hold back the rest: it is skipped, and named in what this returns (`file: why`).
 */
export async function eachReadableArchive(dir: string, use: (db: Database) => void | Promise<void>): Promise<string[]> {
  const unreadable: string[] = []
  prunePrivateCache(dir)
  for (const file of listArchives(dir)) {
    try {
      await prepareReadable(dir, file)
      const db = openArchiveReadonly(dir, file)
      try {
        await use(db)
      } finally {
        db.close()
      }
    } catch (error) {
      unreadable.push(`${basename(file.path)}: ${(error as Error).message}`)
    }
    await Bun.sleep(0)
  }
  return unreadable
}

/**
 * Whether the cached copy was made from the `.db.zst` as it is now: made after its last change. The
 * change time counts too, which no one can set: a file put back with its old modification time
 * (`cp -p`, `rsync -t`, a restore) is read again, not answered from a copy of what it replaced.
 */
function cacheIsFresh(cached: string, file: ArchiveFile): boolean {
  if (!existsSync(cached)) return false
  return statSync(cached).mtimeMs >= versionOf(file.path)
}

/** The version of a `.db.zst`: its last change (modification or change time), in ms. */
function versionOf(path: string): number {
  const source = statSync(path)
  return Math.max(source.mtimeMs, source.ctimeMs)
}

/**
 * Dates a copy by the version of the `.db.zst` it was made from, read before the copy began: one
 * recompressed meanwhile (a late row for the month) is then newer than the copy, not older, and the
 * copy is made again rather than answered from. Its access time is when it was last used (now).
 */
function markVersion(cached: string, versionMs: number): void {
  utimesSync(cached, Date.now() / 1000, versionMs / 1000)
}

/**
 * Notes that a copy is being read: its access time (the modification time stays the version it was
 * made from). Best effort: a reader that may not change the file (another user's cache) reads it all
 * the same, and the kernel may note reads in the access time too.
 */
function noteUse(cached: string): void {
  try {
    utimesSync(cached, Date.now() / 1000, statSync(cached).mtimeMs / 1000)
  } catch {
    // not ours to date: the copy is still good to read
  }
}

/**
 * An archive opened for an audit (verify): a compressed month is decompressed anew into a file of
 * its own in `copyDir` (verify's work directory, removed with it, on a signal too), never read
 * through the cache, which anyone who can write the archive directory could have replaced, and a
 * chunk at a time (a month's database is never whole in memory). The archive directory is only
 * read. `remove` deletes that file once the database is closed.
 */
export async function openArchiveForAudit(dir: string, file: ArchiveFile, copyDir: string): Promise<{ db: Database; remove: (() => void) | null }> {
  if (!file.compressed) return { db: openArchiveReadonly(dir, file), remove: null }
  const path = join(copyDir, `audit-request_log-${file.month}.db`)
  const remove = () => rmSync(path, { force: true })
  try {
    await decompressTo(file, path)
    checkCopy(path, file)
    const db = new Database(path, { readonly: true, strict: true })
    return { db, remove }
  } catch (error) {
    remove()
    throw error
  }
}

/**
 * Writes a compressed archive's database to `path` as it is decompressed. Web streams' zstd, not
 * node:zlib's, whose stream ends without an error on a cut or damaged frame.
 */
async function decompressTo(file: ArchiveFile, path: string): Promise<void> {
  const chunks = Bun.file(file.path).stream().pipeThrough(new DecompressionStream('zstd' as CompressionFormat))[Symbol.asyncIterator]()
  const fd = openSync(path, 'w')
  try {
    for (;;) {
      let next: IteratorResult<Uint8Array>
      try {
        next = await chunks.next()
      } catch (error) {
        throw cannotDecompress(file, error)
      }
      if (next.done) return
      for (let at = 0; at < next.value.length; ) at += writeSync(fd, next.value, at)
    }
  } finally {
    closeSync(fd)
  }
}

/**
 * Opens an archive read-only (through the cache when compressed). A month whose writer was killed
 * mid-batch (kill -9 of `witness archive`, a crash of the server's run) holds a hot journal, which
 * a read-only connection cannot roll back: every read of the month failed ("attempt to write a
 * readonly database") until the next archive run. It is rolled back here (recoverHotJournal).
 */
export function openArchiveReadonly(dir: string, file: ArchiveFile): Database {
  const open = (f: ArchiveFile) => {
    const path = readablePath(dir, f)
    const db = new Database(path, { readonly: true, strict: true })
    db.exec('PRAGMA busy_timeout = 5000')
    if (readable(db)) return db
    db.close()
    recoverHotJournal(path)
    const again = new Database(path, { readonly: true, strict: true })
    again.exec('PRAGMA busy_timeout = 5000')
    return again
  }
  try {
    try {
      return open(file)
    } catch (error) {
      // Compressed (or reopened for a late row) between listing and opening: open what is there now.
      const now = listArchives(dir).find((f) => f.month === file.month)
      // Or its decompressed copy was removed between making sure of it and opening it (pruneCache: no
      // read had used it for a day): it is made again.
      const copyGone = file.compressed && !copyPaths(dir, file.month).some((path) => existsSync(path))
      if (!now || (now.path === file.path && !copyGone)) throw error
      return open(now)
    }
  } catch (error) {
    if (!isDamage(error)) throw error
    // A decompressed copy that is damaged is no copy to keep: the next read makes it again.
    if (file.compressed) for (const path of copyPaths(dir, file.month)) rmSync(path, { force: true })
    throw new ArchiveDamagedError(`archive ${file.path} is not a whole database (${(error as Error).message}): the file is cut or damaged; restore it from a copy`, [file.path], error)
  }
}

/** Whether a read-only connection can read its file: false when a hot journal needs rolling back first. */
function readable(db: Database): boolean {
  try {
    db.query('SELECT count(*) FROM sqlite_master').get()
    return true
  } catch (error) {
    if ((error as { code?: string }).code === 'SQLITE_READONLY_ROLLBACK') return false
    db.close()
    throw error
  }
}

/**
 * Rolls back the batch a killed writer left half-written in a month's file: the first read on a
 * read-write connection does it, under an exclusive lock, as the next archive run would (a journal
 * is only hot while no writer holds the file, so this never undoes a live run's work). Where the
 * file may not be written (another user's), the read fails naming it.
 */
function recoverHotJournal(path: string): void {
  try {
    // A file this user may not write opens read-only all the same, and its read fails as before.
    const db = new Database(path, { readwrite: true, create: false, strict: true })
    try {
      db.exec('PRAGMA busy_timeout = 5000')
      db.query('SELECT count(*) FROM sqlite_master').get()
    } finally {
      db.close()
    }
  } catch (error) {
    throw new ArchiveHalfWrittenError(path, (error as Error).message)
  }
}

/** Deletes a month's files and its cached copy. */
export function deleteArchive(dir: string, month: string): void {
  for (const path of [archivePath(dir, month), archivePath(dir, month, true), `${archivePath(dir, month)}-journal`, copyPaths(dir, month)[0]]) {
    rmSync(path, { force: true })
  }
  syncDir(dir)
}

/**
 * Removes cached copies whose compressed archive is gone, or that no read has used for
 * CACHE_IDLE_MS (a month read once, by a sync catching up through every archive or a query over
 * all time, would otherwise stay decompressed beside its `.db.zst` for as long as the archive is
 * kept), and what a crash left while making one. A read after that decompresses the month again.
 */
export function pruneCache(dir: string): void {
  // The server makes its copies beside the archives (prepareReadable), and the job writes a month
  // compressed or decompressed there (writeFileDurably), or a new one (createArchive): a crash leaves the temp file there.
  for (const name of existsSync(dir) ? readdirSync(dir) : []) {
    const path = join(dir, name)
    if (/^\.request_log-.*\.tmp(-journal)?$/.test(name) && leftByCrash(path)) rmSync(path, { force: true })
  }
  pruneCopies(dir, cacheDir(dir))
}

/**
 * The same for this reader's own cache (copyPaths), which no archive job reaches: run by every read of
 * the archives, so a month retention deleted (archive_keep_days) does not live on there.
 */
export function prunePrivateCache(dir: string): void {
  pruneCopies(dir, dirname(copyPaths(dir, '0000-00')[1]))
}

/** Removes the copies in `folder` of months whose compressed archive in `dir` is gone or that no read used for CACHE_IDLE_MS, and a crash's temp files. */
function pruneCopies(dir: string, folder: string): void {
  if (!existsSync(folder)) return
  for (const name of readdirSync(folder)) {
    const path = join(folder, name)
    // A temp file is a copy being written (readablePath, in another process perhaps) unless it is old: a crash's.
    if (name.endsWith('.tmp')) {
      if (leftByCrash(path)) rmSync(path, { force: true })
      continue
    }
    const match = /^request_log-(\d{4}-\d{2})\.db$/.exec(name)
    if (!match || !existsSync(archivePath(dir, match[1]!, true)) || unusedFor(path, CACHE_IDLE_MS)) rmSync(path, { force: true })
  }
}

/** A decompressed copy no read has used for this long is removed by the next archive run (pruneCache). */
export const CACHE_IDLE_MS = 86_400_000

/** Whether a file's access time (a cached copy's last use: noteUse) is at least `ms` ago. */
function unusedFor(path: string, ms: number): boolean {
  const stat = statSync(path, { throwIfNoEntry: false })
  return stat !== undefined && Date.now() - stat.atimeMs >= ms
}

/** How old a temp file in the cache must be before pruneCache takes it for a crash's leftover. */
const TEMP_GRACE_MS = 60 * 60_000

/** Whether a temp file is old enough to be a crash's leftover, not a copy being written (one gone already counts: removing it is a no-op). */
function leftByCrash(path: string): boolean {
  return Date.now() - (statSync(path, { throwIfNoEntry: false })?.mtimeMs ?? 0) >= TEMP_GRACE_MS
}
