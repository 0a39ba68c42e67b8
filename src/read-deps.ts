/**
 * What the read side (the read endpoints, the dashboard) needs, and the
 * sources a read looks in: the live database, plus the archives where asked
 * or where the period reaches archived rows.
 */
import type { Clock } from './clock.ts'
import type { Config } from './config.ts'
import { archivedBeforeMs } from './retention/archive-job.ts'
import { type ReadPeriod, type ReadSources, openSourcesFor } from './retention/read-sources.ts'
import type { SliceRollups } from './telemetry/slice-rollups.ts'
import type { StatsCache } from './telemetry/stats-window.ts'
import type { Store } from './telemetry/store.ts'

/** What the read endpoints need: the store's read-only connection, the clock, the live config. */
export interface ReadDeps {
  store: Store
  clock: Clock
  config: () => Config
  statsCache: StatsCache
  /** The live file's stored slices, written through the store. */
  rollups: SliceRollups
  /** The witness log, for a failure no client can be told of in full (an export that began). */
  warn: (message: string) => void
}

/**
 * The live database, plus the archives of `period` when `archives` is set, or for an answer
 * (`answer`: did-call, the stats) where the period reaches archived rows (openSourcesFor); the
 * caller closes them.
 */
export function readSources(deps: Pick<ReadDeps, 'store' | 'clock' | 'config'>, archives: boolean, period: ReadPeriod = {}, answer = false): Promise<ReadSources> {
  const { retention } = deps.config()
  const horizonMs = archivedBeforeMs(retention, deps.clock.now())
  return openSourcesFor(deps.store.reader, retention.archiveDir, { asked: archives, answer, period, horizonMs })
}
