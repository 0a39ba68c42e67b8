/**
 * Making database files read-only in a way that holds for the user the
 * tests run as. chmod does not stop root (it bypasses file modes), so as
 * root the files are made immutable (`chattr +i`), which refuses writes to
 * everyone, even through descriptors opened before (chmod never does that,
 * for any user). Where neither works, `reason` says why and tests skip.
 */
import { chmodSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir } from './temp.ts'

export interface ReadOnly {
  /** How files are made read-only: `immutable` (chattr +i) or `mode` (chmod a-w). */
  how: 'immutable' | 'mode'
  /** Makes the paths read-only; returns the undo (call it in a `finally`: immutable files cannot be removed). */
  apply(paths: string[]): () => void
}

const isRoot = process.getuid?.() === 0

function chattr(flag: '+i' | '-i', paths: string[]): { ok: boolean; stderr: string } {
  try {
    const run = Bun.spawnSync(['chattr', flag, ...paths], { stderr: 'pipe' })
    return { ok: run.exitCode === 0, stderr: run.stderr.toString().trim() }
  } catch (error) {
    return { ok: false, stderr: (error as Error).message }
  }
}

const immutable: ReadOnly = {
  how: 'immutable',
  apply(paths) {
    const set = chattr('+i', paths)
    if (!set.ok) throw new Error(`chattr +i failed: ${set.stderr}`)
    return () => void chattr('-i', paths)
  },
}

const byMode: ReadOnly = {
  how: 'mode',
  apply(paths) {
    const modes = paths.map((p) => statSync(p).mode & 0o7777)
    for (const p of paths) chmodSync(p, statSync(p).mode & 0o555)
    return () => paths.forEach((p, i) => chmodSync(p, modes[i]!))
  },
}

/** Whether chattr +i works here (root, or CAP_LINUX_IMMUTABLE, on a filesystem that supports it). */
function probeImmutable(): string | null {
  const file = join(tempDir(), 'probe')
  writeFileSync(file, 'x')
  const set = chattr('+i', [file])
  if (!set.ok) return `chattr +i is not available here (${set.stderr || 'no chattr'})`
  chattr('-i', [file])
  return null
}

const immutableProblem = probeImmutable()

/** Read-only that also holds for files a process already has open: immutable only. */
export const readOnlyWhileOpen: { readOnly: ReadOnly | null; reason: string | null } =
  immutableProblem === null ? { readOnly: immutable, reason: null } : { readOnly: null, reason: `${immutableProblem}; chmod cannot revoke a descriptor already open for writing` }

/** Read-only for files opened afterwards: immutable where it works, else chmod (which does not bind root). */
export const readOnlyBeforeOpen: { readOnly: ReadOnly | null; reason: string | null } =
  immutableProblem === null
    ? { readOnly: immutable, reason: null }
    : isRoot
      ? { readOnly: null, reason: `running as root, where chmod does not stop writes, and ${immutableProblem}` }
      : { readOnly: byMode, reason: null }
