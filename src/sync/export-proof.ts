/**
 * The proof half of the export: the chain entries not yet exported as
 * `<machine>/chain/YYYY/MM/DD.jsonl` (by the day they were chained), the
 * signed checkpoints not yet exported as
 * `<machine>/checkpoints-by-day/YYYY/MM/DD/<id>.json` (by the day they were
 * signed; a clone from before also holds `<machine>/checkpoints/<id>.json`,
 * left as it is: proof/checkpoint-files.ts), and the machine's public key as
 * `<machine>/public-key.json`. With the
 * rows' `.ndjson` files beside them, anyone holding the clone can run
 * `witness verify --repo`. Like the rows, a file never gets the same entry
 * twice, and the marks are per clone (a new remote gets everything).
 *
 * The export stops at `through`, the chain head read in the same snapshot as
 * the rows (see sync-job.ts): an entry, or a checkpoint, whose row's line
 * has not gone out yet waits for the next run with it, so the clone never
 * holds a chain entry for a row it does not have.
 *
 * Entries are read a page at a time, so a long backlog costs memory for one
 * page; archives are opened only when some entries not yet exported were
 * moved there, and compressed months are decompressed off the event loop.
 */
import type { Database } from 'bun:sqlite'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { appendTo, writeTo } from './file-write.ts'
import { readChainExport } from './sync-state.ts'
import { hasTable } from '../telemetry/schema.ts'
import type { Checkpoint } from '../proof/checkpoint.ts'
import type { PublicKeyFile } from '../proof/keys.ts'
import type { ChainEntry } from '../proof/verify.ts'
import { eachReadableArchive } from '../retention/archive-files.ts'
import { archivesMissing } from '../retention/read-sources.ts'
import { checkpointPaths } from '../proof/checkpoint-files.ts'
import { CHAIN_START_FILE } from '../proof/export-folder.ts'
import { chainStartsAt } from '../proof/sources.ts'

const PAGE = 5_000

type ExportedEntry = ChainEntry & { chained_at: string }

export interface ProofExportState {
  seq: number
  checkpoint: number
}

export interface ProofExport {
  entries: number
  checkpoints: number
  /** The marks to save after the commit (encodeProofState). */
  state: ProofExportState
  /** Archives that could not be read (`file: why`): their entries are owed, so the marks did not move. */
  unreadable: string[]
}

/** What the last run exported into the clone `repo` (nothing for another clone). */
export function readProofState(live: Database, repo: string): ProofExportState {
  const saved = readChainExport(live)
  return saved.repo === repo ? { seq: saved.seq, checkpoint: saved.checkpoint } : { seq: 0, checkpoint: 0 }
}

export function encodeProofState(repo: string, state: ProofExportState): string {
  return `${repo} ${state.seq} ${state.checkpoint}`
}

/** The clone's chain files, appended to without repeating an entry. */
class ChainFiles {
  written = 0
  private readonly seen = new Map<string, Set<number>>()

  constructor(
    private readonly workDir: string,
    private readonly machine: string,
  ) {}

  add(entries: readonly ExportedEntry[]): void {
    const byFile = new Map<string, string[]>()
    for (const e of entries) {
      const file = join(this.machine, 'chain', e.chained_at.slice(0, 4), e.chained_at.slice(5, 7), `${e.chained_at.slice(8, 10)}.jsonl`)
      const seen = this.seqsIn(file)
      if (seen.has(e.seq)) continue
      seen.add(e.seq)
      let lines = byFile.get(file)
      if (!lines) byFile.set(file, (lines = []))
      lines.push(JSON.stringify(e))
    }
    for (const [file, lines] of byFile) {
      const path = join(this.workDir, file)
      mkdirSync(dirname(path), { recursive: true })
      appendTo(path, `${lines.join('\n')}\n`)
      this.written += lines.length
    }
  }

  private seqsIn(file: string): Set<number> {
    let seqs = this.seen.get(file)
    if (!seqs) {
      seqs = new Set()
      const path = join(this.workDir, file)
      if (existsSync(path)) {
        for (const line of readFileSync(path, 'utf8').split('\n')) {
          if (!line.trim()) continue
          try {
            seqs.add((JSON.parse(line) as { seq: number }).seq)
          } catch {
            // A line that is not an entry (edited by hand, cut short) holds none: what belongs is
            // written again, and verify --repo names the line.
          }
        }
      }
      this.seen.set(file, seqs)
    }
    return seqs
  }
}

