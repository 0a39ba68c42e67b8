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
  /** Tokens that are no directive (a typo such as `latancy-200`): the simulator refuses the request. */
  unknown: string[]
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
    unknown: [],
  }
  for (const token of [...fromModel, ...fromHeader]) if (!apply(d, token)) d.unknown.push(token)
  return d
}

/** A directive's numbers: whole numbers, at least 0. */
const NUMBERS = /^\d+(-\d+)*$/
const FLAGS = { hang: 'hang', malformed: 'malformed', empty: 'empty', 'no-usage': 'noUsage', 'no-done': 'noDone', 'echo-key': 'echoKey' } as const

/** Applies one directive; false if `token` is none (or its numbers are not numbers). */
function apply(d: Directives, token: string): boolean {
  if (token in FLAGS) {
    d[FLAGS[token as keyof typeof FLAGS]] = true
    return true
  }
  const text = (prefix: string) => (token.startsWith(prefix) ? token.slice(prefix.length) : null)
  const nums = (prefix: string) => {
    const rest = text(prefix)
    return rest !== null && NUMBERS.test(rest) ? rest.split('-').map(Number) : null
  }
  let n: number[] | null
  let t: string | null
  if ((n = nums('latency-'))) {
    d.latencyMs = n[0]!
    d.latencyMaxMs = n[1] ?? null
  } else if ((n = nums('chaos-'))) d.chaosPercent = n[0]!
  else if ((n = nums('status-'))) d.status = n[0]!
  else if ((t = text('retry-after-')) !== null && /^\d+(\.\d+)?$/.test(t)) d.retryAfterS = Number(t)
  else if ((n = nums('script-'))) d.script = n
  else if ((n = nums('tokens-'))) d.tokens = [n[0]!, n[1] ?? 0]
  else if ((t = text('cost-')) !== null && Number.isFinite(Number(t)) && t !== '') d.costUsd = Number(t)
  else if ((t = text('served-'))) d.served = t
  else if ((n = nums('chunk-delay-'))) d.chunkDelayMs = n[0]!
  else if ((n = nums('chunks-'))) d.chunks = n[0]!
  else if ((n = nums('cut-'))) d.cutAfter = n[0]!
  else if ((n = nums('stall-'))) d.stallAfter = n[0]!
  else if ((t = text('tool-'))) d.tool = t
  else if ((t = text('reply-'))) d.reply = t.replaceAll('_', ' ')
  else return false
  return true
}
