/** A temp directory for one drill, removed when the drill ends (tests and `npm run drills` alike). */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DrillContext } from './result.ts'

export function drillDir(prefix: string, ctx: Pick<DrillContext, 'cleanup'>): string {
  const dir = mkdtempSync(join(tmpdir(), `witness-drill-${prefix}-`))
  ctx.cleanup(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}
