/**
 * The stats fill of `serve`: keeps the stored slices (stats_slice, see
 * telemetry/slice-store.ts) complete and checked, so a cold /stats or
 * `witness stats` over the last week merges stored partials instead of
 * reading every row. Each run, shortly after start and then every minute:
 *
 * 1. check: the rows added since CHECKED_ID_KEY (a rowid range, a few
 *    thousand rows a step) against the stored slices; a stored slice that
 *    one of them landed in is deleted, then the key moves up, so readers
 *    only ever look at about a minute of new rows;
 * 2. fill: each sealed slice of the window (7 days) that has no stored
 *    partial is folded from its rows, newest first, and stored if it is
 *    final (no pending row, and its calls ended long enough ago).
 *
 * Reading blocks the event loop (bun:sqlite is synchronous), so a slice is
 * read a few milliseconds at a time (fold-stepwise.ts), on a read-only
 * connection of the fill's own, and the loop is given back between steps
 * (with a pause as long as the step: the fill takes at most about half of
 * it). Each slice is stored as one small write through the store's writer
 * (group commit), like any other write; there is no second writer.
 */
import { Database } from 'bun:sqlite'
import { type Clock, isoTime } from '../clock.ts'
import { foldStepwise } from '../telemetry/fold-stepwise.ts'
import { canonicalMs, idAfterRows, idRange, timeSpan } from '../telemetry/queries.ts'
import type { SliceRollups } from '../telemetry/slice-rollups.ts'
import {
  type FoldedSlice,
  advanceCheckedWrite,
  checkedId,
  dropOrphanedWrite,
  dropStaleWrite,
  lateSlices,
  orphanedStored,
  staleStored,
  storedStarts,
} from '../telemetry/slice-store.ts'
import { SEAL_AFTER_MS, SLICE_MS, finalAtMs } from '../telemetry/stats-window.ts'
import type { Store } from '../telemetry/store.ts'

/** Rows checked against the stored slices per step. */
const CHECK_ROWS = 4_000

export interface StatsFillDeps {
  store: Pick<Store, 'path' | 'write'>
  rollups: SliceRollups
  clock: Clock
  log: (line: string) => void
  /** Real-time ms between runs (default 60 s); null: no timer, the caller calls run(). */
  tickMs?: number | null
  /** Real-time ms from start to the first run (default 5 s). */
  firstRunMs?: number
  /** How far back slices are filled (ms, default 7 days). */
  windowMs?: number
  /** How long a step may hold the event loop (ms, default 4). */
  stepMs?: number
  /** How long the fill waits between steps (ms, default: stepMs). */
  pauseMs?: number
}

export interface StatsFill {
  /** Checks and fills now; resolves when done (a run already going is joined). */
  run(): Promise<void>
  /** Stops the timer, ends a run at its next step, closes the connection. */
  stop(): Promise<void>
  /** What the runs did so far. */
  readonly counters: { runs: number; checkedRows: number; dropped: number; folded: number; skippedUnfinal: number }
}

