/** `witness sync [--config PATH]`: export new rows to the git remote now (see src/sync/sync-job.ts). */
import { constants } from 'node:os'
import { parseArgs } from 'node:util'
import { loadConfig, configPathFrom } from '../config-file.ts'
import { unreachable } from '../sync/clone.ts'
import { describeSync, runSync } from '../sync/sync-job.ts'
import { type Command, UsageError, configuredDatabase, parsed } from './args.ts'

/**
 * The signals that stop a sync: Ctrl-C, a timeout's SIGTERM (`timeout 60 witness sync` in cron,
 * systemd's stop), a terminal closed. They reach witness alone, not git, which runs in a session of
 * its own (sync/git-group.ts): witness exits as the signal would have ended it (128 + its number),
 * and its exit ends the git running, with what it started, and removes its record.
 */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

export const syncCommand: Command = {
  summary: 'sync [--config PATH]                           export new rows as NDJSON to the sync git remote and push',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { config: { type: 'string' } } }))
    const config = loadConfig(configPathFrom(values.config))
    if (!config.sync) throw new UsageError(`${config.path} has no sync: section (remote, branch, work_dir, every)`)
    const stop = (signal: (typeof STOP_SIGNALS)[number]) => {
      console.error(`witness: sync stopped by ${signal}`)
      process.exit(128 + constants.signals[signal])
    }
    for (const signal of STOP_SIGNALS) process.on(signal, stop)
    try {
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
      return report.unreadable.length || refused || report.packError ? 1 : 0
    } finally {
      for (const signal of STOP_SIGNALS) process.off(signal, stop)
    }
  },
}
