/**
 * The stored partials of the stats' sealed slices (table stats_slice,
 * migration 7) and their row counts (slice_row_counts, migration 8, read by
 * did-call-stored.ts): every query and write on them, with bound parameters
 * only. A slice's counts are written in the transaction that stores it, only
 * if that write stored it, and deleted wherever it is deleted; a reader
 * trusts them only beside a stored slice that is still true.
 *
 * A slice is stored once it is final (no pending row, and SEAL_AFTER_MS
 * past the end of its last call: finalAtMs in stats-window.ts), folded in
 * one read snapshot, and written through the store's one writer. A stored
 * slice is never used stale:
 *
 * - Rows deleted: the archive mover deletes the stored slices of the rows it
 *   moves, in the transaction that deletes them (dropStoredSlicesOf), and
 *   bumps DELETE_EPOCH_KEY there; a slice folded before that commit is not
 *   written after it (the write checks the epoch it was folded under). A
 *   stored slice whose lowest row is gone is not used either.
 * - Rows added with a timestamp in a stored slice (a watchdog's direct
 *   write, another clock, a test's seed), or a retry or fallback row added
 *   after its request's earlier rows' slice was stored (see lateSlices): a
 *   stored slice records the highest request_log id when it was folded
 *   (as_of_id). A write only lands if no such row has a higher id at
 *   commit. Later, every row with an id above CHECKED_ID_KEY is looked at by
 *   each reader (lateSlices: the rows added since, rowid ranges), and a
 *   stored slice one of them changed after its as_of_id is not used; `serve` deletes such slices and moves the key
 *   up every minute (jobs/stats-fill.ts), so readers look at a minute of rows.
 * - Rows finished: a stored slice never had a pending row, and rows never
 *   become pending again.
 *
 * A row whose timestamp is not canonical (`YYYY-MM-DDTHH:MM:SS.mmmZ`) cannot
 * be filed by slice in SQL: such a row added late makes every stored slice
 * folded before it unusable.
 *
 * Not covered: rows deleted or changed by hand (finished rows never change
 * in witness, and only the mover deletes); a stored slice whose lowest row
 * is gone is not used, which covers deleting the oldest rows first.
 *
 * Why not check each stored slice's row count and highest id at read time
 * (exact, whoever changed the rows)? It is an index range read per slice:
 * 58 ms for the 144 slices of a day of a million rows, more than half the
 * budget of a cold /stats. The checks above read a minute of new rows.
 */
import type { Database } from 'bun:sqlite'
import { CANONICAL_TIMESTAMP } from './queries.ts'
import type { SideWrite } from './rows.ts'
import { decodeCombos, encodeCombos } from './slice-codec.ts'
import type { RowCount, SlicePartial } from './stats.ts'

/** witness_state key: every request_log row up to this id has been checked against the stored slices. */
export const CHECKED_ID_KEY = 'stats.checked_id'
/** witness_state key: bumped by every transaction that deletes request_log rows (the archive mover). */
export const DELETE_EPOCH_KEY = 'stats.delete_epoch'

/**
 * Stands for "any slice" where a row's timestamp cannot be filed by one: a timestamp SQLite would
 * not write back unchanged (`T24:00`, `02-30`) compares as text into some other slice.
 */
export const ANY_SLICE = '*'

/** The start of the 10-minute slice holding a row (`2026-11-25T12:10:00.000Z`), or ANY_SLICE. */
const SLICE_OF_ROW = `CASE WHEN ${CANONICAL_TIMESTAMP} THEN substr(timestamp, 1, 15) || '0:00.000Z' ELSE '${ANY_SLICE}' END`

/** A sealed slice folded in one read snapshot, with what storing it needs. */
export interface FoldedSlice {
  from: string
  to: string
  partial: SlicePartial
  /** The highest request_log id in the snapshot (0: none). */
  asOfId: number
  /** DELETE_EPOCH_KEY in the snapshot. */
  epoch: string | null
  /** Rows folded, and the highest id among them. */
  rows: number
  maxId: number | null
  /** Rows folded per (agent, provider, model), every status (SliceFolder.rowCounts). */
  rowCounts: Map<string, RowCount>
}

/** Whether `db` has the table slice_row_counts (the live file at schema version 8 or later). */
export function hasRowCountsTable(db: Database): boolean {
  return db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'slice_row_counts'").get() !== null
}

/** Whether `db` has the table (the live file at schema version 7 or later; archives never do). */
export function hasSliceTable(db: Database): boolean {
  return db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'stats_slice'").get() !== null
}

function stateOf(db: Database, key: string): string | null {
  return (db.query('SELECT value FROM witness_state WHERE key = $key').get({ $key: key }) as { value: string } | null)?.value ?? null
}

