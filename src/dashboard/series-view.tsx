/** @jsxImportSource hono/jsx */
/** The time-series panel: attempts per minute by status, and p50/p95 latency per provider. */
import type { FC } from 'hono/jsx'
import { ATTEMPT_STATUSES } from '../telemetry/schema.ts'
import type { Series } from '../telemetry/series.ts'
import { Lines, StackedBars } from './charts.tsx'
import { formatMs, formatTick } from './format.ts'
import { colourOf } from './palette.ts'

const perMinuteText = (v: number) => (v >= 10 || v === 0 ? String(Math.round(v)) : String(Number(v.toPrecision(2))))

/**
 * The minutes of each bucket that the window covers: a whole bucket's
 * length, less for the first (cut by `since`) and the one still running
 * (cut by now), so a surge happening now shows at its rate, not spread over
 * a bucket that is mostly still to come. At least a minute (or the whole
 * bucket, if shorter), so a bucket seconds old does not spike.
 */
function coveredMinutes(series: Pick<Series, 'since' | 'until' | 'bucket_s' | 'buckets'>, nowMs: number): number[] {
  const bucketMs = series.bucket_s * 1000
  const from = Date.parse(series.since)
  const to = Math.min(Date.parse(series.until), nowMs)
  return series.buckets.map((start) => {
    const startMs = Date.parse(start)
    const covered = Math.min(startMs + bucketMs, to) - Math.max(startMs, from)
    return Math.max(covered, Math.min(bucketMs, 60_000)) / 60_000
  })
}

export const SeriesView: FC<{ series: Series; providers: readonly string[]; nowMs: number }> = ({ series, providers, nowMs }) => {
  const minutes = series.bucket_s / 60
  const bucketName = minutes >= 60 ? `${minutes / 60} h` : `${minutes} min`
  const covered = coveredMinutes(series, nowMs)
  const layers = ATTEMPT_STATUSES.map((status) => ({ name: status, cls: `s-${status}`, values: series.attempts[status].map((n, i) => n / covered[i]!) }))
  const span = (i: number) => (covered[i]! < minutes ? `${bucketName}, ${perMinuteText(covered[i]!)} min of it in the window` : bucketName)
  const describe = (i: number) =>
    `${formatTick(series.buckets[i]!, true)} UTC (${span(i)}): ` + ATTEMPT_STATUSES.map((s) => `${series.attempts[s][i]} ${s}`).join(', ')
  const lines = series.latency.flatMap((p) => [
    { name: `${p.provider} p50`, cls: colourOf(providers, p.provider), values: p.p50_ms },
    { name: `${p.provider} p95`, cls: colourOf(providers, p.provider), dashed: true, values: p.p95_ms },
  ])
  const total = ATTEMPT_STATUSES.reduce((sum, s) => sum + series.attempts[s].reduce((a, b) => a + b, 0), 0)
  return (
    <div class="charts">
      <figure>
        <figcaption>
          Attempts per minute by status <span class="muted">({bucketName} buckets, {total} attempts)</span>
        </figcaption>
        <StackedBars label="attempts per minute by status" buckets={series.buckets} layers={layers} unit={perMinuteText} describe={describe} />
        <ul class="legend">
          {ATTEMPT_STATUSES.map((s) => (
            <li>
              <i class={`swatch s-${s}`} /> {s}
            </li>
          ))}
        </ul>
      </figure>
      <figure>
        <figcaption>
          Latency of successful attempts by provider <span class="muted">(p50 solid, p95 dashed)</span>
        </figcaption>
        {series.latency.length ? (
          <Lines label="latency percentiles by provider" buckets={series.buckets} lines={lines} unit={(v) => formatMs(v)} />
        ) : (
          <p class="empty">No successful attempts in this window.</p>
        )}
        <ul class="legend">
          {series.latency.map((p) => (
            <li>
              <i class={`swatch ${colourOf(providers, p.provider)}`} /> {p.provider}
            </li>
          ))}
        </ul>
      </figure>
    </div>
  )
}
