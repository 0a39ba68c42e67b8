/**
 * Reading a request body within limits, before any route sees it: at most
 * `max_body_mb` (413 `payload_too_large`, refused before anything is
 * parsed) and all of it within `body_timeout_ms` (408 `request_timeout`: a
 * body that trickles or stalls does not hold a request open forever). A
 * body cut off by the client is a 400. The bytes are kept on the context
 * (`body`) for the route, which parses them with readJsonObject.
 *
 * This is the only size limit: Bun's own (maxRequestBodySize) is set out of
 * reach in src/main.ts, since it answers an empty 413 and cannot follow a reload.
 */
import type { MiddlewareHandler } from 'hono'
import { InvalidRequestError, PayloadTooLargeError, RequestTimeoutError, WitnessError } from '../errors.ts'

export interface BodyLimits {
  maxBytes: number
  timeoutMs: number
}

/** The middleware; `limits` is read per request, so a reload applies at once. */
export function guardBody(limits: () => BodyLimits): MiddlewareHandler {
  return async (c, next) => {
    const { maxBytes, timeoutMs } = limits()
    const raw = c.req.raw
    const declared = raw.headers.get('content-length')
    const sized = declared !== null && !raw.headers.has('transfer-encoding')
    if (sized && Number(declared) > maxBytes) throw new PayloadTooLargeError(maxBytes)
    if (raw.body) {
      // A declared length within the limit is read in one native call.
      c.set('body', sized ? await readAllWithin(raw, timeoutMs) : await readWithin(raw.body, maxBytes, timeoutMs))
    }
    await next()
  }
}

async function readAllWithin(raw: Request, timeoutMs: number): Promise<Uint8Array> {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      raw.bytes(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new RequestTimeoutError(timeoutMs)), timeoutMs)
      }),
    ])
  } catch (error) {
    if (error instanceof WitnessError) throw error
    throw new InvalidRequestError('request body could not be read: the connection closed before it ended')
  } finally {
    clearTimeout(timer)
  }
}

async function readWithin(body: ReadableStream<Uint8Array>, maxBytes: number, timeoutMs: number): Promise<Uint8Array<ArrayBuffer>> {
  const reader = body.getReader()
  const chunks: Uint8Array[] = []
  let size = 0
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RequestTimeoutError(timeoutMs)), timeoutMs)
  })
  try {
    for (;;) {
      const { done, value } = await Promise.race([reader.read(), expired])
      if (done) break
      size += value.length
      if (size > maxBytes) throw new PayloadTooLargeError(maxBytes)
      chunks.push(value)
    }
  } catch (error) {
    void reader.cancel().catch(() => {})
    if (error instanceof WitnessError) throw error
    throw new InvalidRequestError('request body could not be read: the connection closed before it ended')
  } finally {
    clearTimeout(timer)
  }
  return new Uint8Array(Bun.concatArrayBuffers(chunks))
}
