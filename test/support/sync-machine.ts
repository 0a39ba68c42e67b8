/**
 * Machines that sync, for the sync tests: each its own directory, database,
 * archive, clone and config pointing at a remote; and what the remote holds.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runArchive } from '../../src/retention/archive-job.ts'
import type { ExportLine } from '../../src/sync/export-line.ts'
import { git } from './git.ts'
import { runWitness } from './process.ts'
import { seedRows } from './seed.ts'
import { tempDir } from './temp.ts'

/** What `witness sync` says of a remote left up to date. */
export const UP_TO_DATE = 'the remote branch main is up to date'

/** A machine: its own directory, database, archive, clone and config pointing at `remote`. */
export function machine(name: string, remote: string) {
  const dir = tempDir(`witness-${name}-`)
  const configPath = join(dir, 'witness.yaml')
  writeFileSync(
    configPath,
    `machine: ${name}\ndatabase: ./w.db\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\n` +
      `retention: { keep_days: 30, archive_dir: ./arch }\nsync: { remote: "${remote}", branch: main, work_dir: ./clone, every: 0 }\n`,
  )
  const livePath = join(dir, 'w.db')
  return {
    name,
    dir,
    configPath,
    keyPath: join(dir, 'witness-key.json'),
    livePath,
    archiveDir: join(dir, 'arch'),
    workDir: join(dir, 'clone'),
    sync: (env: Record<string, string> = {}) => runWitness(['sync', '--config', configPath], env),
    archive: () => runArchive({ livePath, retention: { keepDays: 30, archiveDir: join(dir, 'arch'), archiveKeepDays: 0, maxDbMb: 512 }, syncConfigured: true, now: Date.now }),
    seed: (rows: Parameters<typeof seedRows>[1]) => seedRows(livePath, rows),
  }
}

/** The rows' day files in the remote (the proof's files beside them are left out): path -> parsed lines. */
export function remoteFiles(bare: string): Map<string, ExportLine[]> {
  const names = git(['--git-dir', bare, 'ls-tree', '-r', '--name-only', 'main']).split('\n').filter((n) => n.endsWith('.ndjson'))
  return new Map(names.map((n) => [n, git(['--git-dir', bare, 'show', `main:${n}`]).split('\n').filter(Boolean).map((l) => JSON.parse(l) as ExportLine)]))
}

/** The lines of every day file in the remote, or of one machine's. */
export function remoteLines(bare: string, machineName?: string): ExportLine[] {
  return [...remoteFiles(bare)].filter(([path]) => !machineName || path.startsWith(`${machineName}/`)).flatMap(([, lines]) => lines)
}

export function commitCount(bare: string): number {
  return Number(git(['--git-dir', bare, 'rev-list', '--count', 'main']).trim())
}

/** The ids of some lines, in order. */
export const ids = (lines: { id: number }[]) => lines.map((l) => l.id).sort((a, b) => a - b)
