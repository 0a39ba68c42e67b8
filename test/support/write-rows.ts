/**
 * Run as a separate process (under strace, to count fsyncs): opens the
 * store the way the server does, from a config file, and commits N rows
 * one commit at a time.
 *
 *   bun test/support/write-rows.ts CONFIG N
 */
import { loadConfig } from '../../src/config-file.ts'
import { openStoreFor } from '../../src/telemetry/open-for-config.ts'

const [configPath, count] = process.argv.slice(2)
if (!configPath || !count) throw new Error('usage: write-rows.ts CONFIG N')
const store = openStoreFor(loadConfig(configPath))
for (let i = 0; i < Number(count); i++) {
  await store.insert({ timestamp: new Date().toISOString(), agentName: 'a', provider: 'p', model: 'm', endpoint: 'e', status: 'error', errorMessage: 'x' }, null)
}
store.close()