/** What a fold must record, read in its snapshot (call inside the read transaction that reads the rows). */
export function snapshotHead(db: Database): { asOfId: number; epoch: string | null } {
  const hi = (db.query('SELECT max(id) AS hi FROM request_log').get() as { hi: number | null }).hi
  return { asOfId: hi ?? 0, epoch: deleteEpoch(db) }
}

/** DELETE_EPOCH_KEY (null before the first archiving, or in a file without witness_state). */
export function deleteEpoch(db: Database): string | null {
  try {
    return stateOf(db, DELETE_EPOCH_KEY)
  } catch {
    return null
  }
}

/** CHECKED_ID_KEY (0 when absent). */
export function checkedId(db: Database): number {
  return Number(stateOf(db, CHECKED_ID_KEY) ?? 0)
}

/**
 * The slices that rows with an id in (afterId, uptoId] changed, each with
 * the highest such id: the slices of those rows, and the slices of the
 * earlier rows of their requests. A retry or fallback row changes how its
 * request counts in the slice of the request's first row (a failed call is
 * a failed request only if nothing followed it), and it can arrive after
 * that slice looked final: the wall clock jumped ahead during a backoff, or
 * a commit waited long for another process's lock. One read of the rows
 * added since (rowid ranges of request_log and request_log_meta), and a
 * lookup per retry or fallback among them (the request's rows added
 * since are in the first read already).
 */
export function lateSlices(db: Database, afterId: number, uptoId = Number.MAX_SAFE_INTEGER): Map<string, number> {
  const rows = db
    .query(
      `SELECT slice, max(max_id) AS max_id FROM (
         SELECT ${SLICE_OF_ROW} AS slice, max(id) AS max_id FROM request_log WHERE id > $after AND id <= $upto GROUP BY slice
         UNION ALL
         SELECT ${SLICE_OF_ROW} AS slice, max(m.log_id) AS max_id FROM request_log_meta m
           JOIN request_log_meta o ON o.request_id = m.request_id AND o.log_id <= $after
           JOIN request_log ON request_log.id = o.log_id
         WHERE m.log_id > $after AND m.log_id <= $upto AND m.seq > 1 GROUP BY slice)
       GROUP BY slice`,
    )
    .all({ $after: afterId, $upto: uptoId }) as { slice: string; max_id: number }[]
  return new Map(rows.map((r) => [r.slice, r.max_id]))
}

/** Whether a slice stored as of `asOfId` has a row added since, among `late` (lateSlices). */
function addedSince(late: Map<string, number>, slice: string, asOfId: number): boolean {
  return (late.get(slice) ?? 0) > asOfId || (late.get(ANY_SLICE) ?? 0) > asOfId
}

/** A stored slice as the checks of stillTrue need it. */
export interface StoredHead {
  slice_start: string
  as_of_id: number
  lo_id: number | null
}

/**
 * Whether a stored slice is still true, read in the caller's snapshot: no
 * row was added to it since it was folded (the rows since CHECKED_ID_KEY),
 * and its lowest row is not gone. Returns the test for each stored slice.
 */
export function stillTrue(db: Database): (stored: StoredHead) => boolean {
  const late = lateSlices(db, checkedId(db))
  const lo = (db.query('SELECT min(id) AS lo FROM request_log').get() as { lo: number | null }).lo
  return (stored) => !addedSince(late, stored.slice_start, stored.as_of_id) && (stored.lo_id === null || (lo !== null && stored.lo_id >= lo))
}

/**
 * The stored slices starting at `starts` that are still true, by slice
 * start, read in one snapshot: those with a row added since they were
 * folded, or whose lowest row is gone, are left out.
 */
export function loadStoredSlices(db: Database, starts: readonly string[]): Map<string, SlicePartial> {
  return db.transaction(() => {
    const out = new Map<string, SlicePartial>()
    const rows = db
      .query('SELECT slice_start, as_of_id, lo_id, max_latency_ms, combos FROM stats_slice WHERE slice_start IN (SELECT value FROM json_each($starts))')
      .all({ $starts: JSON.stringify(starts) }) as { slice_start: string; as_of_id: number; lo_id: number | null; max_latency_ms: number; combos: Uint8Array }[]
    if (!rows.length) return out
    const isTrue = stillTrue(db)
    for (const row of rows) {
      if (!isTrue(row)) continue
      out.set(row.slice_start, { combos: decodeCombos(row.combos), hasPending: false, loId: row.lo_id, maxLatencyMs: row.max_latency_ms })
    }
    return out
  })()
}