const SELECT_ENTRIES = 'SELECT seq, log_id, prev_hash, hash, record, chained_at FROM log_chain WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?'

/** Adds a database's chain entries after `seq` and up to `through` to `files`, a page at a time (yielding between pages); returns the last seq read. */
async function addEntriesAfter(db: Database, seq: number, through: number, files: ChainFiles): Promise<number> {
  let after = seq
  for (;;) {
    const page = db.query(SELECT_ENTRIES).all(after, through, PAGE) as ExportedEntry[]
    if (page.length === 0) return after
    files.add(page)
    after = page.at(-1)!.seq
    await Bun.sleep(0)
  }
}

export async function exportProof(options: {
  live: Database
  archiveDir: string
  workDir: string
  machine: string
  publicKey: PublicKeyFile | null
  from: ProofExportState
  /** The last chain entry to export: the head as of the rows exported with it. */
  through: number
}): Promise<ProofExport> {
  const { live, machine, workDir, from, through } = options
  if (!hasTable(live, 'log_chain')) return { entries: 0, checkpoints: 0, state: from, unreadable: [] }
  const files = new ChainFiles(workDir, machine)
  let last = from.seq

  // Entries archived before they were exported: archiving goes by the rows' age, not by chain order, so
  // they can be anywhere in the range (an old pending row finished late is chained after newer rows).
  const inLive = (live.query('SELECT count(*) AS n FROM log_chain WHERE seq > ? AND seq <= ?').get(from.seq, through) as { n: number }).n
  const unreadable =
    inLive < through - from.seq
      ? [
          ...archivesMissing(live, options.archiveDir),
          ...(await eachReadableArchive(options.archiveDir, async (db) => {
            if (hasTable(db, 'log_chain')) last = Math.max(last, await addEntriesAfter(db, from.seq, through, files))
          })),
        ]
      : []
  last = Math.max(last, await addEntriesAfter(live, from.seq, through, files))

  let checkpoints = 0
  let lastCheckpoint = from.checkpoint
  if (hasTable(live, 'checkpoints')) {
    for (const c of live.query('SELECT * FROM checkpoints WHERE id > ? ORDER BY id').all(from.checkpoint) as Checkpoint[]) {
      // A checkpoint signed past `through` covers entries not exported yet: it waits (with those after it) for the next run.
      if (c.seq > through) break
      const { daily, flat } = checkpointPaths(machine, c)
      const path = join(workDir, daily)
      // Exported into a clone from before (a new remote, marks started over): it is there already, flat.
      if (!existsSync(path) && !existsSync(join(workDir, flat))) {
        mkdirSync(dirname(path), { recursive: true })
        writeTo(path, `${JSON.stringify(c, null, 2)}\n`)
        checkpoints++
      }
      lastCheckpoint = c.id
    }
  }
  writeChainStart(live, workDir, machine)
  if (options.publicKey) {
    const path = join(workDir, machine, 'public-key.json')
    const text = `${JSON.stringify(options.publicKey, null, 2)}\n`
    if (!existsSync(path) || readFileSync(path, 'utf8') !== text) {
      mkdirSync(dirname(path), { recursive: true })
      writeTo(path, text)
    }
  }
  // With an archive unreadable, entries in it may lie below `last`: the marks stay, and the next run
  // looks again (what was written now is not written twice).
  return { entries: files.written, checkpoints, state: unreadable.length ? from : { seq: last, checkpoint: lastCheckpoint }, unreadable }
}

/**
 * Where the chain begins (rows finished before it existed, in a database upgraded from then), as
 * `<machine>/chain-start.json`, which verify --repo needs to tell those rows from unchained ones as
 * verify does with the database. Written once. Not the runs of entries retention deleted with their
 * archives: unsigned in a folder anyone who may push can write, a run would excuse any entries it
 * names, and the checkpoints inside it with them (a review forged one and rewrote every row).
 */
function writeChainStart(live: Database, workDir: string, machine: string): void {
  const first = chainStartsAt(live)
  const start = join(workDir, machine, CHAIN_START_FILE)
  if (first > 1 && !existsSync(start)) {
    mkdirSync(dirname(start), { recursive: true })
    writeTo(start, `${JSON.stringify({ first_log_id: first })}\n`)
  }
}
