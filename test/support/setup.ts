/** Preloaded by bun test (bunfig.toml): removes every temp dir once all files have run. */
import { afterAll } from 'bun:test'
import { rmSync } from 'node:fs'
import { madeDirs } from './temp.ts'

afterAll(() => {
  for (const dir of madeDirs().splice(0)) rmSync(dir, { recursive: true, force: true })
})
