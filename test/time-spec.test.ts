/** Times as operators type them: durations back from now, ISO-8601 times and dates. */
import { describe, expect, test } from 'bun:test'
import { parseDuration, parseTimeSpec } from '../src/time-spec.ts'

const NOW = Date.parse('2026-11-25T12:00:00.000Z')

describe('time specs', () => {
  test('durations count back from now: 90s, 15m, 1h, 7d', () => {
    expect(parseTimeSpec('90s', NOW)).toBe('2026-11-25T11:58:30.000Z')
    expect(parseTimeSpec('15m', NOW)).toBe('2026-11-25T11:45:00.000Z')
    expect(parseTimeSpec('1h', NOW)).toBe('2026-11-25T11:00:00.000Z')
    expect(parseTimeSpec('7d', NOW)).toBe('2026-11-18T12:00:00.000Z')
    expect(parseTimeSpec('0s', NOW)).toBe('2026-11-25T12:00:00.000Z')
    expect(parseDuration('36h')).toBe(36 * 3_600_000)
  })

  test('ISO-8601 times with a zone and plain dates become the stored timestamp format', () => {
    expect(parseTimeSpec('2026-11-25T10:00:00Z', NOW)).toBe('2026-11-25T10:00:00.000Z')
    expect(parseTimeSpec('2026-11-25T10:00Z', NOW)).toBe('2026-11-25T10:00:00.000Z')
    expect(parseTimeSpec('2026-11-25T11:30:00.250+01:00', NOW)).toBe('2026-11-25T10:30:00.250Z')
    expect(parseTimeSpec('2026-11-25T05:30:00-0500', NOW)).toBe('2026-11-25T10:30:00.000Z')
    expect(parseTimeSpec('2026-11-25', NOW)).toBe('2026-11-25T00:00:00.000Z')
    // Rows are stamped to the millisecond: a part of one makes it the next (as since, a row at .713
    // is before .7131; as until, before it too), and zeros past it change nothing.
    expect(parseTimeSpec('2026-11-25T10:00:19.7131Z', NOW)).toBe('2026-11-25T10:00:19.714Z')
    expect(parseTimeSpec('2026-11-25T10:00:19.713000000Z', NOW)).toBe('2026-11-25T10:00:19.713Z')
    expect(parseTimeSpec('2026-11-25T23:59:59.9995Z', NOW)).toBe('2026-11-26T00:00:00.000Z')
    // The years taken stay 1970-9999, whatever the last millisecond does.
    expect(parseTimeSpec('9999-12-31T23:59:59.9999Z', NOW)).toBe('9999-12-31T23:59:59.999Z')
    expect(parseTimeSpec('1969-12-31T23:59:59.9999Z', NOW)).toBeNull()
    // A "+" sent unencoded in a query string arrives as a space.
    expect(parseTimeSpec('2026-11-25T11:30:00 01:00', NOW)).toBe('2026-11-25T10:30:00.000Z')
  })

  test('anything else is refused rather than guessed', () => {
    for (const bad of [
      '', ' ', 'now', 'yesterday', '1', 'h', '1x', '-1h', '1.5h', '1 h', '1h30m', '99999999999d', '3651d',
      '2026-11-25T10:00:00', // no zone: local time would be a guess
      '2026-02-31', '2026-13-01', '2026-11-25T25:00:00Z', '2026-11-25T10:61:00Z', '26-11-25',
      "1h' OR '1'='1", '1h; DROP TABLE request_log',
    ]) {
      expect(parseTimeSpec(bad, NOW), bad).toBeNull()
    }
  })
})
