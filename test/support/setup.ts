/**
 * Preloaded by bun test (bunfig.toml): every temp dir removed once all files have run.
 *
 * The per-test timeout (20 s: tests talk to real servers, files and subprocesses, this machine's
 * speed drifts, and no test asserts wall-clock time) is `--timeout 20000` in package.json's test
 * script. Bun 1.4 reads no `timeout` from bunfig.toml, and a `setDefaultTimeout` here applies to
 * the first test file only.
 */
import { afterAll } from 'bun:test'
import { rmSync } from 'node:fs'
import { madeDirs } from './temp.ts'

afterAll(() => {
  for (const dir of madeDirs().splice(0)) rmSync(dir, { recursive: true, force: true })
})
