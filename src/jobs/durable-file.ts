/** Writing a file so a crash leaves either the old state or the whole new file, never half of one. */
import { closeSync, fchmodSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

/**
 * Writes `bytes` to a temp file beside `path`, fsyncs it, renames it over `path`, fsyncs the directory.
 * `mode`: the file's permissions from its creation on (a secret is never readable by others, not even
 * for a moment); default: 0666 less the umask.
 */
export function writeFileDurably(path: string, bytes: Uint8Array, options: { mode?: number } = {}): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${crypto.randomUUID().slice(0, 8)}.tmp`)
  try {
    const fd = openSync(tmp, 'w', options.mode ?? 0o666)
    try {
      if (options.mode !== undefined) fchmodSync(fd, options.mode)
      let offset = 0
      while (offset < bytes.length) offset += writeSync(fd, bytes, offset)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, path)
  } catch (error) {
    // A disk that filled up leaves no half-written temp file behind, and the message names the file.
    rmSync(tmp, { force: true })
    if (error instanceof Error) error.message = `cannot write ${path}: ${error.message}`
    throw error
  }
  syncDir(dirname(path))
}

/** fsyncs a directory, so a rename or unlink in it survives power loss. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
