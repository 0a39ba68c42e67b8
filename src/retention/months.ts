/** UTC months as `YYYY-MM`, the unit of archive files. */

const ISO_PREFIX = /^(\d{4})-(\d{2})-(\d{2})T/

/** The UTC month of an epoch-ms instant: `2026-11`. */
export function monthOfMs(ms: number): string {
  return new Date(ms).toISOString().slice(0, 7)
}

/** The month of a row timestamp (ISO-8601 UTC), or null if it is not one. */
export function monthOfTimestamp(timestamp: string): string | null {
  return ISO_PREFIX.test(timestamp) ? timestamp.slice(0, 7) : null
}

/** Epoch ms of the first instant of `YYYY-MM`. */
export function monthStartMs(month: string): number {
  const [year, mon] = month.split('-').map(Number) as [number, number]
  return Date.UTC(year, mon - 1, 1)
}

/** Epoch ms of the first instant of the month after `YYYY-MM`. */
export function nextMonthStartMs(month: string): number {
  const [year, mon] = month.split('-').map(Number) as [number, number]
  return Date.UTC(year, mon, 1)
}

/** Whether `YYYY-MM` overlaps [sinceMs, untilMs] (either end open when undefined). */
export function monthOverlaps(month: string, sinceMs?: number, untilMs?: number): boolean {
  return (untilMs === undefined || monthStartMs(month) <= untilMs) && (sinceMs === undefined || nextMonthStartMs(month) > sinceMs)
}

/** GLOB pattern for timestamps that are ISO-8601 (the only ones that can be filed by month). */
export const ISO_TIMESTAMP_GLOB = '[0-9][0-9][0-9][0-9]-[0-1][0-9]-[0-3][0-9]T*'
