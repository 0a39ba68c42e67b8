/** Temporary directories, removed after the whole run by test/support/setup.ts. */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Shared across test files (each may load its own copy of this module). */
export function madeDirs(): string[] {
  const g = globalThis as { __witnessTempDirs?: string[] }
  g.__witnessTempDirs ??= []
  return g.__witnessTempDirs
}

export function tempDir(prefix = 'witness-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  madeDirs().push(dir)
  return dir
}
