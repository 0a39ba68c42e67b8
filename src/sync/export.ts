/**
 * The export: writes the finished rows the last run did not cover (see
 * sync-state.ts) into the clone's `<machine>/YYYY/MM/DD.ndjson` files.
 *
 * Rows come from the live database and, when some may have been archived
 * before they were exported, from the archives. A day file never gets an id
 * twice: the ids already in it are read first (so a run that died after its
 * commit but before saving its state, or a new clone of a remote that has
 * the lines already, writes nothing twice).
 */
import type { Database } from 'bun:sqlite'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { SyncError } from '../errors.ts'
import { readState } from '../jobs/job-db.ts'
import { hasTable } from '../telemetry/schema.ts'
import { eachReadableArchive } from '../retention/archive-files.ts'
import { archivesMissing } from '../retention/read-sources.ts'
import { ARCHIVED_MAX_ID_KEY } from '../retention/mover.ts'
import { EXPORT_COLUMNS, type ExportLine, dayFileOf, idOfLine, toLine } from './export-line.ts'
import { appendTo } from './file-write.ts'
import type { SyncState } from './sync-state.ts'

const CHUNK = 5_000

export interface ExportResult {
  /** Lines written. */
  written: number
  /** Day files touched, relative to the clone. */
  files: string[]
  /** The state to save once the lines are committed. */
  state: SyncState
  /** Archives that could not be read (`file: why`): their rows are owed, so the mark did not move. */
  unreadable: string[]
}

/** Exports what `state` has not covered; returns what it wrote and the state to save after the commit. */
export async function exportRows(options: {
  live: Database
  archiveDir: string
  workDir: string
  machine: string
  state: SyncState
  /** Runs after the live rows are read and before the archives are (sync-job.ts: a test seam). */
  beforeArchives?: () => Promise<void> | void
}): Promise<ExportResult> {
  const { live, state } = options
  const files = new DayFiles(options.workDir, options.machine)
  const top = Math.max(state.watermark, highestId(live))
  const finished = new Set<number>()
  const pendingNow = new Set<number>()
  const take = (rows: ExportLine[]) => {
    const done = rows.filter((r) => r.status !== 'pending')
    for (const r of rows) (r.status === 'pending' ? pendingNow : finished).add(r.id)
    files.add(done)
  }

  const fromLive = select(live)
  for (let after = state.watermark; after < top; ) {
    const rows = fromLive(`r.id > ? AND r.id <= ? ORDER BY r.id LIMIT ${CHUNK}`, after, top)
    if (rows.length === 0) break
    take(rows)
    after = rows.at(-1)!.id
    await Bun.sleep(0)
  }
  take(fromLive('r.id IN (SELECT value FROM json_each(?))', JSON.stringify(state.pending)))

  // Read after the live rows: a row archived meanwhile raised this in the same commit that deleted it.
  const archivedMax = Number(readState(live, ARCHIVED_MAX_ID_KEY) ?? 0)
  const missingPending = state.pending.some((id) => !finished.has(id) && !pendingNow.has(id))
  // One bad month does not hold back the rest: what can be read goes out, and that file is named.
  if (archivedMax > state.watermark || missingPending) await options.beforeArchives?.()
  // A month file or the whole directory gone (an unmounted disk) is owed too: its rows were never read.
  const unreadable =
    archivedMax > state.watermark || missingPending
      ? [...archivesMissing(live, options.archiveDir), ...await eachReadableArchive(options.archiveDir, (db) => {
          // The archives are read outside the live snapshot. A row the snapshot saw pending, finished
          // and archived since, has a chain entry past the head this run exports the proof to: it
          // waits (still pending in the mark) and goes out with its entry next time.
          const rows = select(db)('(r.id > ? AND r.id <= ?) OR r.id IN (SELECT value FROM json_each(?))', state.watermark, top, JSON.stringify(state.pending))
          take(rows.filter((r) => !pendingNow.has(r.id)))
        })]
      : []

  return {
    written: files.written,
    files: files.touched(),
    // With an archive unreadable, the rows it holds are owed: the mark stays where it was, and the
    // next run reads again from there (the day files refuse what is already in them).
    state: unreadable.length ? state : { ...state, watermark: top, pending: [...pendingNow].filter((id) => !finished.has(id)).sort((a, b) => a - b) },
    unreadable,
  }
}

/** The largest id ever given to a row (rows archived away included). */
function highestId(db: Database): number {
  const seq = db.query("SELECT seq FROM sqlite_sequence WHERE name = 'request_log'").get() as { seq: number } | null
  const max = db.query('SELECT max(id) AS id FROM request_log').get() as { id: number | null }
  return Math.max(seq?.seq ?? 0, max.id ?? 0)
}

function select(db: Database) {
  const from = hasTable(db, 'request_log_meta')
    ? `SELECT ${EXPORT_COLUMNS}, m.request_id FROM request_log r LEFT JOIN request_log_meta m ON m.log_id = r.id`
    : `SELECT ${EXPORT_COLUMNS}, NULL AS request_id FROM request_log r`
  return (where: string, ...params: (string | number)[]) => db.query(`${from} WHERE ${where}`).all(...params) as ExportLine[]
}

/**
 * The day files of one machine in the clone, appended to without repeating an id. An id already
 * there with other content is not this database's row: another machine syncs under this name, or
 * the database was replaced. That stops the export rather than skip the row unexported.
 */
class DayFiles {
  written = 0
  /** Per file, each id's line (its hash: a day file may hold a million lines). */
  private readonly ids = new Map<string, Map<number, bigint | number>>()

  constructor(
    private readonly workDir: string,
    private readonly machine: string,
  ) {}

  add(rows: ExportLine[]): void {
    const byFile = new Map<string, ExportLine[]>()
    for (const row of rows) {
      const file = dayFileOf(this.machine, row.timestamp)
      const list = byFile.get(file)
      if (list) list.push(row)
      else byFile.set(file, [row])
    }
    for (const [file, fileRows] of byFile) {
      const seen = this.idsIn(file)
      const lines: string[] = []
      for (const row of fileRows.sort((a, b) => a.id - b.id)) {
        const line = toLine(row)
        const there = seen.get(row.id)
        if (there !== undefined) {
          if (there === Bun.hash(line)) continue
          throw new SyncError(
            `sync: ${file} already holds row ${row.id} with other content: another machine syncs as "${this.machine}", or this database replaced the one exported before; nothing exported (give this machine its own name with machine:, or a fresh sync.work_dir and remote folder)`,
          )
        }
        seen.set(row.id, Bun.hash(line))
        lines.push(line)
      }
      if (lines.length === 0) continue
      const path = join(this.workDir, file)
      mkdirSync(dirname(path), { recursive: true })
      appendTo(path, `${lines.join('\n')}\n`)
      this.written += lines.length
    }
  }

  touched(): string[] {
    return [...this.ids.keys()]
  }

  private idsIn(file: string): Map<number, bigint | number> {
    let seen = this.ids.get(file)
    if (!seen) {
      seen = new Map()
      const path = join(this.workDir, file)
      if (existsSync(path)) {
        for (const line of readFileSync(path, 'utf8').split('\n')) {
          const id = idOfLine(line)
          if (id !== null) seen.set(id, Bun.hash(line))
        }
      }
      this.ids.set(file, seen)
    }
    return seen
  }
}
