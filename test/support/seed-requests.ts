/**
 * Writes hand-made requests into a real witness database through the
 * store's own write API (begin/finish for calls, insert for fallback and
 * rollback rows), with the timestamps the test chooses.
 */
import { join } from 'node:path'
import type { Status } from '../../src/telemetry/schema.ts'
import { type Store, openStore } from '../../src/telemetry/store.ts'
import { tempDir } from './temp.ts'

export interface SeedRow {
  provider: string
  model?: string
  status: Status
  latencyMs?: number | null
  tokensIn?: number | null
  tokensOut?: number | null
  costUsd?: number | null
  errorMessage?: string | null
  responseId?: string | null
  /** Timestamp; default: the request's `at` plus the row's position in ms. */
  at?: string
}

export interface SeedRequest {
  agent: string
  chain?: string
  /** ISO time of the first row. */
  at: string
  rows: SeedRow[]
  requestId?: string
  /** The first row's position in its request (default 1): more than 1 continues a request seeded before. */
  firstSeq?: number
}

let counter = 0

/** Writes the requests in order; returns the row ids of each. */
export async function seed(store: Store, requests: SeedRequest[]): Promise<number[][]> {
  const out: number[][] = []
  for (const request of requests) {
    const requestId = request.requestId ?? `seed-${++counter}`
    const ids: number[] = []
    let seq = (request.firstSeq ?? 1) - 1
    for (const [i, row] of request.rows.entries()) {
      const head = {
        timestamp: row.at ?? new Date(Date.parse(request.at) + i).toISOString(),
        agentName: request.agent,
        provider: row.provider,
        model: row.model ?? `${row.provider}-model`,
        endpoint: `http://127.0.0.1:9/${row.provider}/v1/chat/completions`,
      }
      const meta = { requestId, chain: request.chain ?? 'default', api: 'infer' as const, seq: ++seq, step: i, try: row.status === 'fallback' ? null : 1, stream: false }
      if (row.status === 'fallback' || row.status === 'rollback') {
        ids.push((await store.insert({ ...head, status: row.status, errorMessage: row.errorMessage ?? `${row.status} row`, latencyMs: row.latencyMs, tokensIn: row.tokensIn, tokensOut: row.tokensOut }, meta)).id)
        continue
      }
      const id = await store.begin(head, meta)
      ids.push(id)
      if (row.status === 'pending') continue
      await store.finish(id, {
        status: row.status,
        tokensIn: row.tokensIn ?? null,
        tokensOut: row.tokensOut ?? null,
        latencyMs: row.latencyMs ?? null,
        errorMessage: row.status === 'success' ? null : (row.errorMessage ?? `${row.status} from ${row.provider}`),
        costUsd: row.costUsd ?? null,
        responseId: row.responseId ?? null,
        servedModel: row.status === 'success' ? head.model : null,
        httpStatus: row.status === 'success' ? 200 : null,
      })
    }
    out.push(ids)
  }
  return out
}

/** A fresh database file in a temp dir, opened with the store. */
export function seedStore(dir = tempDir()): { dir: string; path: string; store: Store } {
  const path = join(dir, 'witness.db')
  return { dir, path, store: openStore(path, { sync: 'normal', busyTimeoutMs: 2000 }) }
}
