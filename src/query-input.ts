/**
 * The parameters of the read side (`/requests`, `/requests/:id`,
 * `/requests/did-call`, `/stats` and the matching CLI commands), given as
 * strings, validated into typed queries. Every problem is reported at once
 * with the parameter's name as its path (400 invalid_request over HTTP,
 * exit 2 on the CLI).
 */
import * as v from 'valibot'
import { Name } from './config-schema.ts'
import { InvalidRequestError, type Issue } from './errors.ts'
import type { DidCallQuery, PageKey, RequestFilter } from './telemetry/queries.ts'
import { STATUSES } from './telemetry/schema.ts'
import { type SeriesQuery, bucketCount, bucketFitsSlices } from './telemetry/series.ts'
import { STATS_BY } from './telemetry/stats.ts'
import type { StatsQuery } from './telemetry/stats-window.ts'
import { MAX_DURATION_DAYS, TIME_SPEC_HELP, durationTooLong, parseDuration, parseTimeSpec } from './time-spec.ts'
import { AgentName, toIssues } from './validation.ts'

export const DEFAULT_LIMIT = 100
export const MAX_LIMIT = 1000
export const EXPORT_FORMATS = ['json', 'ndjson', 'csv'] as const
export type ExportFormat = (typeof EXPORT_FORMATS)[number]

const Text = v.pipe(
  v.string(),
  v.minLength(1, 'must not be empty'),
  v.maxLength(256, 'is longer than 256 characters'),
  v.regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters'),
)
const When = v.pipe(v.string(), v.maxLength(64, 'is too long'))
const Limit = v.pipe(
  v.string(),
  v.regex(/^\d{1,4}$/, `must be a whole number from 1 to ${MAX_LIMIT}`),
  v.transform(Number),
  v.minValue(1, `must be a whole number from 1 to ${MAX_LIMIT}`),
  v.maxValue(MAX_LIMIT, `must be a whole number from 1 to ${MAX_LIMIT}`),
)
const Cursor = v.pipe(v.string(), v.maxLength(200, 'is not a cursor from a previous page'))
/** `archives=1`: search the archive files of the period too (the CLI's `--archives`). */
const Archives = v.optional(v.picklist(['0', '1'], 'must be 1 (also search the archive files) or 0'))

const FilterFields = {
  agent: v.optional(AgentName),
  provider: v.optional(Name),
  model: v.optional(Text),
  since: v.optional(When),
  until: v.optional(When),
}

const ListSchema = v.strictObject({
  ...FilterFields,
  status: v.optional(v.picklist(STATUSES, `must be one of: ${STATUSES.join(', ')}`)),
  chain: v.optional(Name),
  request_id: v.optional(Text),
  limit: v.optional(Limit),
  cursor: v.optional(Cursor),
  format: v.optional(v.picklist(EXPORT_FORMATS, `must be one of: ${EXPORT_FORMATS.join(', ')}`)),
  archives: Archives,
})

const StorySchema = v.strictObject({ archives: Archives })

const DidCallSchema = v.strictObject({
  ...FilterFields,
  agent: AgentName,
  provider: Name,
  archives: Archives,
})

const StatsSchema = v.strictObject({
  since: v.optional(When),
  until: v.optional(When),
  by: v.optional(v.picklist(STATS_BY, `must be one of: ${STATS_BY.join(', ')}`)),
  agent: v.optional(AgentName),
  archives: Archives,
})

const SpanSchema = v.strictObject({
  since: v.optional(When),
  until: v.optional(When),
  archives: Archives,
})

const SeriesSchema = v.strictObject({ ...SpanSchema.entries, bucket: v.optional(When) })

/** A series has at most this many buckets. */
const MAX_BUCKETS = 2000
/** Without `bucket`, the smallest of these (seconds) that cuts the window into at most DEFAULT_BUCKETS. */
const BUCKET_CHOICES_S = [60, 600, 1800, 3600, 7200, 21_600, 86_400]
const DEFAULT_BUCKETS = 300

/** Whether a read searches the archive files too. */
export interface ArchiveScope {
  archives: boolean
}

