/**
 * `witness fleet`: one SQLite file from every machine's export in a clone
 * of the sync repository, with the exact witness schema, so the query and
 * stats commands work across the fleet.
 *
 * Ids collide across machines, so rows get new ids in fleet.db (1..N in
 * order of timestamp, then machine, then the original id), and the side
 * table `fleet_origin` maps each one back: log_id -> machine, origin_id
 * (the id on that machine) and request_id. The view `fleet_log` joins the
 * two. `request_log_meta` is rebuilt from the export (request_id, and seq
 * from the order of a request's rows) so requests count as requests. A row
 * exported twice (same machine and id) is taken once; an id on two lines
 * that differ is not taken at all (one was put there by hand: verify --repo
 * says the same) and is reported.
 */
import { Database } from 'bun:sqlite'
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import * as v from 'valibot'
import { ensureSchema } from '../telemetry/schema.ts'
import { ExportLineSchema } from './export-line.ts'

export const FLEET_DDL = `
CREATE TABLE fleet_origin (
  log_id INTEGER PRIMARY KEY,          -- request_log.id in this file
  machine TEXT NOT NULL,               -- the machine that wrote the row
  origin_id INTEGER NOT NULL,          -- the row's id on that machine
  request_id TEXT,
  UNIQUE (machine, origin_id)
) STRICT;
CREATE INDEX fleet_origin_request ON fleet_origin(request_id);
CREATE VIEW fleet_log AS
  SELECT f.machine, f.origin_id, f.request_id, r.*
  FROM request_log r JOIN fleet_origin f ON f.log_id = r.id;`

export interface FleetReport {
  machines: Record<string, number>
  rows: number
  /** Lines that are not export lines, as `path:line`. */
  skipped: string[]
  /** Rows left out because their id is on two lines that differ, as `machine/id`. */
  conflicting: string[]
}

const DAY_FILE = /^\d{4}\/\d{2}\/\d{2}\.ndjson$/

/** What fleet.db says for the meta the export does not carry (chain, api). */
export const NOT_EXPORTED = '(not exported)'