/** The starts of the slices stored in [from, to) (an index-only read). */
export function storedStarts(db: Database, from: string, to: string): Set<string> {
  const rows = db.query('SELECT slice_start FROM stats_slice WHERE slice_start >= $from AND slice_start < $to').values({ $from: from, $to: to }) as [string][]
  return new Set(rows.map((r) => r[0]))
}

/**
 * Stores a folded slice, unless at commit the slice is stored already, rows
 * were deleted since the fold (the epoch moved), or a row of the slice, or
 * a later row of a request with a row in the slice, has an id above the
 * fold's snapshot (added since). The histogram travels as
 * hex (write parameters are text and numbers) and is stored as a blob.
 * Then, in the same transaction and only if that statement stored the slice
 * (its row is there with this fold's as_of_id and folded_at), its row
 * counts replace any the slice had (left by a slice deleted by hand).
 */
export function storeSliceWrite(folded: FoldedSlice, at: string): SideWrite[] {
  const stored = 'EXISTS (SELECT 1 FROM stats_slice WHERE slice_start = $from AND as_of_id = $as_of AND folded_at = $at)'
  const guard = { from: folded.from, as_of: folded.asOfId, at }
  const slice: SideWrite = {
    sql: `INSERT INTO stats_slice (slice_start, as_of_id, lo_id, max_id, row_count, max_latency_ms, combos, folded_at)
          SELECT $from, $as_of, $lo, $max, $rows, $max_latency, unhex($combos), $at
          WHERE NOT EXISTS (SELECT 1 FROM stats_slice WHERE slice_start = $from)
            AND (SELECT value FROM witness_state WHERE key = '${DELETE_EPOCH_KEY}') IS $epoch
            AND NOT EXISTS (SELECT 1 FROM request_log WHERE id > $as_of AND +timestamp >= $from AND +timestamp < $to)
            -- CROSS JOIN keeps the order: from the rows added since the fold (a rowid range). Left to
            -- itself the planner started from request_log below as_of, a scan of every older row.
            AND NOT EXISTS (SELECT 1 FROM request_log_meta m CROSS JOIN request_log_meta o CROSS JOIN request_log l
                            WHERE m.log_id > $as_of AND m.seq > 1 AND o.request_id = m.request_id AND o.log_id <= $as_of
                              AND l.id = o.log_id AND +l.timestamp >= $from AND +l.timestamp < $to)`,
    params: {
      from: folded.from,
      to: folded.to,
      as_of: folded.asOfId,
      lo: folded.partial.loId,
      max: folded.maxId,
      rows: folded.rows,
      max_latency: folded.partial.maxLatencyMs,
      combos: Buffer.from(encodeCombos(folded.partial.combos.values())).toString('hex'),
      epoch: folded.epoch,
      at,
    },
  }
  return [
    slice,
    { sql: `DELETE FROM slice_row_counts WHERE slice_start = $from AND ${stored}`, params: guard },
    {
      sql: `INSERT INTO slice_row_counts (agent_name, provider, slice_start, model, n)
            SELECT j.value ->> 0, j.value ->> 1, $from, j.value ->> 2, j.value ->> 3 FROM json_each($counts) j WHERE ${stored}`,
      params: { ...guard, counts: JSON.stringify([...folded.rowCounts.values()]) },
    },
  ]
}

/**
 * The stored slices among `late` (lateSlices) folded before their newest
 * late row: those the write dropStaleWrite would delete (read side, so the
 * writer is only asked when there is something to delete).
 */
export function staleStored(db: Database, late: Map<string, number>): [string, number][] {
  const out = new Map<string, number>()
  const named = [...late].filter(([slice]) => slice !== ANY_SLICE)
  if (named.length) {
    const rows = db
      .query(
        `SELECT p.slice_start AS slice, j.value ->> 1 AS late_id FROM json_each($late) j JOIN stats_slice p ON p.slice_start = j.value ->> 0
         WHERE p.as_of_id < j.value ->> 1`,
      )
      .values({ $late: JSON.stringify(named) }) as [string, number][]
    for (const [slice, id] of rows) out.set(slice, id)
  }
  const any = late.get(ANY_SLICE)
  if (any !== undefined) {
    for (const [slice] of db.query('SELECT slice_start FROM stats_slice WHERE as_of_id < $any').values({ $any: any }) as [string][]) {
      out.set(slice, Math.max(out.get(slice) ?? 0, any))
    }
  }
  return [...out]
}

