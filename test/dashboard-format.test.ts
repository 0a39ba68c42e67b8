/** How the dashboard writes numbers: rates never round to a clean 100% or 0%, money and durations stay readable. */
import { describe, expect, test } from 'bun:test'
import { niceMax } from '../src/dashboard/charts.tsx'
import { formatMs, formatRate, formatSilence, formatTime, formatUsd } from '../src/dashboard/format.ts'
import { colourOf } from '../src/dashboard/palette.ts'

describe('dashboard formats', () => {
  test('times are shown in UTC, whatever form they were stamped in', () => {
    expect(formatTime('2026-11-25T12:04:05.678Z')).toBe('2026-11-25 12:04:05')
    // A row stamped with an offset (by hand, by another tool) is converted, not shown as if it were UTC.
    expect(formatTime('2026-12-06T16:52:36+05:00')).toBe('2026-12-06 11:52:36')
    expect(formatTime('2026-11-25 09:30:00Z')).toBe('2026-11-25 09:30:00')
    // Not a time, or past year 9999: shown as stored.
    expect(formatTime('unknown')).toBe('unknown')
    expect(formatTime('+010000-01-01T00:00:00.000Z')).toBe('+010000-01-01T00:00:00.000Z')
    expect(formatTime(null)).toBe('—')
  })

  test('a rate just under 1 is not shown as 100%, nor one just over 0 as 0%', () => {
    expect([1, 0.9998, 0.8571428, 0.5, 2 / 3, 0.0004, 0, null].map(formatRate)).toEqual(['100%', '>99.9%', '85.7%', '50%', '66.7%', '<0.1%', '0%', '—'])
  })

  test('durations, costs and silences', () => {
    expect([7, 999.4, 999.6, 1820, 20_000, null].map(formatMs)).toEqual(['7 ms', '999 ms', '1 s', '1.82 s', '20 s', '—'])
    expect([0, 0.0115, 0.03, 0.00001, 26.643, null].map(formatUsd)).toEqual(['$0', '$0.0115', '$0.03', '<$0.0001', '$26.64', '—'])
    expect([5, 300, 7200, 200_000].map(formatSilence)).toEqual(['5 s', '5 min', '2 h', '2 d'])
  })

  test("a chart's axis ends at 1, 2 or 5 times a power of ten at or above its largest value", () => {
    expect([0, 0.2, 0.21, 3, 13, 20, 7000, 12_000].map(niceMax)).toEqual([1, 0.2, 0.5, 5, 20, 20, 10_000, 20_000])
  })
})

describe('provider colours', () => {
  test("configured providers take the colours in config order; any other is never drawn in a configured provider's colour", () => {
    const configured = ['kimi', 'openrouter', 'groq']
    expect(configured.map((p) => colourOf(configured, p))).toEqual(['c0', 'c1', 'c2'])
    const others = ['runpod', 'mimo', 'ollama', 'claude', ...Array.from({ length: 50 }, (_, i) => `old-${i}`)]
    for (const provider of others) expect(['c0', 'c1', 'c2']).not.toContain(colourOf(configured, provider))
    // The same name, the same colour, in every panel.
    expect(colourOf(configured, 'runpod')).toBe(colourOf([...configured], 'runpod'))
  })
})
