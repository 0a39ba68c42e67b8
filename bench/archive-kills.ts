/**
 * What `witness archive` leaves in the archive directory when it is killed: a database of `--rows`
 * synthetic rows over 180 days (bench/fill.ts), `witness archive` killed with SIGKILL at `--kills`
 * random moments (0.8-3.3 s after its start), the directory listed after each, then one run to the
 * end and the files left with their sizes.
 *
 *   bun bench/archive-kills.ts [--rows 300000] [--kills 12]
 */
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { fillDatabase } from './fill.ts'

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { rows: { type: 'string', default: '300000' }, kills: { type: 'string', default: '12' } } })
const CLI = resolve(import.meta.dir, '../src/cli.ts')
const dir = mkdtempSync(join(tmpdir(), 'witness-archive-kills-'))
const archiveDir = join(dir, 'arch')
fillDatabase(join(dir, 'w.db'), { rows: Number(values.rows), days: 180, endMs: Date.now() })
const config = join(dir, 'w.yaml')
writeFileSync(config, 'database: ./w.db\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\nretention: { keep_days: 30, archive_dir: ./arch }\n')
const list = () => (existsSync(archiveDir) ? readdirSync(archiveDir, { recursive: true }).map(String).sort() : [])

try {
  for (let i = 1; i <= Number(values.kills); i++) {
    const proc = Bun.spawn([process.execPath, CLI, 'archive', '--config', config, '--batch-rows', '2000'], { stdout: 'ignore', stderr: 'ignore' })
    await Bun.sleep(800 + Math.random() * 2500)
    proc.kill('SIGKILL')
    await proc.exited
    console.log(`after kill ${i}: ${list().join(' ')}`)
  }
  const done = Bun.spawnSync([process.execPath, CLI, 'archive', '--config', config])
  console.log(`run to the end: exit ${done.exitCode}`)
  console.log(`left: ${list().map((name) => `${name} (${statSync(join(archiveDir, name)).size} B)`).join(' ')}`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
