/**
 * The writer thread. SQLite is synchronous: a commit with synchronous=FULL
 * waits for an fsync, and on the main thread that wait would stall every
 * request and stream. Here it stalls nobody. The main thread's group commit
 * sends one batch at a time; this thread applies it in one transaction and
 * answers with the results or the failure (with its SQLite code).
 */
import { describeFailure, openWriter, type Writer, type WriterOptions } from './writer.ts'
import type { WriteOp, WriteResult } from './rows.ts'

declare const self: Worker

export type WorkerRequest =
  | { type: 'init'; path: string; options: WriterOptions }
  | { type: 'batch'; id: number; ops: WriteOp[] }
  | { type: 'no-checkpoints' }

export type WorkerReply =
  | { type: 'done'; id: number; results: WriteResult[] }
  | { type: 'failed'; id: number; failure: ReturnType<typeof describeFailure> }
  | { type: 'sync-failed'; failure: ReturnType<typeof describeFailure> }

let writer: Writer | null = null
let initFailure: ReturnType<typeof describeFailure> | null = null

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  const message = event.data
  if (message.type === 'no-checkpoints') {
    writer?.autocheckpoint(false)
    return
  }
  if (message.type === 'init') {
    try {
      const onSyncFailure = (error: unknown) => self.postMessage({ type: 'sync-failed', failure: describeFailure(error) } satisfies WorkerReply)
      writer = openWriter(message.path, { ...message.options, onSyncFailure })
    } catch (error) {
      initFailure = describeFailure(error)
    }
    return
  }
  try {
    if (!writer) throw Object.assign(new Error(initFailure?.message ?? 'writer not open'), { code: initFailure?.code })
    self.postMessage({ type: 'done', id: message.id, results: writer.apply(message.ops) } satisfies WorkerReply)
  } catch (error) {
    self.postMessage({ type: 'failed', id: message.id, failure: describeFailure(error) } satisfies WorkerReply)
  }
}
