/**
 * Reading one machine's folder of a git export into the work store, a line
 * at a time: `<machine>/YYYY/MM/DD.ndjson` rows, `<machine>/chain/…/*.jsonl`
 * chain entries, the signed checkpoints a file at a time (in either layout,
 * checkpoint-files.ts), and beside them (read whole)
 * `public-key.json` and `chain-start.json`.
 */
import { existsSync, lstatSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import type { Checkpoint } from './checkpoint.ts'
import { checkpointFiles } from './checkpoint-files.ts'
import { noteCheckpointFile } from './export-history.ts'
import { fileLines } from './file-lines.ts'
import type { PublicKeyFile } from './keys.ts'
import { LOG_COLUMNS, type LogRow } from './record.ts'
import type { ChainEntry } from './verify.ts'
import { Breather, type WorkStore } from './work-store.ts'

/** The files under `dir` whose names end in `suffix`: regular files only (sync writes no link; one put there could loop or point anywhere). */
function filesUnder(dir: string, suffix: string): string[] {
  if (!existsSync(dir) || !lstatSync(dir).isDirectory()) return []
  const out: string[] = []
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name)
    const stat = lstatSync(path)
    if (stat.isDirectory()) out.push(...filesUnder(path, suffix))
    else if (stat.isFile() && name.endsWith(suffix)) out.push(path)
  }
  return out
}

/** Problems with an export's files named one by one before the rest are only counted. */
const MAX_NAMED = 50

/** The problems of an export's files: the first MAX_NAMED named, the rest counted. */
class NamedProblems {
  private readonly named: string[] = []
  private more = 0
  add(text: string): void {
    if (this.named.length < MAX_NAMED) this.named.push(text)
    else this.more++
  }
  list(): string[] {
    return this.more ? [...this.named, `and ${this.more} more problem(s) with the export's files like these`] : [...this.named]
  }
}

/** The JSON values of a file's lines, one at a time; a line that is not JSON is named in `bad` (`path:line`) and left out. */
function* jsonLines(path: string, bad: NamedProblems, shown: string): Generator<{ value: unknown; text: string; at: string; number: number }> {
  for (const { text, number } of fileLines(path)) {
    if (!text.trim()) continue
    const at = `${shown}:${number}`
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      bad.add(`${at} is not a JSON line`)
      continue
    }
    yield { value, text, at, number }
  }
}

/** A whole number of an export's line (an id, a position), or null. */
function wholeNumber(value: unknown): number | null {
  return typeof value === 'number' && Number.isSafeInteger(value) ? value : null
}

/** In a machine's folder of an export: where its chain begins (export-proof.ts). */
export const CHAIN_START_FILE = 'chain-start.json'

/** The machines that have a folder in an export clone. */
export function exportMachines(clone: string): string[] {
  return readdirSync(clone).filter((name) => !name.startsWith('.') && statSync(join(clone, name)).isDirectory())
}

/** What gatherExport finds in a machine's folder besides the rows and entries it puts in the store. */
export interface ExportFolder {
  /** The public key the folder publishes (public-key.json). */
  key: PublicKeyFile | null
  /** What cannot be evidence: lines that are not JSON, an id on two lines that differ, pending rows. */
  problems: string[]
  /** chain-start.json's first_log_id (0 when there is none). */
  chainStartsAt: number
}

/**
 * Puts one machine's folder of a git export into the store, a line at a time: its rows
 * (`YYYY/MM/DD.ndjson`) and chain entries (`chain/…/*.jsonl`). An id on two lines that differ is
 * named, and neither line is taken (one of them was put there by hand); the same line twice is
 * taken once. Then its checkpoints, a file at a time (each file noted for export-history.ts too).
 * Returns its published key, and what cannot be evidence.
 */