export interface ListInput extends ArchiveScope {
  filter: RequestFilter
  /** Rows per page; for an export, the most rows to send (undefined: all). */
  limit: number | undefined
  before: PageKey | undefined
  format: ExportFormat
}

/** Parses `/requests` parameters. */
export function parseListInput(params: Record<string, string>, nowMs: number): ListInput {
  const issues: Issue[] = []
  const input = check(ListSchema, params, issues)
  const range = timeRange(params, nowMs, issues)
  const before = params.cursor === undefined ? undefined : decodeCursor(params.cursor)
  if (before === null) issues.push({ path: 'cursor', message: 'is not a cursor from a previous page' })
  fail('invalid /requests parameters', issues)
  return {
    filter: {
      agent: input!.agent,
      provider: input!.provider,
      model: input!.model,
      status: input!.status,
      chain: input!.chain,
      requestId: input!.request_id,
      ...range,
    },
    limit: input!.limit,
    before: before ?? undefined,
    format: input!.format ?? 'json',
    archives: input!.archives === '1',
  }
}

/** A query that takes no parameters: any given is a 400 naming it, as for the others. */
export function parseNoInput(params: Record<string, string>, what: string): void {
  fail(what, Object.keys(params).map((path) => ({ path, message: 'is not a parameter of this query (it takes none)' })))
}

/** Parses `/requests/:id` parameters (only `archives`). */
export function parseStoryInput(params: Record<string, string>): ArchiveScope {
  const issues: Issue[] = []
  const input = check(StorySchema, params, issues)
  fail('invalid /requests/:id parameters', issues)
  return { archives: input!.archives === '1' }
}

/** Parses `did-call` parameters; `since` defaults to 24 hours back, `agent` to `ownAgent` (the agent a token names). */
export function parseDidCallInput(params: Record<string, string>, nowMs: number, ownAgent?: string): DidCallQuery & ArchiveScope {
  const issues: Issue[] = []
  const input = check(DidCallSchema, ownAgent === undefined ? params : { agent: ownAgent, ...params }, issues)
  const range = timeRange(params, nowMs, issues, { since: '24h' })
  fail('invalid did-call parameters', issues)
  return { agent: input!.agent, provider: input!.provider, model: input!.model, since: range.since!, until: range.until, archives: input!.archives === '1' }
}

/** Parses `stats` parameters: `since` defaults to 24 hours back, `until` to now, `by` to provider. */
export function parseStatsInput(params: Record<string, string>, nowMs: number): StatsQuery & ArchiveScope {
  const issues: Issue[] = []
  const input = check(StatsSchema, params, issues)
  const range = timeRange(params, nowMs, issues, { since: '24h', until: '0s' })
  fail('invalid stats parameters', issues)
  return { since: range.since!, until: range.until!, by: input!.by ?? 'provider', agent: input!.agent, archives: input!.archives === '1' }
}

/** Parses `/stats/series` parameters: `since` defaults to 24 hours back, `until` to now, `bucket` to fit about 300 buckets. */
export function parseSeriesInput(params: Record<string, string>, nowMs: number): SeriesQuery & { archives: boolean } {
  const issues: Issue[] = []
  const input = check(SeriesSchema, params, issues)
  const range = timeRange(params, nowMs, issues, { since: '24h', until: '0s' })
  let bucketS: number | undefined
  if (input?.bucket !== undefined) {
    const ms = parseDuration(input.bucket)
    if (ms === null || !bucketFitsSlices(ms / 1000)) {
      issues.push({ path: 'bucket', message: 'must divide 10 minutes (30s, 1m, 2m, 5m) or be a whole number of 10 minutes (10m, 30m, 1h, 1d)' })
    } else bucketS = ms / 1000
  }
  const { since, until } = range
  if (since && until && since < until) {
    bucketS ??= BUCKET_CHOICES_S.find((s) => bucketCount(since, until, s) <= DEFAULT_BUCKETS) ?? BUCKET_CHOICES_S.at(-1)!
    if (bucketCount(since, until, bucketS) > MAX_BUCKETS) issues.push({ path: 'bucket', message: `cuts the window into more than ${MAX_BUCKETS} buckets; choose a larger one` })
  }
  fail('invalid series parameters', issues)
  return { since: since!, until: until!, bucketS: bucketS!, archives: input?.archives === '1' }
}

