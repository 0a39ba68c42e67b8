/**
 * The proof half of the export: the chain entries not yet exported as
 * `<machine>/chain/YYYY/MM/DD.jsonl` (by the day they were chained), every
 * signed checkpoint as `<machine>/checkpoints/<id>.json`, and the machine's
 * public key as `<machine>/public-key.json`. With the rows' `.ndjson` files
 * beside them, anyone holding the clone can run `witness verify --repo`.
 * Like the rows, a file never gets the same entry twice.
 */
import type { Database } from 'bun:sqlite'
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { readState, tableExists } from '../jobs/job-db.ts'
import type { Checkpoint } from '../proof/checkpoint.ts'
import type { PublicKeyFile } from '../proof/keys.ts'
import type { ChainEntry } from '../proof/verify.ts'
import { listArchives, openArchiveReadonly } from '../retention/archive-files.ts'

/** witness_state key: the last chain entry exported. */
export const CHAIN_EXPORT_KEY = 'sync.chain_seq'

type ExportedEntry = ChainEntry & { chained_at: string }

export interface ProofExport {
  entries: number
  checkpoints: number
  /** The chain position exported up to (save it after the commit). */
  lastSeq: number
}

export function readChainExportState(live: Database): number {
  return Number(readState(live, CHAIN_EXPORT_KEY) ?? 0)
}

export async function exportProof(options: { live: Database; archiveDir: string; workDir: string; machine: string; publicKey: PublicKeyFile | null }): Promise<ProofExport> {
  const { live, machine, workDir } = options
  if (!tableExists(live, 'log_chain')) return { entries: 0, checkpoints: 0, lastSeq: 0 }
  const from = readChainExportState(live)
  const select = (db: Database) =>
    db.query('SELECT seq, log_id, prev_hash, hash, record, chained_at FROM log_chain WHERE seq > ? ORDER BY seq').all(from) as ExportedEntry[]
  const entries = new Map<number, ExportedEntry>()
  for (const e of select(live)) entries.set(e.seq, e)
  // Entries archived before they were exported are read from their archives.
  const lowestLive = Math.min(...entries.keys())
  if (entries.size === 0 || lowestLive > from + 1) {
    for (const file of listArchives(options.archiveDir)) {
      const db = openArchiveReadonly(options.archiveDir, file)
      try {
        if (tableExists(db, 'log_chain')) for (const e of select(db)) entries.set(e.seq, e)
      } finally {
        db.close()
      }
      await Bun.sleep(0)
    }
  }

  let written = 0
  const byFile = new Map<string, ExportedEntry[]>()
  for (const e of [...entries.values()].sort((a, b) => a.seq - b.seq)) {
    const file = join(machine, 'chain', e.chained_at.slice(0, 4), e.chained_at.slice(5, 7), `${e.chained_at.slice(8, 10)}.jsonl`)
    byFile.set(file, [...(byFile.get(file) ?? []), e])
  }
  for (const [file, list] of byFile) {
    const path = join(workDir, file)
    const seen = new Set<number>()
    if (existsSync(path)) {
      for (const line of readFileSync(path, 'utf8').split('\n')) if (line.trim()) seen.add((JSON.parse(line) as { seq: number }).seq)
    }
    const lines = list.filter((e) => !seen.has(e.seq)).map((e) => JSON.stringify(e))
    if (lines.length === 0) continue
    mkdirSync(dirname(path), { recursive: true })
    appendFileSync(path, `${lines.join('\n')}\n`)
    written += lines.length
  }

  let checkpoints = 0
  if (tableExists(live, 'checkpoints')) {
    for (const c of live.query('SELECT * FROM checkpoints ORDER BY id').all() as Checkpoint[]) {
      const path = join(workDir, machine, 'checkpoints', `${String(c.id).padStart(8, '0')}.json`)
      if (existsSync(path)) continue
      mkdirSync(dirname(path), { recursive: true })
      writeFileSync(path, `${JSON.stringify(c, null, 2)}\n`)
      checkpoints++
    }
  }
  if (options.publicKey) {
    const path = join(workDir, machine, 'public-key.json')
    const text = `${JSON.stringify(options.publicKey, null, 2)}\n`
    if (!existsSync(path) || readFileSync(path, 'utf8') !== text) {
      mkdirSync(dirname(path), { recursive: true })
      writeFileSync(path, text)
    }
  }
  const lastSeq = Math.max(from, ...entries.keys())
  return { entries: written, checkpoints, lastSeq }
}