/** Builds `out` from the clone at `repo` (written to a temp file, then renamed over `out`). */
export function buildFleet(repo: string, out: string): FleetReport {
  // Only a fleet database is replaced: `--out` naming a live database (a server's, with its WAL) or any
  // other file would destroy it.
  if (existsSync(out) && !isFleetDatabase(out)) throw new FleetError(`refusing to replace ${out}: it is not a fleet database (one witness fleet built); remove it or choose another --out`)
  mkdirSync(dirname(out), { recursive: true })
  const tmp = join(dirname(out), `.${basename(out)}.${process.pid}.tmp`)
  rmSync(tmp, { force: true })
  const db = new Database(tmp, { create: true, strict: true })
  const report: FleetReport = { machines: {}, rows: 0, skipped: [], conflicting: [] }
  try {
    ensureSchema(db)
    db.exec(FLEET_DDL)
    db.exec(`CREATE TEMP TABLE staging (
      machine TEXT NOT NULL, origin_id INTEGER NOT NULL, timestamp TEXT NOT NULL, agent_name TEXT NOT NULL, provider TEXT NOT NULL,
      model TEXT NOT NULL, endpoint TEXT NOT NULL, tokens_in INTEGER, tokens_out INTEGER, latency_ms INTEGER, status TEXT NOT NULL,
      error_message TEXT, request_id TEXT, PRIMARY KEY (machine, origin_id))`)
    const stage = db.query(
      `INSERT OR IGNORE INTO staging VALUES ($machine, $id, $timestamp, $agent_name, $provider, $model, $endpoint, $tokens_in, $tokens_out, $latency_ms, $status, $error_message, $request_id)`,
    )
    // A repeated id: the same line again, or another one (IS compares NULLs as equal).
    const sameAsStaged = db.query(
      `SELECT 1 FROM staging WHERE machine = $machine AND origin_id = $id AND timestamp IS $timestamp AND agent_name IS $agent_name
         AND provider IS $provider AND model IS $model AND endpoint IS $endpoint AND tokens_in IS $tokens_in AND tokens_out IS $tokens_out
         AND latency_ms IS $latency_ms AND status IS $status AND error_message IS $error_message AND request_id IS $request_id`,
    )
    const conflicts = new Set<string>()
    for (const machine of machineDirs(repo)) {
      let count = 0
      db.transaction(() => {
        for (const file of dayFiles(join(repo, machine))) {
          readFileSync(join(repo, machine, file), 'utf8')
            .split('\n')
            .forEach((text, i) => {
              if (!text.trim()) return
              const parsed = parseLine(text)
              if (!parsed) {
                report.skipped.push(`${machine}/${file}:${i + 1}`)
                return
              }
              const values = { machine, ...parsed }
              if (stage.run(values).changes > 0) count++
              else if (!sameAsStaged.get(values)) conflicts.add(JSON.stringify([machine, parsed.id]))
            })
        }
      })()
      report.machines[machine] = count
    }
    const unstage = db.query('DELETE FROM staging WHERE machine = ? AND origin_id = ?')
    for (const key of conflicts) {
      const [machine, id] = JSON.parse(key) as [string, number]
      unstage.run(machine, id)
      report.machines[machine]!--
      report.conflicting.push(`${machine}/${id}`)
    }
    db.transaction(() => {
      db.exec(`CREATE TEMP TABLE numbered AS
        SELECT row_number() OVER (ORDER BY timestamp, machine, origin_id) AS new_id, * FROM staging`)
      db.exec(`INSERT INTO request_log (id, timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status, error_message)
        SELECT new_id, timestamp, agent_name, provider, model, endpoint, tokens_in, tokens_out, latency_ms, status, error_message FROM numbered ORDER BY new_id`)
      db.exec('INSERT INTO fleet_origin (log_id, machine, origin_id, request_id) SELECT new_id, machine, origin_id, request_id FROM numbered')
      // The side table the queries and stats read, rebuilt from what the export carries: the
      // request id, and each row's place in its request (its rows' ids rise in order on their
      // machine). The chain and API are not exported.
      db.exec(`INSERT INTO request_log_meta (log_id, request_id, chain, api, seq, stream)
        SELECT new_id, request_id, '${NOT_EXPORTED}', '${NOT_EXPORTED}',
               row_number() OVER (PARTITION BY machine, request_id ORDER BY origin_id), 0
        FROM numbered WHERE request_id IS NOT NULL`)
    })()
    report.rows = (db.query('SELECT count(*) AS n FROM request_log').get() as { n: number }).n
    // One self-contained file to copy around.
    db.exec('PRAGMA journal_mode = DELETE')
    db.close()
  } catch (error) {
    db.close()
    rmSync(tmp, { force: true })
    throw error
  }
  // Nothing to build from (a clone that checked nothing out): the fleet database there stays as it was.
  if (Object.keys(report.machines).length === 0) {
    rmSync(tmp, { force: true })
    return report
  }
  for (const suffix of ['-wal', '-shm']) rmSync(`${out}${suffix}`, { force: true })
  renameSync(tmp, out)
  return report
}

/** The error of a fleet build that was refused (the command exits 2). */
export class FleetError extends Error {
  override name = 'FleetError'
}

/** Whether `path` is a SQLite file with fleet_origin (a fleet database), read without touching it otherwise. */
function isFleetDatabase(path: string): boolean {
  if (!statSync(path).isFile()) return false
  let db: Database | null = null
  try {
    db = new Database(path, { readonly: true })
    return db.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fleet_origin'").get() !== null
  } catch {
    return false
  } finally {
    db?.close()
  }
}

function parseLine(text: string): v.InferOutput<typeof ExportLineSchema> | null {
  try {
    const parsed = v.safeParse(ExportLineSchema, JSON.parse(text))
    return parsed.success ? parsed.output : null
  } catch {
    return null
  }
}

/** Top-level folders holding YYYY/MM/DD.ndjson files. */
function machineDirs(repo: string): string[] {
  if (!existsSync(repo)) return []
  return readdirSync(repo)
    .filter((name) => !name.startsWith('.') && statSync(join(repo, name)).isDirectory())
    .filter((name) => dayFiles(join(repo, name)).length > 0)
    .sort()
}

/** `YYYY/MM/DD.ndjson` paths under a machine's folder, in order. */
function dayFiles(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((p) => DAY_FILE.test(p)).sort()
}
