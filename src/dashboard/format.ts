/** How the dashboard writes numbers, money, durations and times (UTC, so every viewer reads the same). */

export const NONE = '—'

/** 850 ms, 1.25 s, 20 s; a dash for null. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return NONE
  if (Math.round(ms) < 1000) return `${Math.round(ms)} ms`
  if (ms < 10_000) return `${trim((ms / 1000).toFixed(2))} s`
  return `${Math.round(ms / 1000)} s`
}

/** A fraction as a percentage with one decimal: 0.8571 → 85.7%, 1 → 100%; never rounded up to 100% or down to 0%. */
export function formatRate(rate: number | null | undefined): string {
  if (rate === null || rate === undefined) return NONE
  const fixed = (rate * 100).toFixed(1)
  if (rate < 1 && fixed === '100.0') return '>99.9%'
  if (rate > 0 && fixed === '0.0') return '<0.1%'
  return `${trim(fixed)}%`
}

/** 12,345 */
export function formatCount(n: number | null | undefined): string {
  return n === null || n === undefined ? NONE : n.toLocaleString('en-US')
}

/** $0.0115, $12.34; a dash for an unknown cost. */
export function formatUsd(usd: number | null | undefined): string {
  if (usd === null || usd === undefined) return NONE
  if (usd === 0) return '$0'
  if (usd >= 1) return `$${usd.toFixed(2)}`
  if (usd < 0.0001) return '<$0.0001'
  return `$${Number(usd.toPrecision(3))}`
}

const STORED_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z$/

/**
 * 2026-11-25 12:04:05, in UTC. A timestamp stamped in another form (an
 * offset, by hand) is converted to UTC; one that is not a time at all, or
 * past year 9999, is shown as stored.
 */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return NONE
  if (STORED_UTC.test(iso)) return iso.slice(0, 19).replace('T', ' ')
  const ms = Date.parse(iso)
  if (!Number.isFinite(ms)) return iso
  const utc = new Date(ms).toISOString()
  return STORED_UTC.test(utc) ? utc.slice(0, 19).replace('T', ' ') : iso
}

/** A bucket's start for an axis: 12:05 for buckets under a day apart from the first, else 11-25 12:00. */
export function formatTick(iso: string, withDate: boolean): string {
  return withDate ? `${iso.slice(5, 10)} ${iso.slice(11, 16)}` : iso.slice(11, 16)
}

/** 42 s, 5 min, 3 h, 2 d */
export function formatSilence(seconds: number): string {
  if (seconds < 120) return `${seconds} s`
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`
  return `${Math.round(seconds / 86_400)} d`
}

/** The first 12 hex digits of a hash (the whole one goes in a title). */
export function shortHash(hash: string | null | undefined): string {
  return hash ? (hash.length > 12 ? `${hash.slice(0, 12)}…` : hash) : NONE
}

function trim(fixed: string): string {
  return fixed.includes('.') ? fixed.replace(/\.?0+$/, '') : fixed
}
