/**
 * The simulator's vocabulary. Behaviour is chosen per request by the model
 * name (`kimi-k2.5+latency-200+status-503`) and/or the `x-sim` header
 * (`latency-200,status-503`); the part of the model before the first `+`
 * is the model the simulator says served the call. See the README.
 */

export interface Directives {
  model: string
  latencyMs: number
  /** With `latency-A-B`: the latency is drawn between latencyMs (A) and this (B). */
  latencyMaxMs: number | null
  /** With `chaos-P`: the percentage of requests that misbehave (see chaos.ts). */
  chaosPercent: number | null
  hang: boolean
  status: number | null
  retryAfterS: number | null
  malformed: boolean
  empty: boolean
  /** HTTP statuses to answer in turn, per script key; the last repeats. */
  script: number[] | null
  tokens: [number, number] | null
  noUsage: boolean
  costUsd: number | null
  served: string | null
  chunks: number
  chunkDelayMs: number
  cutAfter: number | null
  stallAfter: number | null
  noDone: boolean
  echoKey: boolean
  tool: string | null
  reply: string | null
}

export function parseDirectives(model: string, header: string | null): Directives {
  const [base = '', ...fromModel] = model.split('+')
  const fromHeader = (header ?? '').split(/[,+\s]+/).filter(Boolean)
  const d: Directives = {
    model: base,
    latencyMs: 0,
    latencyMaxMs: null,
    chaosPercent: null,
    hang: false,
    status: null,
    retryAfterS: null,
    malformed: false,
    empty: false,
    script: null,
    tokens: null,
    noUsage: false,
    costUsd: null,
    served: null,
    chunks: 5,
    chunkDelayMs: 0,
    cutAfter: null,
    stallAfter: null,
    noDone: false,
    echoKey: false,
    tool: null,
    reply: null,
  }
  for (const token of [...fromModel, ...fromHeader]) apply(d, token)
  return d
}

function apply(d: Directives, token: string): void {
  const num = (prefix: string) => Number(token.slice(prefix.length))
  if (token === 'hang') d.hang = true
  else if (token === 'malformed') d.malformed = true
  else if (token === 'empty') d.empty = true
  else if (token === 'no-usage') d.noUsage = true
  else if (token === 'no-done') d.noDone = true
  else if (token === 'echo-key') d.echoKey = true
  else if (token.startsWith('latency-')) {
    const [min, max] = token.slice('latency-'.length).split('-').map(Number)
    d.latencyMs = min ?? 0
    d.latencyMaxMs = max ?? null
  } else if (token.startsWith('chaos-')) d.chaosPercent = num('chaos-')
  else if (token.startsWith('status-')) d.status = num('status-')
  else if (token.startsWith('retry-after-')) d.retryAfterS = num('retry-after-')
  else if (token.startsWith('script-')) d.script = token.slice('script-'.length).split('-').map(Number)
  else if (token.startsWith('tokens-')) {
    const [a, b] = token.slice('tokens-'.length).split('-').map(Number)
    d.tokens = [a ?? 0, b ?? 0]
  } else if (token.startsWith('cost-')) d.costUsd = num('cost-')
  else if (token.startsWith('served-')) d.served = token.slice('served-'.length)
  else if (token.startsWith('chunks-')) d.chunks = num('chunks-')
  else if (token.startsWith('chunk-delay-')) d.chunkDelayMs = num('chunk-delay-')
  else if (token.startsWith('cut-')) d.cutAfter = num('cut-')
  else if (token.startsWith('stall-')) d.stallAfter = num('stall-')
  else if (token.startsWith('tool-')) d.tool = token.slice('tool-'.length)
  else if (token.startsWith('reply-')) d.reply = token.slice('reply-'.length).replaceAll('_', ' ')
}
