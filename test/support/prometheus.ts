/**
 * A strict reader of the Prometheus text exposition format (0.0.4), so
 * tests can check that /metrics parses the way a scraper would read it.
 * Throws on any line a scraper would reject.
 */

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

export interface Family {
  type: string
  help: string
  samples: Sample[]
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'] }

export function parsePrometheus(text: string): Map<string, Family> {
  if (!text.endsWith('\n')) throw new Error('exposition must end with a newline')
  const families = new Map<string, Family>()
  let current: string | null = null
  const closed = new Set<string>()
  for (const [n, line] of text.slice(0, -1).split('\n').entries()) {
    const where = `line ${n + 1}: ${line}`
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) {
      const [, kind, name, ...rest] = line.split(' ')
      if (!name || !NAME.test(name)) throw new Error(`bad metric name, ${where}`)
      if (current !== name) {
        if (current) closed.add(current)
        if (closed.has(name)) throw new Error(`family ${name} is split, ${where}`)
        current = name
      }
      const family = families.get(name) ?? { type: 'untyped', help: '', samples: [] }
      if (kind === 'TYPE') {
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest.join(' '))) throw new Error(`bad type, ${where}`)
        if (family.samples.length) throw new Error(`TYPE after samples, ${where}`)
        family.type = rest.join(' ')
      } else family.help = rest.join(' ')
      families.set(name, family)
      continue
    }
    if (line.startsWith('#') || line === '') continue
    const sample = parseSample(line, where)
    const family = current ? families.get(current) : undefined
    const suffixes = SUFFIXES[family?.type ?? ''] ?? ['']
    if (!family || !suffixes.some((s) => sample.name === `${current}${s}`)) throw new Error(`sample outside its family, ${where}`)
    family.samples.push(sample)
  }
  for (const [name, family] of families) {
    if (family.type === 'counter' && !name.endsWith('_total')) throw new Error(`counter ${name} should end in _total`)
    if (family.type === 'histogram') checkHistogram(name, family)
  }
  return families
}

function parseSample(line: string, where: string): Sample {
  const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(line)
  if (!match) throw new Error(`bad sample, ${where}`)
  const labels: Record<string, string> = {}
  let rest = match[3] ?? ''
  while (rest.length) {
    const label = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/.exec(rest)
    if (!label || !LABEL.test(label[1]!)) throw new Error(`bad labels, ${where}`)
    if (label[1]! in labels) throw new Error(`repeated label, ${where}`)
    labels[label[1]!] = label[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    rest = rest.slice(label[0].length)
  }
  const text = match[4]!
  const value = text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : text === 'NaN' ? NaN : Number(text)
  if (Number.isNaN(value) && text !== 'NaN') throw new Error(`bad value, ${where}`)
  return { name: match[1]!, labels, value }
}

function checkHistogram(name: string, family: Family): void {
  const series = new Map<string, { buckets: [number, number][]; count?: number }>()
  for (const s of family.samples) {
    const { le, ...rest } = s.labels
    const key = JSON.stringify(rest)
    const entry = series.get(key) ?? { buckets: [] }
    if (s.name === `${name}_bucket`) {
      if (le === undefined) throw new Error(`${name}_bucket without le`)
      entry.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value])
    } else if (s.name === `${name}_count`) entry.count = s.value
    series.set(key, entry)
  }
  for (const [key, { buckets, count }] of series) {
    const last = buckets[buckets.length - 1]
    if (!last || last[0] !== Infinity || last[1] !== count) throw new Error(`${name}${key}: +Inf bucket must equal _count`)
    buckets.forEach(([le, n], i) => {
      if (i > 0 && (le <= buckets[i - 1]![0] || n < buckets[i - 1]![1])) throw new Error(`${name}${key}: buckets must grow`)
    })
  }
}

/** The value of the sample with exactly these labels, or undefined. */
export function valueOf(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families.values()) {
    const sample = family.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === JSON.stringify(Object.entries(labels).sort()))
    if (sample) return sample.value
  }
  return undefined
}