/** Parses a time window (`since` defaults to 24 hours back, `until` to now), for `/stats/fallbacks`. */
export function parseSpanInput(params: Record<string, string>, nowMs: number): { since: string; until: string; archives: boolean } {
  const issues: Issue[] = []
  const input = check(SpanSchema, params, issues)
  const range = timeRange(params, nowMs, issues, { since: '24h', until: '0s' })
  fail('invalid window parameters', issues)
  return { since: range.since!, until: range.until!, archives: input?.archives === '1' }
}

function check<S extends v.StrictObjectSchema<v.ObjectEntries, undefined>>(schema: S, params: Record<string, string>, issues: Issue[]): v.InferOutput<S> | undefined {
  const result = v.safeParse(schema, params)
  if (result.success) return result.output
  const found = toIssues(result.issues)
  result.issues.forEach((issue, i) => {
    // valibot words a missing or unknown key as "Invalid key: ..."; say which it is.
    if (issue.kind === 'schema' && issue.type === 'strict_object') {
      found[i]!.message = issue.received === 'undefined' ? 'is required' : `is not a parameter of this query (known: ${Object.keys(schema.entries as object).join(', ')})`
    }
  })
  issues.push(...found)
  return undefined
}

/** What a default of timeRange stands for, for a message about a bound that was not given. */
const DEFAULT_WORDS: Record<string, string> = { '24h': '24 hours back', '0s': 'now' }

/**
 * `since` and `until` as stored timestamps, each from `params` or else from `defaults`. A bound the
 * caller did not give is not blamed for the order: `since=0s` alone is told it must be before now.
 */
function timeRange(params: Record<string, string | undefined>, nowMs: number, issues: Issue[], defaults: { since?: string; until?: string } = {}): { since?: string; until?: string } {
  const out: { since?: string; until?: string } = {}
  for (const key of ['since', 'until'] as const) {
    const text = params[key] ?? defaults[key]
    if (text === undefined) continue
    const at = text.length <= 64 ? parseTimeSpec(text, nowMs) : null
    if (at !== null) out[key] = at
    else if (durationTooLong(text)) issues.push({ path: key, message: `must be at most ${MAX_DURATION_DAYS}d (ten years) back from now` })
    else issues.push({ path: key, message: `must be ${TIME_SPEC_HELP}` })
  }
  if (out.since && out.until && out.since >= out.until) {
    const unsaid = (key: 'since' | 'until') => (params[key] === undefined ? `, which is ${DEFAULT_WORDS[defaults[key]!] ?? defaults[key]} when not given` : '')
    if (params.until === undefined) issues.push({ path: 'since', message: `must be before until${unsaid('until')} (${out.until})` })
    else issues.push({ path: 'until', message: `must be after since${unsaid('since')} (${out.since})` })
  }
  return out
}

function fail(what: string, issues: Issue[]): void {
  if (!issues.length) return
  // One entry per path: the schema and the time check may both object to the same parameter.
  const unique = issues.filter((issue, i) => issues.findIndex((j) => j.path === issue.path) === i)
  throw new InvalidRequestError(`${what}: ${unique.map((i) => `${i.path || '(query)'}: ${i.message}`).join('; ')}`, unique)
}

/** The opaque `next_cursor`: base64url of `<timestamp>/<id>`. */
export function encodeCursor(key: PageKey): string {
  return Buffer.from(`${key.timestamp}/${key.id}`).toString('base64url')
}

function decodeCursor(text: string): PageKey | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(text)) return null
  // The timestamp is the page's last row's, as stored: usually ISO-8601 with milliseconds, but a row
  // written by hand or by another clock may hold any text (`2026-11-25 09:30:00`), and its page must
  // still have a next one. It is only ever a bound parameter.
  const match = /^([^\u0000-\u001f]{1,150})\/([1-9]\d{0,15})$/.exec(Buffer.from(text, 'base64url').toString('utf8'))
  if (!match) return null
  const id = Number(match[2])
  return Number.isSafeInteger(id) ? { timestamp: match[1]!, id } : null
}
