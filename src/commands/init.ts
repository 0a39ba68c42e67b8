/**
 * `witness init [--db PATH] [--config PATH] [--key PATH]`: create the
 * database with its schema and the machine's signing key (mode 0600);
 * safe to run twice (an existing key is kept).
 */
import { existsSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfig } from '../config-file.ts'
import { configPathFrom } from '../config-file.ts'
import { openStoreFor } from '../telemetry/open-for-config.ts'
import { ensureSigningKey } from '../proof/keys.ts'
import { SCHEMA_VERSION } from '../telemetry/schema.ts'
import { openStore } from '../telemetry/store.ts'
import { type Command, dbFlagOf, parsed } from './args.ts'

export const initCommand: Command = {
  summary: 'init [--db PATH] [--config PATH] [--key PATH]  create the database and the signing key (safe to run twice)',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { db: { type: 'string' }, config: { type: 'string' }, key: { type: 'string' } } }))
    dbFlagOf(values.db)
    const configPath = configPathFrom(values.config)
    // A config named (--config, WITNESS_CONFIG) must be there: a typo must not set up a database elsewhere.
    const named = values.config !== undefined || process.env.WITNESS_CONFIG !== undefined
    const config = !values.db && (named || existsSync(configPath)) ? loadConfig(configPath) : null
    const store = config ? openStoreFor(config) : openStore(values.db ?? 'data/witness.db', { sync: 'full', busyTimeoutMs: 5000 })
    console.log(`witness: database ${store.path} ready (schema version ${SCHEMA_VERSION})`)
    const keyPath = values.key ? resolve(values.key) : (config?.proof.keyPath ?? join(dirname(resolve(store.path)), 'witness-key.json'))
    store.close()
    const { key, created } = await ensureSigningKey(keyPath)
    console.log(`witness: signing key ${keyPath} ${created ? 'created' : 'kept'} (key id ${key.keyId})`)
    return 0
  },
}
