/**
 * The background jobs of `serve`: the archive job once a day (and as soon
 * as the live file is over retention.max_db_mb, at most every 10 minutes),
 * the sync every `sync.every` (0 = only when `witness sync` is run), and a
 * signed checkpoint of the proof chain every `proof.checkpoint_every`.
 *
 * One timer checks what is due every `tickMs` of real time; what is due is
 * decided by the injected clock. Tests turn the timer off and call `tick()`.
 * A job that fails is logged (what git said in it redacted: sync/git.ts)
 * and tried again when next due; a job whose lock is held by the command
 * line is skipped (the archive job, due once a day, is tried again 10
 * minutes later).
 */
import { existsSync, statSync } from 'node:fs'
import type { Clock } from '../clock.ts'
import type { Config } from '../config.ts'
import { JobBusyError } from '../errors.ts'
import { DAY_MS, describeNotRows, runArchive } from '../retention/archive-job.ts'
import { spaceKept } from '../retention/vacuum.ts'
import { checkpointNow } from '../proof/checkpoint-job.ts'
import { loadSigningKey } from '../proof/keys.ts'
import { describeSync, runSync } from '../sync/sync-job.ts'
import { openLiveForJob } from './job-db.ts'

const SIZE_RETRY_MS = 10 * 60_000
/** A run skipped for its lock (`witness archive`, `verify --archives` reading) is tried again this soon, not a day later. */
const BUSY_RETRY_MS = 10 * 60_000

export interface JobsDeps {
  config: () => Config
  /** The live database the server opened (its config's, or `serve --db`): fixed until a restart, like the store. */
  livePath: string
  /** The signing key the server made sure of at start: fixed until a restart. */
  keyPath: string
  clock: Clock
  env: Record<string, string | undefined>
  log: (line: string) => void
  /** Real-time ms between checks (default 60 s); null: no timer, the caller calls tick(). */
  tickMs?: number | null
}

export interface Jobs {
  /** Runs whatever is due now; resolves when it is done (a tick already running is joined). */
  tick(): Promise<void>
  /** Stops the timer and waits for a running job. */
  stop(): Promise<void>
}

export function startJobs(deps: JobsDeps): Jobs {
  let lastArchiveAt: number | null = null
  let archiveRetryAt: number | null = null
  let lastNotRows: string | null = null
  let lastSyncAt: number | null = null
  let lastCheckpointAt: number | null = null
  let running: Promise<void> | null = null

  /** Runs a job, logging what it says; resolves to whether it was skipped because its lock was held. */
  const guarded = async (job: string, run: () => Promise<string[]>): Promise<boolean> => {
    try {
      for (const line of await run()) deps.log(`witness: ${job}: ${line}`)
    } catch (error) {
      if (!(error instanceof JobBusyError)) deps.log(`witness: ${job} failed: ${(error as Error).message}`)
      else {
        deps.log(`witness: ${job} skipped: ${error.message}`)
        return true
      }
    }
    return false
  }

  const due = async () => {
    const config = deps.config()
    const now = deps.clock.now()
    const overSize = existsSync(deps.livePath) && statSync(deps.livePath).size > config.retention.maxDbMb * 1024 * 1024
    const retry = archiveRetryAt !== null && now >= archiveRetryAt
    if (lastArchiveAt === null || now - lastArchiveAt >= DAY_MS || retry || (overSize && now - lastArchiveAt >= SIZE_RETRY_MS)) {
      lastArchiveAt = now
      archiveRetryAt = null
      const busy = await guarded('archive', async () => {
        const report = await runArchive({
          livePath: deps.livePath,
          retention: config.retention,
          syncConfigured: config.sync !== null,
          now: () => deps.clock.now(),
          signer: { keyPath: deps.keyPath, machine: config.machine },
        })
        const moved = report.moved + report.movedEarly
        const lines = moved || report.compressed.length || report.deleted.length
          ? [`moved ${moved} rows (${report.movedEarly} early), compressed ${report.compressed.length} and deleted ${report.deleted.length} archive files`]
          : []
        // Said when rows moved (so once a run, not on every idle tick): the file will not shrink by itself.
        if (moved && report.freeBytesKept > 0) lines.push(spaceKept(report.freeBytesKept, deps.livePath))
        if (report.keptForeign.length) lines.push(`kept archives past archive_keep_days that hold chain entries of rows from other months (put there by hand?): ${report.keptForeign.join(', ')}`)
        if (report.keptUnsigned.length) lines.push(`kept archives past archive_keep_days whose deletion no key could sign: ${report.keptUnsigned.join(', ')}`)
        // Said when it changes (a run comes every 10 minutes while the file is over), not at each run.
        const notRows = report.notRows ? describeNotRows(report.notRows, config.retention.maxDbMb) : null
        if (notRows && notRows !== lastNotRows) lines.push(notRows)
        lastNotRows = notRows
        return lines
      })
      if (busy) archiveRetryAt = now + BUSY_RETRY_MS
    }
    const every = config.proof.checkpointEveryMs
    if (every > 0 && (lastCheckpointAt === null || now - lastCheckpointAt >= every) && existsSync(deps.keyPath)) {
      lastCheckpointAt = now
      await guarded('checkpoint', async () => {
        const live = await openLiveForJob(deps.livePath, 'checkpoint')
        try {
          await checkpointNow(live, await loadSigningKey(deps.keyPath), config.machine, () => deps.clock.now())
          return []
        } finally {
          live.close()
        }
      })
    }
    const sync = config.sync
    if (sync && sync.everyMs > 0 && (lastSyncAt === null || now - lastSyncAt >= sync.everyMs)) {
      lastSyncAt = now
      await guarded('sync', async () => {
        const report = await runSync({
          livePath: deps.livePath,
          archiveDir: config.retention.archiveDir,
          sync,
          machine: config.machine,
          keyPath: deps.keyPath,
          now: () => deps.clock.now(),
          token: deps.env.WITNESS_SYNC_TOKEN || undefined,
          user: deps.env.WITNESS_SYNC_USER || undefined,
          env: deps.env, // the server's environment (main.ts: the process's unless it was given one), whole
        })
        return report.exported || report.pushedEarlier || report.remoteError || report.unreadable.length || report.packError ? [describeSync(report, sync.branch)] : []
      })
    }
  }

  const tick = () => {
    running ??= due().finally(() => {
      running = null
    })
    return running
  }
  const tickMs = deps.tickMs === undefined ? 60_000 : deps.tickMs
  const timer = tickMs === null ? null : setInterval(() => void tick(), tickMs)

  return {
    tick,
    async stop() {
      if (timer) clearInterval(timer)
      await running
    },
  }
}
