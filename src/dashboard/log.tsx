/** @jsxImportSource hono/jsx */
/** The request log panel: the newest rows matching the filters; each row opens its request's story. */
import type { FC } from 'hono/jsx'
import type { LogRow } from '../telemetry/queries.ts'
import { NONE, formatCount, formatMs, formatTime } from './format.ts'

export const StatusBadge: FC<{ status: string }> = ({ status }) => <span class={`status s-${status}`}>{status}</span>

export const LogTable: FC<{ rows: LogRow[]; limit: number }> = ({ rows, limit }) => {
  if (!rows.length) return <p class="empty">No rows match.</p>
  return (
    <div class="scroll">
      <table class="log">
        <thead>
          <tr>
            <th scope="col">Time (UTC)</th>
            <th scope="col">Agent</th>
            <th scope="col">Provider</th>
            <th scope="col" class="wide">
              Model
            </th>
            <th scope="col">Status</th>
            <th scope="col">Latency</th>
            <th scope="col">Tokens</th>
            <th scope="col" class="wide">
              Message
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr data-story={r.id} data-status={r.status} tabindex={0} title={`row ${r.id}: open its request`}>
              <td class="time">
                <span class="date">{formatTime(r.timestamp).slice(0, 11)}</span>
                {formatTime(r.timestamp).slice(11)}
              </td>
              <td data-col="agent">{r.agent_name}</td>
              <td data-col="provider">{r.provider}</td>
              <td class="wide model">{r.model}</td>
              <td>
                <StatusBadge status={r.status} />
              </td>
              <td>{formatMs(r.latency_ms)}</td>
              <td>{r.tokens_in === null && r.tokens_out === null ? NONE : `${formatCount(r.tokens_in)} / ${formatCount(r.tokens_out)}`}</td>
              <td class="wide message">{r.error_message ?? ''}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p class="muted">
        {rows.length < limit ? `${rows.length} rows.` : `The newest ${limit} rows; narrow the filters to see older ones.`}
      </p>
    </div>
  )
}
