/**
 * Writes into the sync clone that name the file they failed on. A failed
 * write(2) names none (`ENOSPC: no space left on device, write`), so an
 * operator told the sync failed could not tell which disk was full.
 */
import { appendFileSync, writeFileSync } from 'node:fs'

/** Appends `text` to `path`; a failure's message names the file (its code and class unchanged). */
export function appendTo(path: string, text: string): void {
  naming(path, () => appendFileSync(path, text))
}

/** Writes `text` as the whole of `path`; a failure's message names the file. */
export function writeTo(path: string, text: string): void {
  naming(path, () => writeFileSync(path, text))
}

function naming(path: string, write: () => void): void {
  try {
    write()
  } catch (error) {
    if (error instanceof Error && !error.message.includes(path)) error.message = `${error.message} (writing ${path})`
    throw error
  }
}
