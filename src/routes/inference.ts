/**
 * What the three inference endpoints share once a request is validated:
 * dispatch it, set the X-Witness-* headers (on failures too), and answer a
 * stream as SSE. Each endpoint only says how a finished completion looks
 * in its API.
 */
import type { Context } from 'hono'
import type { Completion } from '../../providers/types.ts'
import { type DispatchDeps, type DispatchInput, type Dispatched, dispatch } from '../router/dispatch.ts'
import { sseResponse } from './sse-response.ts'
import { setWitnessHeaders, withFailureHeaders } from './witness-headers.ts'

export type Finished = Dispatched & { kind: 'completion'; completion: Completion }

export async function answer(
  c: Context,
  deps: DispatchDeps,
  input: Omit<DispatchInput, 'signal'>,
  respond: (result: Finished) => Response,
): Promise<Response> {
  let result: Dispatched
  try {
    result = await dispatch(deps, { ...input, signal: c.req.raw.signal })
  } catch (error) {
    throw withFailureHeaders(c, error)
  }
  setWitnessHeaders(c, result.machine, result.requestId, result.attempts, { provider: result.step.provider.name, model: result.step.model })
  return result.kind === 'stream' ? sseResponse(c, result.stream) : respond(result)
}
