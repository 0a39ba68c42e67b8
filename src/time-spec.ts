/**
 * Points in time as operators type them: an ISO-8601 time with a zone
 * (`2026-11-25T12:00:00Z`, `2026-11-25T13:00+01:00`), a date (`2026-11-25`,
 * midnight UTC), or a duration back from now (`90s`, `15m`, `1h`, `7d`).
 * Normalized to the stored timestamp format, so they compare as text.
 */
import { isoTime } from './clock.ts'

const DURATION = /^(\d{1,9})(s|m|h|d)$/
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const
const DATE = /^\d{4}-\d{2}-\d{2}$/
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/
/** Ten years: longer durations are almost certainly a typo. */
export const MAX_DURATION_DAYS = 3650
const MAX_DURATION_MS = MAX_DURATION_DAYS * 86_400_000

export const TIME_SPEC_HELP = 'an ISO-8601 time with a zone (2026-11-25T12:00:00Z), a date (2026-11-25) or a duration back from now (90s, 15m, 1h, 7d)'

/** Parses a duration such as `15m` into ms; null if it is not one. */
export function parseDuration(text: string): number | null {
  const match = DURATION.exec(text)
  if (!match) return null
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]
  return ms <= MAX_DURATION_MS ? ms : null
}

/** Whether `text` is a duration (`90s`, `400000d`) longer than the longest one taken (MAX_DURATION_DAYS). */
export function durationTooLong(text: string): boolean {
  const match = /^(\d+)(s|m|h|d)$/.exec(text.trim())
  return match !== null && Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] > MAX_DURATION_MS
}

/** A time whose zone lost its `+`: sent unencoded in a query string (`?since=…T12:00+01:00`), a `+` arrives as a space. */
const PLUS_AS_SPACE = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?) (\d{2}:?\d{2})$/

/** The time `text` names, as stored (`2026-11-25T12:00:00.000Z`), or null if it names none. */
export function parseTimeSpec(text: string, nowMs: number): string | null {
  const trimmed = text.trim().replace(PLUS_AS_SPACE, '$1+$2')
  const duration = parseDuration(trimmed)
  if (duration !== null) return isoTime(nowMs - duration)
  if (!DATE.test(trimmed) && !DATE_TIME.test(trimmed)) return null
  if (!dateExists(trimmed)) return null
  const parsed = Date.parse(trimmed)
  if (!Number.isFinite(parsed)) return null
  const year = new Date(parsed).getUTCFullYear()
  if (year < 1970 || year > 9999) return null
  const ms = parsed + (finerThanMs(trimmed) ? 1 : 0)
  return isoTime(new Date(ms).getUTCFullYear() > 9999 ? parsed : ms)
}

/**
 * Whether a time gives a part of a millisecond (`…:19.7131Z`), which Date.parse drops. Rows are
 * stamped to the millisecond, so such a time is taken as the next millisecond: as `since`, rows at
 * `.713` are before it and `.714` after; as `until` (exclusive), `.713` is before it. Cut down
 * instead, it let in a row before `since` and left out one before `until`.
 */
function finerThanMs(text: string): boolean {
  const fraction = /\.(\d+)/.exec(text)?.[1] ?? ''
  return /[1-9]/.test(fraction.slice(3))
}

/** Whether the calendar date (and clock time, if any) at the start of `text` exists: no 2026-02-31, no 25:00. */
function dateExists(text: string): boolean {
  const [y, m, d] = [Number(text.slice(0, 4)), Number(text.slice(5, 7)), Number(text.slice(8, 10))]
  if (m < 1 || m > 12 || d < 1 || new Date(Date.UTC(y, m - 1, d)).getUTCDate() !== d) return false
  if (text.length === 10) return true
  const [hh, mm, ss] = [Number(text.slice(11, 13)), Number(text.slice(14, 16)), text[16] === ':' ? Number(text.slice(17, 19)) : 0]
  return hh <= 23 && mm <= 59 && ss <= 59
}
