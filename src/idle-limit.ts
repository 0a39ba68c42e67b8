/**
 * The idle limit of client connections. Bun closes a connection that sits
 * idle for `idleTimeout` seconds, but it counts a request still being
 * answered as idle too, and an inference call may wait minutes for its
 * provider. So the limit is lifted while a request runs and put back once
 * its answer is sent: at once for an answer sent whole, at its end for a
 * stream. Between requests, and before the first, it holds (sockets left by
 * clients that vanished do not pile up until the open-file limit).
 */
import type { Server } from 'bun'

/**
 * The end of a stream's work as witness sees it (its session settled: the row finished, the last
 * event queued), by its body. A client that stopped reading never reads the body to its end, so
 * the limit is put back then too: else its connection stayed open with none, for as long as the
 * client kept it, a kernel's send buffer full of the answer held for it.
 */
const streamEnds = new WeakMap<ReadableStream<Uint8Array>, Promise<unknown>>()

/** Says when the work behind a stream's body is over (src/routes/sse-response.ts). */
export function endsWhen(body: ReadableStream<Uint8Array>, settled: Promise<unknown>): ReadableStream<Uint8Array> {
  streamEnds.set(body, settled)
  return body
}

/** Wraps a fetch handler so the connection's idle limit applies only between requests. */
export function idleBetweenRequests(
  idleS: number,
  handle: (req: Request, server: Server<undefined>) => Response | Promise<Response>,
): (req: Request, server: Server<undefined>) => Promise<Response> {
  return async (req, server) => {
    // A request handed in by server.fetch() (the CPU benchmark) comes with no connection to limit.
    if (!server) return handle(req, server)
    server.timeout(req, 0)
    const res = await handle(req, server)
    // Bun applies a connection's limit only while its request is still being answered.
    let restored = false
    const restore = () => {
      if (restored) return
      restored = true
      server.timeout(req, idleS)
    }
    if (!res.body || !res.headers.get('content-type')?.startsWith('text/event-stream')) {
      restore()
      return res
    }
    void streamEnds.get(res.body)?.then(restore, restore)
    return new Response(untilEnd(res.body, restore), res)
  }
}

/** The same bytes; `ended` runs when the last has been read, before the body closes. */
function untilEnd(body: ReadableStream<Uint8Array>, ended: () => void): ReadableStream<Uint8Array> {
  const reader = body.getReader()
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const { value, done } = await reader.read()
        if (!done) return controller.enqueue(value)
        ended()
        controller.close()
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  )
}
