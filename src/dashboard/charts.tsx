/** @jsxImportSource hono/jsx */
/**
 * Hand-drawn SVG charts: stacked bars and lines over time buckets. Colours
 * come from CSS classes (no inline styles, so the page's CSP holds); each
 * chart scales to its container's width.
 */
import type { FC } from 'hono/jsx'
import { formatTick } from './format.ts'

const W = 640
const H = 200
// Room for the widest y-axis label ("1.25 s", "500 ms") at the larger type a phone gets (style.css).
const LEFT = 80
const RIGHT = 8
const TOP = 12
const BOTTOM = 26
const PLOT_W = W - LEFT - RIGHT
const PLOT_H = H - TOP - BOTTOM

/** The smallest 1, 2 or 5 times a power of ten at or above `value` (1 for nothing). */
export function niceMax(value: number): number {
  if (!(value > 0)) return 1
  const power = 10 ** Math.floor(Math.log10(value))
  for (const step of [1, 2, 5, 10]) if (step * power >= value) return step * power
  return 10 * power
}

/** Coordinates to a tenth of a unit: plenty at this size, and short in the markup. */
const r = (n: number) => Math.round(n * 10) / 10
const y = (value: number, max: number) => r(TOP + PLOT_H - (value / max) * PLOT_H)

const Axes: FC<{ buckets: string[]; max: number; unit: (v: number) => string }> = ({ buckets, max, unit }) => {
  const withDate = buckets.length > 1 && buckets.at(-1)!.slice(0, 10) !== buckets[0]!.slice(0, 10)
  const ticks = buckets.length ? [...new Set([0, Math.floor((buckets.length - 1) / 2), buckets.length - 1])] : []
  const x = (i: number) => r(LEFT + ((i + 0.5) / buckets.length) * PLOT_W)
  return (
    <g class="axes">
      {[0, max / 2, max].map((v) => (
        <g>
          <line class="grid" x1={LEFT} x2={W - RIGHT} y1={y(v, max)} y2={y(v, max)} />
          <text class="label" x={LEFT - 4} y={y(v, max) + 4} text-anchor="end">
            {unit(v)}
          </text>
        </g>
      ))}
      {ticks.map((i) => (
        <text class="label" x={x(i)} y={H - 6} text-anchor={i === 0 ? 'start' : i === buckets.length - 1 ? 'end' : 'middle'}>
          {formatTick(buckets[i]!, withDate)}
        </text>
      ))}
    </g>
  )
}

export interface BarLayer {
  name: string
  /** CSS class giving the fill. */
  cls: string
  values: number[]
}

/** Bars stacked per bucket, bottom layer first; each bucket's <title> spells out its numbers. */
export const StackedBars: FC<{ label: string; buckets: string[]; layers: BarLayer[]; unit: (v: number) => string; describe: (i: number) => string }> = (props) => {
  const { buckets, layers } = props
  const totals = buckets.map((_, i) => layers.reduce((sum, l) => sum + l.values[i]!, 0))
  const max = niceMax(Math.max(0, ...totals))
  const slot = PLOT_W / Math.max(1, buckets.length)
  const barW = r(Math.max(1, slot * 0.8))
  return (
    <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={props.label}>
      <Axes buckets={buckets} max={max} unit={props.unit} />
      {buckets.map((_, i) => {
        let base = 0
        if (totals[i] === 0) return null
        return (
          <g class="bucket" data-bucket={buckets[i]}>
            <title>{props.describe(i)}</title>
            {layers.map((layer) => {
              const v = layer.values[i]!
              if (v === 0) return null
              const top = y(base + v, max)
              const h = y(base, max) - top
              base += v
              return <rect class={layer.cls} x={r(LEFT + i * slot + (slot - barW) / 2)} y={top} width={barW} height={r(Math.max(h, 0.5))} />
            })}
          </g>
        )
      })}
    </svg>
  )
}

export interface Line {
  name: string
  /** CSS class giving the stroke (and the fill of lone points). */
  cls: string
  dashed?: boolean
  values: (number | null)[]
}

/** Lines over buckets, broken where a bucket has no value; a value with no neighbour is a dot. */
export const Lines: FC<{ label: string; buckets: string[]; lines: Line[]; unit: (v: number) => string }> = ({ label, buckets, lines, unit }) => {
  const max = niceMax(Math.max(0, ...lines.flatMap((l) => l.values.filter((v): v is number => v !== null))))
  const x = (i: number) => r(LEFT + ((i + 0.5) / Math.max(1, buckets.length)) * PLOT_W)
  return (
    <svg class="chart" viewBox={`0 0 ${W} ${H}`} role="img" aria-label={label}>
      <Axes buckets={buckets} max={max} unit={unit} />
      {lines.map((line) => {
        let d = ''
        const dots: number[] = []
        line.values.forEach((v, i) => {
          if (v === null) return
          const joined = i > 0 && line.values[i - 1] !== null
          d += `${joined ? 'L' : 'M'}${x(i)} ${y(v, max)}`
          if (!joined && (i === line.values.length - 1 || line.values[i + 1] === null)) dots.push(i)
        })
        return (
          <g class={`line ${line.cls}${line.dashed ? ' dashed' : ''}`} data-line={line.name}>
            <title>{line.name}</title>
            {d && <path d={d} />}
            {dots.map((i) => (
              <circle cx={x(i)} cy={y(line.values[i]!, max)} r={3} />
            ))}
          </g>
        )
      })}
    </svg>
  )
}
