/**
 * The dashboard fragments' parameters: the window (1h, 24h, 7d), the log's
 * filters, a row id. Problems are 400s naming the parameter, as on the
 * read API.
 */
import * as v from 'valibot'
import { isoTime } from '../clock.ts'
import { InvalidRequestError } from '../errors.ts'
import { type ListInput, parseListInput } from '../query-input.ts'

/** Each window and the bucket its time series uses (48-84 buckets). */
export const WINDOWS = {
  '1h': { ms: 3_600_000, bucketS: 60 },
  '24h': { ms: 86_400_000, bucketS: 1800 },
  '7d': { ms: 7 * 86_400_000, bucketS: 7200 },
} as const
export type WindowName = keyof typeof WINDOWS
export const WINDOW_NAMES = Object.keys(WINDOWS) as WindowName[]
export const DEFAULT_WINDOW: WindowName = '24h'

/** Rows the log shows. */
export const LOG_ROWS = 50
const LOG_PARAMS = ['agent', 'provider', 'status']

const WindowSchema = v.strictObject({ window: v.optional(v.picklist(WINDOW_NAMES, `must be one of: ${WINDOW_NAMES.join(', ')}`)) })

export interface Window {
  name: WindowName
  since: string
  until: string
  bucketS: number
}

/** `?window=24h` → the window ending now. */
export function parseWindow(params: Record<string, string>, nowMs: number): Window {
  const result = v.safeParse(WindowSchema, params)
  if (!result.success) {
    const unknown = Object.keys(params).filter((k) => k !== 'window')
    const issues = unknown.length
      ? unknown.map((path) => ({ path, message: 'is not a parameter of this view (known: window)' }))
      : [{ path: 'window', message: `must be one of: ${WINDOW_NAMES.join(', ')}` }]
    throw new InvalidRequestError(`invalid window: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, issues)
  }
  const name = result.output.window ?? DEFAULT_WINDOW
  const { ms, bucketS } = WINDOWS[name]
  return { name, since: isoTime(nowMs - ms), until: isoTime(nowMs), bucketS }
}

/** The log's filters (agent, provider, status), checked as `/requests` checks them. */
export function parseLogInput(params: Record<string, string>, nowMs: number): ListInput {
  const unknown = Object.keys(params).filter((k) => !LOG_PARAMS.includes(k))
  if (unknown.length) {
    throw new InvalidRequestError(
      `invalid log filter: ${unknown.join(', ')} (known: ${LOG_PARAMS.join(', ')})`,
      unknown.map((path) => ({ path, message: `is not a filter of the log (known: ${LOG_PARAMS.join(', ')})` })),
    )
  }
  return parseListInput(params, nowMs)
}

/** A row id from the path. */
export function parseRowId(text: string): number {
  if (!/^[1-9]\d{0,15}$/.test(text) || !Number.isSafeInteger(Number(text))) {
    throw new InvalidRequestError(`invalid row id "${text.slice(0, 40)}": must be a positive whole number`, [{ path: 'id', message: 'must be a positive whole number' }])
  }
  return Number(text)
}
