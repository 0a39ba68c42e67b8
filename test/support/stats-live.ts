/**
 * A live database as `serve` holds it for the stored stats slices: the
 * store, the slice rollups writing through it, a stats fill without a timer
 * (tests call `fill.run()`), and a read-only connection as the command line
 * opens one.
 */
import { Database } from 'bun:sqlite'
import type { Clock } from '../../src/clock.ts'
import { type StatsFill, startStatsFill } from '../../src/jobs/stats-fill.ts'
import { SliceRollups } from '../../src/telemetry/slice-rollups.ts'
import { type Store, openStore } from '../../src/telemetry/store.ts'

export interface LiveStats {
  path: string
  dir: string
  store: Store
  rollups: SliceRollups
  fill: StatsFill
  /** A read-only connection, as the command line opens one. */
  reader: Database
  close(): Promise<void>
}

export function openLiveStats(path: string, dir: string, clock: Clock): LiveStats {
  const store = openStore(path, { sync: 'normal', busyTimeoutMs: 2000 })
  const rollups = new SliceRollups(store.reader, (side) => store.write(side), clock.now)
  const fill = startStatsFill({ store, rollups, clock, log: (line) => console.error(line), tickMs: null, pauseMs: 0 })
  const reader = new Database(path, { readonly: true, strict: true })
  return {
    path,
    dir,
    store,
    rollups,
    fill,
    reader,
    async close() {
      await fill.stop()
      await rollups.settled()
      reader.close()
      store.close()
    },
  }
}