/** Deletes the given stored slices, and their row counts, if they were folded before the given row id (re-checked at commit). */
export function dropStaleWrite(stale: [string, number][]): SideWrite[] {
  const params = { stale: JSON.stringify(stale) }
  const staleSlices = 'SELECT p.slice_start FROM json_each($stale) j JOIN stats_slice p ON p.slice_start = j.value ->> 0 WHERE p.as_of_id < j.value ->> 1'
  return [
    { sql: `DELETE FROM slice_row_counts WHERE slice_start IN (${staleSlices})`, params },
    { sql: `DELETE FROM stats_slice WHERE slice_start IN (${staleSlices})`, params },
  ]
}

/** The lowest request_log id there is, or past every id when there is none (SQL). */
const LOWEST_ID = '(SELECT coalesce(min(id), 9223372036854775807) FROM request_log)'

/** The stored slices whose lowest row is gone (rows deleted by hand, oldest first): never used, so worth dropping. */
export function orphanedStored(db: Database): number {
  return (db.query(`SELECT count(*) AS n FROM stats_slice WHERE lo_id < ${LOWEST_ID}`).get() as { n: number }).n
}

/** Deletes the stored slices whose lowest row is gone, and their row counts, as found at commit. */
export function dropOrphanedWrite(): SideWrite[] {
  const orphaned = `SELECT slice_start FROM stats_slice WHERE lo_id < ${LOWEST_ID}`
  return [
    { sql: `DELETE FROM slice_row_counts WHERE slice_start IN (${orphaned})`, params: {} },
    { sql: `DELETE FROM stats_slice WHERE slice_start IN (${orphaned})`, params: {} },
  ]
}

/** Moves CHECKED_ID_KEY up to `id` (never down). */
export function advanceCheckedWrite(id: number, at: string): SideWrite {
  return {
    sql: `INSERT INTO witness_state (key, value, updated_at) VALUES ('${CHECKED_ID_KEY}', $id, $at)
          ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
          WHERE CAST(witness_state.value AS INTEGER) < CAST(excluded.value AS INTEGER)`,
    params: { id: String(id), at },
  }
}

/**
 * For the archive mover, inside the transaction that deletes the rows
 * `idsJson` (a JSON array), before it deletes them: deletes the stored
 * slices, and their row counts, holding any of them or any other row of
 * their requests (a slice's request counts depend on its requests' rows in
 * other slices: a fallback row counts as a request only if its request made
 * no call, and the mover's cut need not fall between requests), and bumps
 * DELETE_EPOCH_KEY.
 */
export function dropStoredSlicesOf(db: Database, idsJson: string, at: string): void {
  // The slices of the moved rows and of their requests' other rows, found once for both tables.
  const slices = db
    .query(
      `WITH moved_ids(id) AS (SELECT value FROM json_each($ids)),
            related_ids(id) AS (
              SELECT id FROM moved_ids
              UNION
              SELECT o.log_id FROM request_log_meta m JOIN request_log_meta o ON o.request_id = m.request_id
              WHERE m.log_id IN (SELECT id FROM moved_ids))
       SELECT DISTINCT ${SLICE_OF_ROW} FROM request_log WHERE id IN (SELECT id FROM related_ids)`,
    )
    .values({ $ids: idsJson })
    .map((row) => row[0] as string)
  const any = slices.includes(ANY_SLICE)
  // A schema version 7 file (not migrated yet) has no row counts.
  for (const table of hasRowCountsTable(db) ? ['slice_row_counts', 'stats_slice'] : ['stats_slice']) {
    if (any) db.query(`DELETE FROM ${table}`).run()
    else db.query(`DELETE FROM ${table} WHERE slice_start IN (SELECT value FROM json_each($slices))`).run({ $slices: JSON.stringify(slices) })
  }
  db.query(
    `INSERT INTO witness_state (key, value, updated_at) VALUES ('${DELETE_EPOCH_KEY}', '1', $at)
     ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT), updated_at = excluded.updated_at`,
  ).run({ $at: at })
}

/**
 * For the archive mover, in the transaction that deletes rows stamped up to `throughIso`: deletes the
 * stored slices of no row (a quiet ten minutes) that begin before it. dropStoredSlicesOf never meets
 * them, since no row of theirs ever moves, so they stayed for good: the 48 slices of a quiet night
 * every day, about 130 bytes each. A stored slice is a cache of what the rows say; one deleted is
 * folded again (from no rows) by the next read that needs it.
 */
export function dropEmptyStoredSlicesBefore(db: Database, throughIso: string): void {
  const empty = 'lo_id IS NULL AND slice_start < $through'
  if (hasRowCountsTable(db)) db.query(`DELETE FROM slice_row_counts WHERE slice_start IN (SELECT slice_start FROM stats_slice WHERE ${empty})`).run({ $through: throughIso })
  db.query(`DELETE FROM stats_slice WHERE ${empty}`).run({ $through: throughIso })
}
