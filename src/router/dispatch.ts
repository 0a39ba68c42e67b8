/**
 * One inference request end to end, independent of the HTTP API it came
 * in on: picks the chain from the live config, gives the request its id,
 * runs the chain and counts it in flight. Routes only shape input/output.
 */
import type { ClientRequest } from '../../providers/types.ts'
import type { Config } from '../config.ts'
import type { CallHandle, RuntimeState } from '../deadman/runtime.ts'
import { ProviderError } from '../../providers/provider-error.ts'
import { ChainExhaustedError, ClientGoneError, UnknownChainError, WitnessError, WitnessStoppedError } from '../errors.ts'
import type { Api, Store } from '../telemetry/store.ts'
import type { AttemptRecord } from './attempt-record.ts'
import { type ChainDeps, type ChainResult, runChain } from './chain.ts'

export interface DispatchDeps extends ChainDeps {
  config: () => Config
  /** Requests currently running (for heartbeat and graceful shutdown). */
  inFlight: { count: number }
  /** The deadman switch's view of calls: deadlines, last success, failing chains. */
  runtime?: RuntimeState
}

export interface DispatchInput {
  agent: string
  chain: string
  request: ClientRequest
  api: Api
  signal: AbortSignal
}

export type Dispatched = ChainResult & {
  machine: string
  requestId: string
  chain: string
  attempts: AttemptRecord[]
}

/** Context a failed dispatch attaches to its error, for response headers. */
export interface DispatchFailure {
  machine: string
  requestId: string
  attempts: AttemptRecord[]
}

const failures = new WeakMap<Error, DispatchFailure>()

function isStoppedByRouter(error: unknown, deps: DispatchDeps): boolean {
  return error instanceof ProviderError && error.kind === 'aborted' && (deps.stopping?.() ?? false)
}

/** The request id and rows of a failed dispatch, if the error came from one. */
export function failureOf(error: unknown): DispatchFailure | undefined {
  return error instanceof Error ? failures.get(error) : undefined
}

export async function dispatch(deps: DispatchDeps, input: DispatchInput): Promise<Dispatched> {
  // Capture the config once: a reload mid-request does not change this request's chain.
  const config = deps.config()
  const steps = config.chains.get(input.chain)
  if (!steps) {
    deps.runtime?.unknownChain(input.chain, config.deadman.failing_window_s * 1000)
    throw new UnknownChainError(input.chain, [...config.chains.keys()])
  }
  const requestId = Bun.randomUUIDv7()
  const attempts: AttemptRecord[] = []
  deps.inFlight.count++
  const call = deps.runtime?.begin(input.chain, steps, config)
  let streaming = false
  try {
    const chainDeps = call ? { ...deps, store: storeFor(deps.store, call) } : deps
    const result = await runChain(chainDeps, { ...input, machine: config.machine, requestId, steps, policy: config.policy, attempts })
    if (result.kind === 'stream') {
      // A stream stays in flight until its row is finished, and succeeds only if it finishes: one cut
      // after its first event failed the request (no fallback is possible by then).
      streaming = true
      void result.stream.settled
        .then((how) => {
          if (how === 'success') call?.succeed()
          else if (how === 'failed') call?.fail()
        })
        .finally(() => {
          deps.inFlight.count--
          call?.end()
        })
    } else call?.succeed()
    return { ...result, machine: config.machine, requestId, chain: input.chain, attempts }
  } catch (thrown) {
    // The router's stop ended the call: its client (still there) may send it again. A client that left
    // mid-request ends the chain with whatever stopped it (an abort, p-retry's abort reason).
    const error = isStoppedByRouter(thrown, deps)
      ? new WitnessStoppedError()
      : input.signal.aborted && !(thrown instanceof WitnessError)
        ? new ClientGoneError()
        : thrown
    // A chain every step of which refused the request itself (a 400, 413 or 422: a prompt too long, or
    // a model the config mistyped) counts as failing only while the running config is unproven: see
    // CallHandle.refused.
    if (error instanceof ChainExhaustedError) {
      if (error.causedByRequest) call?.refused()
      else call?.fail()
    }
    if (error instanceof Error) failures.set(error, { machine: config.machine, requestId, attempts })
    if (error instanceof WitnessError && error.type === 'telemetry_unavailable') {
      Object.assign(error.details, { request_id: requestId })
    }
    throw error
  } finally {
    if (!streaming) {
      deps.inFlight.count--
      call?.end()
    }
  }
}

/** The store as one call writes its rows through it: the time they wait to commit is the database's, not the call's. */
function storeFor(store: Store, call: CallHandle): Store {
  return Object.assign(Object.create(store) as Store, {
    begin: (head, meta) => call.committing(store.begin(head, meta)),
    finish: (id, outcome) => call.committing(store.finish(id, outcome)),
    insert: (row, meta, side) => call.committing(store.insert(row, meta, side)),
  } satisfies Pick<Store, 'begin' | 'finish' | 'insert'>)
}
