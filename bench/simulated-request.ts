/**
 * One simulated request through the real store, as the growth benches write them
 * (bench/growth.ts, bench/sync-clone.ts): a success, or (1 in 20) an error, a fallback row
 * and a retry. `n` picks the agent and model and whether it fails.
 */
import type { Store } from '../src/telemetry/store.ts'

export async function writeRequest(store: Store, n: number, requestId: string, at: number, agents: readonly string[], models: readonly string[]): Promise<void> {
  const head = (provider: string) => ({
    timestamp: new Date(at).toISOString(),
    agentName: agents[n % agents.length]!,
    provider,
    model: models[n % models.length]!,
    endpoint: `https://${provider}.example/v1/chat/completions`,
  })
  const meta = (seq: number) => ({ requestId, chain: 'default', api: 'chat.completions' as const, seq, step: seq - 1, try: 1, stream: false })
  const failed = n % 20 === 0
  const id = await store.begin(head(failed ? 'kimi' : 'glm'), meta(1))
  await store.finish(id, {
    status: failed ? 'error' : 'success',
    tokensIn: 1200,
    tokensOut: 340,
    latencyMs: 2100,
    errorMessage: failed ? 'kimi: HTTP 503 service unavailable after 2100 ms' : null,
    httpStatus: failed ? 503 : 200,
    responseId: failed ? null : `chatcmpl-${crypto.randomUUID()}`,
    servedModel: failed ? null : models[n % models.length]!,
    costUsd: failed ? null : 0.0021,
    requestSha256: 'a'.repeat(64),
    responseSha256: failed ? null : 'b'.repeat(64),
  })
  if (failed) {
    await store.insert({ ...head('kimi'), status: 'fallback', errorMessage: 'fallback from kimi/kimi-k2.5 to glm/glm-4.6: HTTP 503' }, meta(2))
    const again = await store.begin(head('glm'), meta(3))
    await store.finish(again, { status: 'success', tokensIn: 1200, tokensOut: 340, latencyMs: 1800, errorMessage: null, httpStatus: 200 })
  }
}
