/** @jsxImportSource hono/jsx */
/** A request's story: every row it wrote in order (attempts, fallbacks), who served it and the provider's response id. */
import type { FC } from 'hono/jsx'
import { fallbackKind } from '../telemetry/fallbacks.ts'
import type { LogRow, RequestStory, StoryRow } from '../telemetry/queries.ts'
import { CALL_STATUSES } from '../telemetry/schema.ts'
import { NONE, formatCount, formatMs, formatTime, formatUsd } from './format.ts'
import { StatusBadge } from './log.tsx'

const CALLS = new Set<string>(CALL_STATUSES)

/** What a fallback row says happened, by its kind. */
const FALLBACK_TEXT: Record<ReturnType<typeof fallbackKind>, (provider: string) => string> = {
  move: (provider) => `moved to ${provider}`,
  other: (provider) => `moved to ${provider}`,
  skip: (provider) => `${provider} skipped, no further step`,
  'not-called': () => 'its call was not made',
}

export const Story: FC<{ row: LogRow; story: RequestStory | null }> = ({ row, story }) => {
  if (!story) {
    return (
      <article class="story">
        <h2>Row {row.id}</h2>
        <p class="muted">This row was written without request details (no request_log_meta), so it stands alone.</p>
        <ol class="steps">
          <Step row={row} current />
        </ol>
      </article>
    )
  }
  const served = story.rows.find((r) => r.status === 'success')
  const attempts = story.rows.filter((r) => CALLS.has(r.status)).length
  // Moves to another step only: a last step skipped, or a call never made, moved nowhere (as in /stats/fallbacks).
  const fallbacks = story.rows.filter((r) => r.status === 'fallback' && fallbackKind(r.error_message) === 'move').length
  const inFlight = story.rows.some((r) => r.status === 'pending')
  return (
    <article class="story">
      <h2>Request {story.request_id}</h2>
      <dl class="facts">
        <dt>Agent</dt>
        <dd>{row.agent_name}</dd>
        <dt>Chain</dt>
        <dd>{story.chain}</dd>
        <dt>API</dt>
        <dd>{story.api}</dd>
        <dt>Outcome</dt>
        <dd data-outcome>
          {served ? (
            <>
              served by <strong data-served-by>{served.provider}</strong> ({served.served_model ?? served.model}) in {formatMs(served.latency_ms)}
            </>
          ) : inFlight ? (
            'still in flight'
          ) : (
            <strong class="bad">failed: no provider served it</strong>
          )}
        </dd>
        <dt>Response id</dt>
        <dd data-response-id>{served?.response_id ?? NONE}</dd>
        <dt>Rows</dt>
        <dd>
          {attempts} attempt{attempts === 1 ? '' : 's'}, {fallbacks} fallback{fallbacks === 1 ? '' : 's'}
        </dd>
      </dl>
      <ol class="steps">
        {story.rows.map((r) => (
          <Step row={r} current={r.id === row.id} />
        ))}
      </ol>
    </article>
  )
}

const Step: FC<{ row: LogRow | StoryRow; current?: boolean }> = ({ row, current }) => {
  const meta = 'seq' in row ? row : null
  const where = meta && meta.step !== null ? `step ${meta.step}${meta.try !== null ? `, try ${meta.try}` : ''}` : ''
  return (
    <li class={`step s-${row.status}${current ? ' current' : ''}`} data-row={row.id}>
      <div class="head">
        <StatusBadge status={row.status} /> <strong>{row.provider}</strong> <span class="model">{row.model}</span>
        <span class="muted">
          {' '}
          · row {row.id} · {formatTime(row.timestamp)}
          {where && ` · ${where}`}
        </span>
      </div>
      <div class="detail">
        {row.status === 'fallback' ? (
          <span>{FALLBACK_TEXT[fallbackKind(row.error_message)](row.provider)}</span>
        ) : (
          <span>
            {formatMs(row.latency_ms)}
            {row.tokens_in !== null || row.tokens_out !== null ? ` · ${formatCount(row.tokens_in)} in / ${formatCount(row.tokens_out)} out tokens` : ''}
            {meta?.http_status ? ` · HTTP ${meta.http_status}` : ''}
            {meta?.cost_usd !== null && meta?.cost_usd !== undefined ? ` · ${formatUsd(meta.cost_usd)}` : ''}
            {meta?.response_id ? ` · response ${meta.response_id}` : ''}
          </span>
        )}
      </div>
      {row.error_message && <div class="message">{row.error_message}</div>}
    </li>
  )
}
