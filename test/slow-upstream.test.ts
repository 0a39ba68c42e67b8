/**
 * A provider may be silent for long: a local model loading, a reasoning
 * model thinking before its first byte, a long pause between events. Only
 * witness's own limits (timeout_ms, first_byte_timeout_ms, idle_timeout_ms)
 * may end such a call. Bun's fetch has an idle timer of its own (5 minutes
 * by default, BUN_CONFIG_HTTP_IDLE_TIMEOUT): left on, it cut such calls as
 * "network error: The operation timed out." and witness retried them, paying
 * twice. The witness here runs with that timer at 1 s, so a silence of 10 s
 * shows whether it is still in the way.
 */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { spawnWitness } from './support/process.ts'
import { readRows } from './support/rows.ts'
import { tempDir } from './support/temp.ts'

const SILENCE_MS = 10_000

/** A provider that thinks for SILENCE_MS before its answer, or pauses that long after a stream's first event. */
function slowProvider() {
  const calls: string[] = []
  const chunk = (delta: Record<string, unknown>, finish: string | null) =>
    `data: ${JSON.stringify({ id: 'chatcmpl-slow', object: 'chat.completion.chunk', created: 1, model: 'slow', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`
  const server = Bun.serve({
    port: 0,
    hostname: '127.0.0.1',
    idleTimeout: 0,
    async fetch(req) {
      const body = (await req.json()) as { stream?: boolean }
      calls.push(body.stream ? 'stream' : 'completion')
      if (!body.stream) {
        await Bun.sleep(SILENCE_MS)
        return Response.json({
          id: 'chatcmpl-slow',
          object: 'chat.completion',
          created: 1,
          model: 'slow',
          choices: [{ index: 0, message: { role: 'assistant', content: 'Done thinking.' }, finish_reason: 'stop' }],
          usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
        })
      }
      const encoder = new TextEncoder()
      const stream = new ReadableStream<Uint8Array>({
        async start(controller) {
          controller.enqueue(encoder.encode(chunk({ role: 'assistant', content: '' }, null)))
          await Bun.sleep(SILENCE_MS)
          controller.enqueue(encoder.encode(chunk({ content: 'Back.' }, null) + chunk({}, 'stop') + 'data: [DONE]\n\n'))
          controller.close()
        },
      })
      return new Response(stream, { headers: { 'content-type': 'text/event-stream' } })
    },
  })
  return { url: `http://127.0.0.1:${server.port}`, calls, stop: () => server.stop(true) }
}

let provider: ReturnType<typeof slowProvider>
beforeAll(() => {
  provider = slowProvider()
})
afterAll(() => provider.stop())

test("a provider silent for longer than Bun's own fetch idle timer is waited for, up to witness's limits, and called once", async () => {
  const dir = tempDir()
  const configPath = join(dir, 'witness.yaml')
  const limits = { retries: 2, timeout_ms: 60_000, first_byte_timeout_ms: 60_000, idle_timeout_ms: 60_000 }
  writeFileSync(
    configPath,
    JSON.stringify({
      database: join(dir, 'witness.db'),
      providers: { slow: { type: 'openai', base_url: `${provider.url}/v1` } },
      chains: {
        thinking: [{ provider: 'slow', model: 'slow', ...limits }],
        pausing: [{ provider: 'slow', model: 'slow', ...limits }],
      },
    }),
  )
  const { proc, url } = await spawnWitness(configPath, { BUN_CONFIG_HTTP_IDLE_TIMEOUT: '1' })
  try {
    const ask = (chain: string, stream: boolean) =>
      fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-agent-name': 'patient' },
        body: JSON.stringify({ model: chain, stream, messages: [{ role: 'user', content: 'Take your time.' }] }),
      })
    const [thinking, pausing] = await Promise.all([
      ask('thinking', false).then(async (res) => ({ status: res.status, body: await res.text() })),
      ask('pausing', true).then(async (res) => ({ status: res.status, body: await res.text() })),
    ])
    expect(thinking.status).toBe(200)
    expect(JSON.parse(thinking.body).choices[0].message.content).toBe('Done thinking.')
    expect(pausing.status).toBe(200)
    expect(pausing.body).toContain('Back.')
    expect(pausing.body).toContain('data: [DONE]')
    expect(pausing.body).not.toContain('stream_interrupted')
    // One call each: nothing was cut and retried.
    expect(provider.calls.sort()).toEqual(['completion', 'stream'])
    const rows = readRows(join(dir, 'witness.db'))
    expect(rows.map((r) => r.status)).toEqual(['success', 'success'])
    for (const row of rows) expect(row.latency_ms).toBeGreaterThanOrEqual(SILENCE_MS - 100)
  } finally {
    proc.kill()
    await proc.exited
  }
}, 60_000)
