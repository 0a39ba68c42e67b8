/**
 * `witness fleet --out`: what happens to the fleet database already there. A real CLI subprocess
 * over export folders written as the sync writes them.
 */
import { Database } from 'bun:sqlite'
import { expect, test } from 'bun:test'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { dayFileOf, toLine } from '../src/sync/export-line.ts'
import { runWitness } from './support/process.ts'
import { tempDir } from './support/temp.ts'

/** An export folder for `machine` holding `n` rows of one day, as `witness sync` writes them. */
function exportOf(repo: string, machine: string, n: number): void {
  const timestamp = '2026-11-25T10:00:00.000Z'
  const lines = Array.from({ length: n }, (_, i) =>
    toLine({ id: i + 1, timestamp, agent_name: 'ezra', provider: 'kimi', model: 'kimi-k2.5', endpoint: 'https://api.moonshot.ai/v1/chat/completions', tokens_in: 1, tokens_out: 2, latency_ms: 3, status: 'success', error_message: null, request_id: `r${i}` }),
  )
  const file = join(repo, dayFileOf(machine, timestamp))
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, `${lines.join('\n')}\n`)
}

const rowsIn = (path: string) => {
  const db = new Database(path, { readonly: true })
  try {
    return (db.query('SELECT count(*) AS n FROM request_log').get() as { n: number }).n
  } finally {
    db.close()
  }
}

test('a clone with no machine folder (one that checked nothing out) leaves the fleet database there as it was: exit 1, not an empty fleet in its place', async () => {
  const dir = tempDir()
  const [good, empty, out] = [join(dir, 'clone'), join(dir, 'empty'), join(dir, 'fleet.db')]
  exportOf(good, 'alpha', 5)
  exportOf(good, 'beta', 3)
  mkdirSync(empty)
  expect((await runWitness(['fleet', '--repo', good, '--out', out])).code).toBe(0)
  expect(rowsIn(out)).toBe(8)

  const nothing = await runWitness(['fleet', '--repo', empty, '--out', out])
  expect(nothing.code).toBe(1)
  expect(nothing.stderr).toContain(`holds no machine folders; a clone of the sync remote that checked nothing out? clone it with git clone -b <sync.branch>; ${out} is left as it was`)
  expect(rowsIn(out)).toBe(8)
})
