/** The HTTP response for a stream: SSE headers, witness headers, the session's body. */
import type { Context } from 'hono'
import { endsWhen } from '../idle-limit.ts'
import type { StreamSession } from '../router/stream.ts'

export function sseResponse(c: Context, stream: StreamSession): Response {
  return c.body(endsWhen(stream.body, stream.settled), 200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
  })
}
