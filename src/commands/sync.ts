/** `witness sync [--config PATH]`: export new rows to the git remote now (see src/sync/sync-job.ts). */
import { parseArgs } from 'node:util'
import { loadConfig } from '../config.ts'
import { configPathFrom } from '../main.ts'
import { unreachable } from '../sync/clone.ts'
import { describeSync, runSync } from '../sync/sync-job.ts'
import { type Command, UsageError, configuredDatabase, parsed } from './args.ts'

export const syncCommand: Command = {
  summary: 'sync [--config PATH]                           export new rows as NDJSON to the sync git remote and push',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { config: { type: 'string' } } }))
    const config = loadConfig(configPathFrom(values.config))
    if (!config.sync) throw new UsageError(`${config.path} has no sync: section (remote, branch, work_dir, every)`)
    const report = await runSync({
      livePath: configuredDatabase(config),
      archiveDir: config.retention.archiveDir,
      sync: config.sync,
      machine: config.machine,
      keyPath: config.proof.keyPath,
      now: Date.now,
      token: process.env.WITNESS_SYNC_TOKEN || undefined,
      user: process.env.WITNESS_SYNC_USER || undefined,
    })
    console.log(`witness sync: ${config.machine}: ${describeSync(report, config.sync.branch)}`)
    // Offline is no failure (the commits wait for the next run); a remote that refuses is one, so a timer shows it.
    const refused = report.remoteError !== null && !unreachable(report.remoteError)
    return report.unreadable.length || refused ? 1 : 0
  },
}
