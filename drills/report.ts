/** docs/RELIABILITY.md: the drills' results as a table, then each drill's counts, notes and problems. */
import type { Drill } from './index.ts'
import type { DrillResult } from './support/result.ts'

export interface RunFacts {
  date: string
  commit: string
  machine: string
  bun: string
  command: string
}

export function reliabilityReport(drills: Drill[], results: DrillResult[], facts: RunFacts): string {
  const out: string[] = []
  const byName = new Map(results.map((r) => [r.drill, r]))
  out.push('# Reliability', '')
  out.push(
    `The fault drills, run at full size by \`${facts.command}\` on ${facts.date} (witness ${facts.commit}, Bun ${facts.bun}, ${facts.machine}). ` +
      'Everything runs on loopback: the real `witness serve` as a subprocess, the provider simulator as the upstream. ' +
      'In every drill, witness must not die unasked and its log must hold no "unhandled error" (every failure is typed). ' +
      'The test suite runs the same drills at a small size (test/drills.test.ts). Each drill prints its seed; ' +
      '`npm run drills -- --seed N` replays the random choices (kill moments, latencies, faults, client mix), though not the exact timing.',
    '',
  )
  out.push('| drill | result | seed | took |', '|---|---|---|---|')
  for (const d of drills) {
    const r = byName.get(d.name)
    if (!r) continue
    const verdict = r.problemCount === 0 ? 'passed: no problems' : `**${r.problemCount} problem(s)**`
    out.push(`| ${d.title} | ${verdict} | ${r.seed} | ${(r.durationMs / 1000).toFixed(1)} s |`)
  }
  out.push('')
  for (const d of drills) {
    const r = byName.get(d.name)
    if (!r) continue
    out.push(`## ${d.title}`, '', d.about, '', '| count | value |', '|---|---|')
    for (const [name, value] of Object.entries(r.counts)) out.push(`| ${name} | ${value} |`)
    out.push('')
    for (const note of r.notes) out.push(`- ${note}`)
    if (r.notes.length) out.push('')
    if (r.problemCount === 0) out.push('Problems found: none.', '')
    else {
      out.push(`Problems found: ${r.problemCount}${r.problemCount > r.problems.length ? ` (the first ${r.problems.length} listed)` : ''}.`, '', '```')
      for (const p of r.problems) out.push(p)
      out.push('```', '')
    }
  }
  return out.join('\n')
}
