/**
 * The database the read commands (query, did-call, stats) look at, opened
 * read-only: `--db PATH`, else the one the config names (config from
 * --config, WITNESS_CONFIG or ./witness.yaml). Works while the server is down.
 * With `--archives`, the archive files of the period asked for are searched
 * too: those in `--archive-dir`, else in the config's retention.archive_dir.
 */
import { Database, constants as sqliteFlags } from 'bun:sqlite'
import { accessSync, constants, existsSync, realpathSync, statSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { type Config } from '../config.ts'
import { loadConfig, configPathFrom } from '../config-file.ts'
import { ConfigError, InvalidRequestError, type Issue } from '../errors.ts'
import { archivedBeforeMs } from '../retention/archive-job.ts'
import { type ReadPeriod, type ReadSources, openSourcesFor } from '../retention/read-sources.ts'
import { UsageError, dbFlagOf } from './args.ts'

export const READ_OPTIONS = { db: { type: 'string' }, config: { type: 'string' }, archives: { type: 'boolean' }, 'archive-dir': { type: 'string' } } as const

export interface ReadTarget {
  db: Database
  /** The config, when there is one (prices for stats). */
  config: Config | null
  /** The config whose database this is (not one beside a file given with --db: a fleet database, a copy). */
  ownConfig: Config | null
  /** The database plus, when `archives`, the archive files of `period`; closed by `close`. */
  /** `answer`: did-call or the stats, which read the archives where their window reaches them (readSources in routes/requests.ts). */
  sources(archives: boolean, period: ReadPeriod, answer?: boolean): Promise<ReadSources>
  close(): void
}

export function openForReading(values: { db?: string; config?: string; archives?: boolean; 'archive-dir'?: string }): ReadTarget {
  dbFlagOf(values.db)
  const configPath = configPathFrom(values.config)
  // With --db, only prices and the archive directory come from the config. A config named with --config must load.
  const config = values.db === undefined || values.config !== undefined ? loadConfig(configPath) : optionalConfig(configPath, values.db, 'no prices, no archive directory')
  const path = values.db ?? config!.databasePath
  // The config's archives and keep_days are its own database's: not those of another file given
  // with --db (a fleet database, a copy), whose archives, if any, come with --archive-dir.
  const ownConfig = config && samePath(path, config.databasePath) ? config : null
  const archiveDir = archiveDirOf(values, ownConfig)
  if (!existsSync(path)) throw new UsageError(`no database at ${path} (set --db, or the config's database)`, { showUsage: false })
  const db = openWitnessDb(path)
  const opened: ReadSources[] = []
  return {
    db,
    config,
    ownConfig,
    async sources(archives, period, answer = false) {
      // As the server's reads (routes/requests.ts readSources).
      const horizonMs = ownConfig ? archivedBeforeMs(ownConfig.retention, Date.now()) : undefined
      const sources = await openSourcesFor(db, archiveDir, { asked: archives, answer, period, horizonMs })
      opened.push(sources)
      return sources
    },
    close: () => {
      for (const sources of opened) sources.close()
      db.close()
    },
  }
}

/**
 * The config beside a database given with --db: optional there, so one that is missing, or does not
 * load, is set aside with a warning saying what is `lost`. A broken config never keeps anyone from
 * reading the rows, perhaps while the server is down for just that reason.
 */
export function optionalConfig(configPath: string, db: string, lost: string): Config | null {
  if (!existsSync(configPath)) return null
  try {
    return loadConfig(configPath)
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error
    console.error(`witness: reading ${db} without the config, which does not load (${error.issues.length} problem(s) in ${configPath}): ${lost}`)
    return null
  }
}

/** A witness database opened read-only; a file that is not one is a usage error (exit 2). */
export function openWitnessDb(path: string): Database {
  // SQLite says "disk I/O error" of a directory.
  if (isDirectory(path)) throw new UsageError(`cannot read ${path} as a witness database: it is a directory, not a database file`, { showUsage: false })
  let db: Database | null = null
  try {
    db = new Database(path, { readonly: true, strict: true })
    db.exec('PRAGMA busy_timeout = 5000')
    db.query('SELECT 1 FROM request_log LIMIT 1').get()
    return db
  } catch (error) {
    db?.close()
    const unchanging = stoppedUnwritable(path)
    if (unchanging) return unchanging
    throw new UsageError(`cannot read ${path} as a witness database: ${(error as Error).message}`, { showUsage: false })
  }
}

/**
 * The database of a stopped server, for a reader who may read it but not write its folder (the
 * owner's group): SQLite opens a WAL database by making its -shm beside it, even to read. With no
 * -wal there (the last writer checkpointed it away and closed), the file alone holds every row and
 * nothing is writing it, so it is read as unchanging. Null when that is not the case.
 */
function stoppedUnwritable(path: string): Database | null {
  if (existsSync(`${path}-wal`) || writable(dirname(path))) return null
  let db: Database | null = null
  try {
    const uri = `file:${resolve(path).replace(/%/g, '%25').replace(/\?/g, '%3F').replace(/#/g, '%23')}?immutable=1`
    // A URI needs the flag, which the options object cannot give (so not strict: a missing binding reads as NULL).
    db = new Database(uri, sqliteFlags.SQLITE_OPEN_READONLY | sqliteFlags.SQLITE_OPEN_URI)
    db.query('SELECT 1 FROM request_log LIMIT 1').get()
    return db
  } catch {
    db?.close()
    return null
  }
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK)
    return true
  } catch {
    return false
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/** Whether two paths name one file (through links, when they exist). */
export function samePath(a: string, b: string): boolean {
  const real = (p: string) => (existsSync(p) ? realpathSync(p) : resolve(p))
  return real(a) === real(b)
}

/** Where --archives looks: --archive-dir, else the config's retention.archive_dir. */
function archiveDirOf(values: { archives?: boolean; 'archive-dir'?: string }, config: Config | null): string | null {
  const given = values['archive-dir']
  if (given !== undefined) {
    if (!values.archives) throw new UsageError('--archive-dir is only used with --archives')
    if (!existsSync(given) || !statSync(given).isDirectory()) throw new UsageError(`no archive directory at ${given}`)
    return given
  }
  if (values.archives && !config) throw new UsageError('--archives needs the archive directory: give --archive-dir, or a config (--config) whose retention.archive_dir names it')
  return config?.retention.archiveDir ?? null
}

/**
 * Drops flags that were not given, so the query parser sees only what was
 * asked; `--archives` becomes `archives=1`, as over HTTP.
 */
export function given(values: Record<string, string | boolean | undefined>, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of [...names, 'archives']) {
    const value = values[name.replace(/_/g, '-')]
    if (typeof value === 'string') out[name] = value
    else if (value === true) out[name] = '1'
  }
  return out
}

/**
 * Runs a query-input parser on the parameters `given` made of the flags, and words what it refuses
 * as the command's flags (`--since must be ...`), not as the HTTP route's parameters.
 */
export function parseFlags<T>(parse: () => T): T {
  try {
    return parse()
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error
    const issues = (error.details.issues ?? []) as Issue[]
    throw new UsageError(issues.map((i) => `${i.path ? `--${i.path.replace(/_/g, '-')}` : 'the options'} ${i.message}`).join('; '), { showUsage: false })
  }
}
