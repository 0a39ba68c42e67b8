/** `witness init [--db PATH] [--config PATH]`: create the database with its schema; safe to run twice. */
import { parseArgs } from 'node:util'
import { existsSync } from 'node:fs'
import { loadConfig } from '../config.ts'
import { configPathFrom, openStoreFor } from '../main.ts'
import { SCHEMA_VERSION } from '../telemetry/schema.ts'
import { openStore } from '../telemetry/store.ts'
import { type Command, parsed } from './args.ts'

export const initCommand: Command = {
  summary: 'init [--db PATH] [--config PATH]               create the database with its schema (safe to run twice)',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { db: { type: 'string' }, config: { type: 'string' } } }))
    const configPath = configPathFrom(values.config)
    const store = values.db
      ? openStore(values.db, { sync: 'full', busyTimeoutMs: 5000 })
      : existsSync(configPath)
        ? openStoreFor(loadConfig(configPath))
        : openStore('data/witness.db', { sync: 'full', busyTimeoutMs: 5000 })
    console.log(`witness: database ${store.path} ready (schema version ${SCHEMA_VERSION})`)
    store.close()
    return 0
  },
}
