/**
 * The database the read commands (query, did-call, stats) look at, opened
 * read-only: `--db PATH`, else the one the config names (config from
 * --config, WITNESS_CONFIG or ./witness.yaml). Works while the server is down.
 */
import { Database } from 'bun:sqlite'
import { existsSync } from 'node:fs'
import { type Config, loadConfig } from '../config.ts'
import { configPathFrom } from '../main.ts'
import { UsageError } from './args.ts'

export const READ_OPTIONS = { db: { type: 'string' }, config: { type: 'string' } } as const

export interface ReadTarget {
  db: Database
  /** The config, when there is one (prices for stats). */
  config: Config | null
  close(): void
}

export function openForReading(values: { db?: string; config?: string }): ReadTarget {
  const configPath = configPathFrom(values.config)
  // With --db, a config is optional (only prices come from it) unless one was named explicitly.
  const named = values.config !== undefined || process.env.WITNESS_CONFIG !== undefined
  const config = values.db === undefined || named || existsSync(configPath) ? loadConfig(configPath) : null
  const path = values.db ?? config!.databasePath
  if (!existsSync(path)) throw new UsageError(`no database at ${path} (set --db, or the config's database)`)
  let db: Database
  try {
    db = new Database(path, { readonly: true, strict: true })
    db.exec('PRAGMA busy_timeout = 5000')
    db.query("SELECT 1 FROM request_log LIMIT 1").get()
  } catch (error) {
    throw new UsageError(`cannot read ${path} as a witness database: ${(error as Error).message}`)
  }
  return { db, config, close: () => db.close() }
}

/** Drops flags that were not given, so the query parser sees only what was asked. */
export function given(values: Record<string, string | boolean | undefined>, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const name of names) {
    const value = values[name.replace(/_/g, '-')]
    if (typeof value === 'string') out[name] = value
  }
  return out
}
