/**
 * The calls under way, for the router's stop. Past its grace the stop ends
 * each one itself before it cuts the connections: a stream with an error
 * event in its own format (`witness_stopped`) and its row; a call still
 * waiting for its provider by aborting it, so its client gets a 503
 * `witness_stopped` ("retry the request") instead of a connection cut
 * short. Each function resolves once its call has ended (a waiting call's
 * answer follows as its handler returns).
 */
export type LiveCalls = Set<() => Promise<void>>

/** Ends every call under way (see LiveCalls); resolves when all have ended. */
export function endLiveCalls(live: LiveCalls): Promise<void> {
  return Promise.all([...live].map((stop) => stop())).then(() => {})
}
