/** `witness archive [--config PATH]`: move old rows to the monthly archives now (see src/retention/archive-job.ts). */
import { parseArgs } from 'node:util'
import { megabytes } from '../format/size.ts'
import { loadConfig, configPathFrom } from '../config-file.ts'
import { type ArchiveReport, describeNotRows, runArchive } from '../retention/archive-job.ts'
import { spaceKept } from '../retention/vacuum.ts'
import { type Command, configuredDatabase, parsed, positiveIntOf } from './args.ts'

export const archiveCommand: Command = {
  summary: 'archive [--config PATH] [--verbose] [--batch-rows N]  move finished rows older than retention.keep_days to monthly archives',
  async run(args) {
    const { values } = parsed(() =>
      parseArgs({ args, options: { config: { type: 'string' }, verbose: { type: 'boolean' }, 'batch-rows': { type: 'string' } } }),
    )
    const config = loadConfig(configPathFrom(values.config))
    const livePath = configuredDatabase(config)
    const report = await runArchive({
      livePath,
      retention: config.retention,
      syncConfigured: config.sync !== null,
      now: Date.now,
      signer: { keyPath: config.proof.keyPath, machine: config.machine },
      batchRows: values['batch-rows'] === undefined ? undefined : positiveIntOf('--batch-rows', values['batch-rows']),
      onBatch: values.verbose
        ? (e) => console.error(`witness archive: ${e.phase} ${e.ids.length} rows (to ${e.months.join(', ')})`)
        : undefined,
    })
    for (const line of describeArchive(report, config.retention.archiveDir, livePath, config.retention.maxDbMb)) console.log(`witness archive: ${line}`)
    return 0
  },
}

/** The lines `witness archive` prints for a report. */
function describeArchive(report: ArchiveReport, dir: string, livePath: string, maxDbMb: number): string[] {
  const months = Object.entries(report.months).map(([month, n]) => `${month}: ${n}`)
  const lines = [`moved ${report.moved + report.movedEarly} rows to ${dir}${months.length ? ` (${months.join(', ')})` : ''}`]
  if (report.movedEarly) lines.push(`${report.movedEarly} of them early, because the live file was over retention.max_db_mb`)
  if (report.compressed.length) lines.push(`compressed closed months: ${report.compressed.join(', ')}`)
  if (report.deleted.length) lines.push(`deleted archives past retention.archive_keep_days: ${report.deleted.join(', ')}`)
  if (report.keptUnexported.length) lines.push(`kept archives past archive_keep_days that hold rows not yet synced: ${report.keptUnexported.join(', ')}`)
  if (report.keptForeign.length) lines.push(`kept archives past archive_keep_days that hold chain entries of rows from other months (put there by hand?): ${report.keptForeign.join(', ')}`)
  if (report.keptUnsigned.length) lines.push(`kept archives past archive_keep_days whose deletion no key could sign (proof.key_path missing: run witness init): ${report.keptUnsigned.join(', ')}`)
  lines.push(`live database ${megabytes(report.liveBytesBefore)} -> ${megabytes(report.liveBytesAfter)}`)
  if (report.freeBytesKept > 0) lines.push(spaceKept(report.freeBytesKept, livePath))
  if (report.notRows) lines.push(describeNotRows(report.notRows, maxDbMb))
  return lines
}
