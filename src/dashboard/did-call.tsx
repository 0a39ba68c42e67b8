/** @jsxImportSource hono/jsx */
/** The answer to "did agent X call provider Y?": a plain yes or no, with the counts behind it. */
import type { FC } from 'hono/jsx'
import type { DidCallAnswer } from '../telemetry/did-call.ts'
import { formatTime } from './format.ts'

export const DidCallAnswerView: FC<{ answer: DidCallAnswer }> = ({ answer: a }) => {
  const window = `since ${formatTime(a.since)} UTC${a.until !== undefined ? ` until ${formatTime(a.until)} UTC` : ''}`
  const statuses = Object.entries(a.by_status).map(([status, n]) => `${n} ${status}`)
  return (
    <div class={`answer ${a.called ? 'yes' : 'no'}`} data-called={String(a.called)}>
      <p class="verdict">{a.called ? 'Yes' : 'No'}</p>
      <p>
        {a.called ? (
          <>
            Agent <strong>{a.agent}</strong> called provider <strong>{a.provider}</strong>
            {a.model !== undefined && ` (model ${a.model})`} {a.calls} time{a.calls === 1 ? '' : 's'} {window} ({statuses.join(', ')}); last call at{' '}
            {formatTime(a.last_call_at)} UTC.
          </>
        ) : (
          <>
            Agent <strong>{a.agent}</strong> made no call to provider <strong>{a.provider}</strong>
            {a.model !== undefined && ` (model ${a.model})`} {window}.
          </>
        )}
      </p>
      {a.fallback_rows > 0 && (
        <p class="muted">
          {a.fallback_rows} fallback row{a.fallback_rows === 1 ? '' : 's'} named {a.provider}; a fallback row is a step moved to, skipped or not called, not a call.
        </p>
      )}
    </div>
  )
}