export async function gatherExport(store: WorkStore, clone: string, machine: string): Promise<ExportFolder> {
  const root = join(clone, machine)
  const problems = new NamedProblems()
  const shown = (file: string) => relative(clone, file)
  const files = filesUnder(root, '.ndjson')
  const breather = new Breather()
  await store.inTransaction(async () => {
    for (const [index, file] of files.entries()) {
      for (const { value, text, at, number } of jsonLines(file, problems, shown(file))) {
        if (breather.due()) await breather.pause()
        const line = (value !== null && typeof value === 'object' ? value : {}) as Partial<Record<string, unknown>>
        const id = wholeNumber(line.id)
        if (id === null) {
          problems.add(`${at} is not a row: it has no whole-number id`)
          continue
        }
        const digest = Bun.SHA256.hash(text) as Uint8Array
        const first = store.firstLine(id)
        if (first) {
          if (!Buffer.from(first.digest).equals(digest)) {
            problems.add(`row ${id} is on two lines that differ (${shown(files[first.file]!)}:${first.line} and ${at}): neither is taken`)
            store.noteConflict(id)
          }
          continue
        }
        store.noteFirstLine(id, digest, index, number)
        if (line.status === 'pending') {
          // The chain cannot speak for it (only finished rows join it), and sync never writes one.
          problems.add(`row ${id} (${at}) is pending: sync exports only finished rows, so the line was put there by hand`)
          continue
        }
        store.addRow(Object.fromEntries(LOG_COLUMNS.map((c) => [c, line[c] ?? null])) as LogRow, line.request_id ?? null)
      }
    }
    store.dropConflicting()
    for (const file of filesUnder(join(root, 'chain'), '.jsonl')) {
      for (const { value, at } of jsonLines(file, problems, shown(file))) {
        if (breather.due()) await breather.pause()
        const line = (value !== null && typeof value === 'object' ? value : {}) as Partial<Record<keyof ChainEntry, unknown>>
        const seq = wholeNumber(line.seq)
        const logId = wholeNumber(line.log_id)
        if (seq === null || logId === null) {
          problems.add(`${at} is not a chain entry: it has no whole-number seq and log_id`)
          continue
        }
        // A field that is not text (an object, an array: put there by hand) is kept as its JSON text, so the entry reads as altered.
        store.addEntry({ seq, log_id: logId, prev_hash: asText(line.prev_hash), hash: asText(line.hash), record: asText(line.record) })
      }
    }
  })
  await store.inTransaction(async () => {
    for (const file of checkpointFiles(clone, machine)) {
      if (breather.due()) await breather.pause()
      const bytes = readFileSync(file)
      noteCheckpointFile(store, bytes)
      let value: unknown
      try {
        value = JSON.parse(new TextDecoder().decode(bytes))
      } catch {
        problems.add(`${shown(file)} is not JSON`)
        continue
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) problems.add(`${shown(file)} is not a checkpoint: its JSON is no object`)
      // The id is not signed: one written another way ("2" for 2) would not be compared with the copy that has it.
      else if (!isCheckpointId((value as { id?: unknown }).id)) problems.add(`${shown(file)} is not a checkpoint: its id is not a whole number above 0`)
      else store.addCheckpoint(value as Partial<Record<keyof Checkpoint, unknown>>, shown(file))
    }
  })
  const keyPath = join(root, 'public-key.json')
  let key: PublicKeyFile | null = null
  try {
    key = existsSync(keyPath) ? (JSON.parse(readFileSync(keyPath, 'utf8')) as PublicKeyFile) : null
  } catch {
    problems.add(`${shown(keyPath)} is not JSON`)
  }
  let chainStartsAt = 0
  const startPath = join(root, CHAIN_START_FILE)
  if (existsSync(startPath)) {
    try {
      chainStartsAt = Number((JSON.parse(readFileSync(startPath, 'utf8')) as { first_log_id: unknown }).first_log_id) || 0
    } catch {
      problems.add(`${shown(startPath)} is not JSON`)
    }
  }
  return { key, problems: problems.list(), chainStartsAt }
}

function isCheckpointId(id: unknown): boolean {
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 1
}

/** A chain entry's field as text: a string as it is, anything else as its JSON text (never a chain hash or record). */
function asText(value: unknown): string {
  return typeof value === 'string' ? value : (JSON.stringify(value) ?? '')
}
