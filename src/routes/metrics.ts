/** GET /metrics: Prometheus text format; the router's counters, plus two gauges and the writer's counters read at scrape time. */
import type { Context } from 'hono'
import type { RouterMetrics } from '../router/metrics.ts'
import { databaseBytes } from '../telemetry/file-size.ts'
import type { Store } from '../telemetry/store.ts'

export function metricsRoute(deps: { store: Store; metrics: RouterMetrics }) {
  return (c: Context) => {
    const { batches, ops, busyRetries, failures } = deps.store.counters
    const { checkpoints, failures: checkpointsMissed } = deps.store.checkpoints()
    const text = deps.metrics.render(
      { pendingRows: pendingRows(deps.store), databaseBytes: databaseBytes(deps.store.path) },
      { commits: batches, writes: ops, lockWaits: busyRetries, failures, checkpoints, checkpointsMissed },
    )
    return c.body(text, 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
  }
}

/** The pending rows, or null when the database cannot be read: a scrape still gets the counters (GET /heartbeat says why). */
function pendingRows(store: Store): number | null {
  try {
    return store.pendingCount()
  } catch {
    return null
  }
}
