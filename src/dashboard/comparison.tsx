/** @jsxImportSource hono/jsx */
/** The provider comparison panel: one row per provider in the window, and the three rankings. */
import type { FC } from 'hono/jsx'
import type { RankEntry, StatsGroup, StatsResult } from '../telemetry/stats.ts'
import { NONE, formatCount, formatMs, formatRate, formatUsd } from './format.ts'
import { colourOf } from './palette.ts'

export interface ComparisonProps {
  stats: StatsResult
  /** Fallbacks out of each provider in the same window. */
  fallbacksOut: Map<string, number>
  providers: readonly string[]
  windowName: string
}

const COLUMNS: { key: string; title: string; cell: (g: StatsGroup, out: number) => string }[] = [
  { key: 'attempts', title: 'Attempts', cell: (g) => formatCount(g.attempts) },
  { key: 'success_rate', title: 'Attempt success', cell: (g) => formatRate(g.success_rate) },
  { key: 'requests', title: 'Requests', cell: (g) => formatCount(g.requests) },
  { key: 'request_success_rate', title: 'Request success', cell: (g) => formatRate(g.request_success_rate) },
  { key: 'p50_ms', title: 'p50', cell: (g) => formatMs(g.p50_ms) },
  { key: 'p95_ms', title: 'p95', cell: (g) => formatMs(g.p95_ms) },
  { key: 'tokens_in', title: 'Tokens in', cell: (g) => formatCount(g.tokens_in) },
  { key: 'tokens_out', title: 'Tokens out', cell: (g) => formatCount(g.tokens_out) },
  { key: 'cost_usd', title: 'Cost', cell: (g) => formatUsd(g.cost_usd) },
  { key: 'fallbacks_out', title: 'Fallbacks out', cell: (_, out) => formatCount(out) },
]

export const Comparison: FC<ComparisonProps> = ({ stats, fallbacksOut, providers, windowName }) => {
  // A provider every request skipped (no API key, cooling down) made no attempt, so it has no stats
  // group: it still gets a row, with the fallbacks out of it, since that is the provider to look at.
  const called = new Set(stats.groups.map((g) => String(g.provider)))
  const skippedOnly = [...fallbacksOut.keys()].filter((p) => !called.has(p)).sort()
  if (!stats.groups.length && !skippedOnly.length) return <p class="empty">No calls in the last {windowName}.</p>
  const outOf = (provider: string) => fallbacksOut.get(provider) ?? 0
  const rows = [
    ...stats.groups.map((g) => ({ provider: String(g.provider), cells: COLUMNS.map((c) => c.cell(g, outOf(String(g.provider)))) })),
    ...skippedOnly.map((provider) => ({
      provider,
      cells: COLUMNS.map((c) => (c.key === 'fallbacks_out' ? formatCount(outOf(provider)) : c.key === 'attempts' ? '0' : NONE)),
    })),
  ]
  return (
    <div>
      <div class="scroll">
        <table class="numbers">
          <thead>
            <tr>
              <th scope="col">Provider</th>
              {COLUMNS.map((c) => (
                <th scope="col">{c.title}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr data-provider={row.provider}>
                <th scope="row">
                  <i class={`swatch ${colourOf(providers, row.provider)}`} /> {row.provider}
                </th>
                {COLUMNS.map((c, i) => (
                  <td data-col={c.key}>{row.cells[i]}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <div class="rankings">
        <Ranking id="fastest" title="Fastest" hint="by p50 latency" entries={stats.rankings.fastest} value={(v) => formatMs(v)} />
        <Ranking id="most_reliable" title="Most reliable" hint="by success of its calls" entries={stats.rankings.most_reliable} value={formatRate} />
        <Ranking id="cheapest" title="Cheapest" hint="USD per million tokens" entries={stats.rankings.cheapest} value={(v) => `$${v.toFixed(2)}`} />
      </div>
    </div>
  )
}

const Ranking: FC<{ id: string; title: string; hint: string; entries: RankEntry[]; value: (v: number) => string }> = (props) => (
  <section class="ranking" data-ranking={props.id}>
    <h3>
      {props.title} <span class="muted">{props.hint}</span>
    </h3>
    {props.entries.length ? (
      <ol>
        {props.entries.map((e) => (
          <li>
            <span class="name">{String(e.provider)}</span> <span class="value">{props.value(e.value)}</span>
          </li>
        ))}
      </ol>
    ) : (
      <p class="empty">Not enough data.</p>
    )}
  </section>
)
