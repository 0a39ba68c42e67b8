/**
 * Where a machine's folder of a git export holds its signed checkpoints,
 * one file each, `<id>.json` (the id in 8 digits). Sync writes each into
 * `checkpoints-by-day/YYYY/MM/DD/`, by the day it was signed, so a commit
 * rewrites only that day's small tree and the few above it: in one flat
 * folder, a year of checkpoints at the default 5 minutes made every sync
 * commit a new tree of 105,000 entries (4 MB; docs/PERFORMANCE.md). Clones
 * from before hold them flat in `checkpoints/`; sync leaves those where they
 * are (it never changes or removes a checkpoint file, and export-history.ts
 * takes a removed one for a rewrite) and writes no new one there, so that
 * folder's tree is never rewritten again: daily folders inside it would
 * have rewritten it with every commit all the same. Readers read both; a
 * checkpoint in both is one checkpoint.
 */
import { existsSync, lstatSync, opendirSync } from 'node:fs'
import { join } from 'node:path'
import type { Checkpoint } from './checkpoint.ts'

/** The flat folder of clones from before, then the daily folders sync writes now. */
export const CHECKPOINT_FOLDERS = ['checkpoints', 'checkpoints-by-day'] as const
const [FLAT_CHECKPOINTS, DAILY_CHECKPOINTS] = CHECKPOINT_FOLDERS

/** A checkpoint's file in a machine's folder as sync writes it (`checkpoints-by-day/YYYY/MM/DD/<id>.json`), and where a clone from before holds it. */
export function checkpointPaths(machine: string, c: Pick<Checkpoint, 'id' | 'time'>): { daily: string; flat: string } {
  const name = `${String(c.id).padStart(8, '0')}.json`
  const flat = join(machine, FLAT_CHECKPOINTS, name)
  // Signed by witness, the time is ISO 8601; one that is not (a database edited by hand) cannot name a folder.
  const day = /^(\d{4})-(\d{2})-(\d{2})T/.exec(c.time)
  return { daily: day ? join(machine, DAILY_CHECKPOINTS, day[1]!, day[2]!, day[3]!, name) : flat, flat }
}

/**
 * The checkpoint files of a machine's folder, in both layouts, one at a time: a directory is
 * read as it is walked, not listed whole (a clone from before holds years of them in one folder).
 * Regular files only (sync writes no link; one put there could loop or point anywhere).
 */
export function* checkpointFiles(clone: string, machine: string): Generator<string> {
  for (const folder of CHECKPOINT_FOLDERS) yield* walkFiles(join(clone, machine, folder), '.json')
}

function* walkFiles(dir: string, suffix: string): Generator<string> {
  if (!existsSync(dir) || !lstatSync(dir).isDirectory()) return
  const handle = opendirSync(dir)
  try {
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) {
      const path = join(dir, entry.name)
      const stat = lstatSync(path)
      if (stat.isDirectory()) yield* walkFiles(path, suffix)
      else if (stat.isFile() && entry.name.endsWith(suffix)) yield path
    }
  } finally {
    handle.closeSync()
  }
}
