/**
 * Preloaded by bun test (bunfig.toml): a generous per-test timeout (tests talk to real servers,
 * files and subprocesses, and this machine's speed drifts; no test asserts wall-clock time), and
 * every temp dir removed once all files have run. Bun 1.4 does not read `timeout` from bunfig.toml,
 * so the timeout is set here.
 */
import { afterAll, setDefaultTimeout } from 'bun:test'
import { rmSync } from 'node:fs'
import { madeDirs } from './temp.ts'

setDefaultTimeout(20_000)

afterAll(() => {
  for (const dir of madeDirs().splice(0)) rmSync(dir, { recursive: true, force: true })
})