export function startStatsFill(deps: StatsFillDeps): StatsFill {
  const windowMs = deps.windowMs ?? 7 * 86_400_000
  const stepMs = deps.stepMs ?? 4
  const pauseMs = deps.pauseMs ?? stepMs
  const counters = { runs: 0, checkedRows: 0, dropped: 0, folded: 0, skippedUnfinal: 0 }
  let db: Database | null = null
  let running: Promise<void> | null = null
  let stopped = false
  const pause = () => new Promise<void>((resolve) => (pauseMs > 0 ? setTimeout(resolve, pauseMs) : setImmediate(resolve)))
  const at = () => isoTime(deps.clock.now())

  const connection = () => {
    if (!db) {
      db = new Database(deps.store.path, { readonly: true, strict: true })
      db.exec('PRAGMA busy_timeout = 1000')
    }
    return db
  }

  /** Step 1: the rows added since the key, against the stored slices. */
  async function check(db: Database): Promise<void> {
    let upto = 0
    let from: number | null = null
    // The rows there as the run begins: a writer adding rows faster than they are checked does not keep it going.
    const target = idRange(db).hi ?? 0
    for (;;) {
      if (stopped) break
      const step = db.transaction(() => {
        const after = Math.max(checkedId(db), upto)
        const end = Math.min(idAfterRows(db, after, CHECK_ROWS) ?? 0, target)
        return { after, end, stale: end > after ? staleStored(db, lateSlices(db, after, end)) : [] }
      })()
      from ??= step.after
      if (step.end <= step.after) break
      if (step.stale.length) {
        await deps.store.write(dropStaleWrite(step.stale))
        counters.dropped += step.stale.length
      }
      upto = step.end
      await pause()
    }
    // Moved once, after every stale slice up to it is gone.
    if (upto > 0) {
      await deps.store.write(advanceCheckedWrite(upto, at()))
      counters.checkedRows += upto - (from ?? upto)
    }
    // Slices whose oldest rows were deleted by hand are never used: dropped, so the fill stores them again.
    const orphaned = stopped ? 0 : orphanedStored(db)
    if (orphaned > 0) {
      await deps.store.write(dropOrphanedWrite())
      counters.dropped += orphaned
    }
  }

  /** Step 2: the sealed slices of the window with nothing stored, newest first. */
  async function fill(db: Database): Promise<void> {
    const nowMs = deps.clock.now()
    const span = timeSpan(db)
    if (!span) return
    // An end stamped in another form (canonicalMs: it sorts as text, not by its time) narrows
    // nothing: the window's own bound stands.
    const firstMs = canonicalMs(span.first) ?? -Infinity
    const lastMs = canonicalMs(span.last) ?? Infinity
    const start = Math.max(Math.floor((nowMs - windowMs) / SLICE_MS), Math.floor(firstMs / SLICE_MS)) * SLICE_MS
    const end = Math.min(Math.floor((nowMs - SEAL_AFTER_MS) / SLICE_MS), Math.floor(lastMs / SLICE_MS) + 1) * SLICE_MS
    if (end <= start) return
    const have = storedStarts(db, isoTime(start), isoTime(end))
    for (let to = end; to > start; to -= SLICE_MS) {
      if (stopped) return
      const from = isoTime(to - SLICE_MS)
      if (have.has(from) || deps.rollups.isStoring(from)) continue
      const folded = await foldPaced(db, from, isoTime(to))
      counters.folded++
      // A call in flight, or one that ended too recently for its retry or fallback to be there yet.
      if (finalAtMs(folded.partial, to) > deps.clock.now()) counters.skippedUnfinal++
      else await deps.rollups.store(folded)
      // An empty slice cost nothing to fold: the loop is given back, without the pause.
      if (folded.rows > 0) await pause()
      else await new Promise((resolve) => setImmediate(resolve))
    }
  }

  /** Folds one slice, giving the loop back every stepMs. */
  function foldPaced(db: Database, from: string, to: string): Promise<FoldedSlice> {
    let heldSince = performance.now()
    return foldStepwise(db, from, to, async () => {
      if (performance.now() - heldSince <= stepMs) return
      await pause()
      heldSince = performance.now()
    })
  }

  const run = () => {
    if (stopped) return Promise.resolve()
    running ??= (async () => {
      counters.runs++
      try {
        const conn = connection()
        await check(conn)
        await fill(conn)
      } catch (error) {
        deps.log(`witness: stats fill failed: ${(error as Error).message}`)
      }
    })().finally(() => {
      running = null
    })
    return running
  }

  const tickMs = deps.tickMs === undefined ? 60_000 : deps.tickMs
  let first: ReturnType<typeof setTimeout> | null = null
  let timer: ReturnType<typeof setInterval> | null = null
  if (tickMs !== null) {
    first = setTimeout(() => void run(), deps.firstRunMs ?? 5_000)
    timer = setInterval(() => void run(), tickMs)
  }

  return {
    run,
    counters,
    async stop() {
      stopped = true
      if (first) clearTimeout(first)
      if (timer) clearInterval(timer)
      await running
      db?.close()
      db = null
    },
  }
}
