/** @jsxImportSource hono/jsx */
/** The deadman panel: the router's own config (hash, last known good, last rollback) and every agent's heartbeat. */
import type { FC } from 'hono/jsx'
import type { AgentView } from '../deadman/agents.ts'
import type { LogRow } from '../telemetry/queries.ts'
import { NONE, formatSilence, formatTime, shortHash } from './format.ts'

export interface DeadmanProps {
  router: { name: string; configHash: string; lastKnownGood: string | null; lastRollback: LogRow | null }
  agents: AgentView[]
  /** Agents not watched that were heard from less recently than those shown, left out. */
  hidden?: number
}

export const DeadmanPanel: FC<DeadmanProps> = ({ router, agents, hidden = 0 }) => {
  const good = router.lastKnownGood !== null && router.lastKnownGood === router.configHash
  return (
    <div>
      <dl class="facts router">
        <dt>Router</dt>
        <dd>{router.name}</dd>
        <dt>Config hash</dt>
        <dd>
          <code title={router.configHash} data-config-hash>
            {shortHash(router.configHash)}
          </code>
        </dd>
        <dt>Last known good</dt>
        <dd>
          {router.lastKnownGood === null ? (
            <span class="muted">none yet</span>
          ) : (
            <>
              <code title={router.lastKnownGood} data-last-known-good>
                {shortHash(router.lastKnownGood)}
              </code>{' '}
              <span class={good ? 'ok' : 'warn'}>{good ? '(running)' : '(not the running config)'}</span>
            </>
          )}
        </dd>
        <dt>Last rollback</dt>
        <dd>{router.lastRollback ? `${formatTime(router.lastRollback.timestamp)} UTC: ${router.lastRollback.error_message ?? ''}` : <span class="muted">none</span>}</dd>
      </dl>
      {agents.length ? (
        <div class="scroll">
          <table class="agents">
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">State</th>
                <th scope="col">Last beat (UTC)</th>
                <th scope="col">Silence</th>
                <th scope="col">Config</th>
                <th scope="col">Last rollback</th>
              </tr>
            </thead>
            <tbody>
              {agents.map((a) => (
                <tr data-agent={a.agent}>
                  <th scope="row">
                    {a.agent}
                    {!a.watched && <span class="muted"> (not watched)</span>}
                  </th>
                  <td data-col="state">
                    <span class={`state st-${a.state}`}>{a.state.replace('_', ' ')}</span>
                  </td>
                  <td data-col="last_beat">{a.last_beat_at ? formatTime(a.last_beat_at) : 'never'}</td>
                  <td>
                    {formatSilence(a.silence_s)}
                    {a.max_silence_s !== null && <span class="muted"> / {formatSilence(a.max_silence_s)}</span>}
                  </td>
                  <td>
                    <code title={a.config_hash ?? ''}>{shortHash(a.config_hash)}</code>
                  </td>
                  <td data-col="last_rollback">
                    {a.last_rollback ? `${formatTime(a.last_rollback.timestamp)}: ${a.last_rollback.error_message ?? ''}` : NONE}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          {hidden > 0 && (
            <p class="muted" data-hidden-agents={hidden}>
              {hidden} more agent(s), not watched, heard from less recently: <code>GET /deadman</code> lists every one.
            </p>
          )}
        </div>
      ) : (
        <p class="empty">No agent is watched (deadman.agents) and none has sent a heartbeat.</p>
      )}
    </div>
  )
}
