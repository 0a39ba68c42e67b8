/**
 * What Bun's fetch client costs, the floor under any proxy on this stack:
 * CPU per call with 16 calls in flight to the simulator, plain and with the
 * AbortSignal and timer witness gives each try.
 * `bun bench/fetch-cost.ts [UPSTREAM_URL] [N]` prints one JSON line.
 */
export {}

const [upstream = 'http://127.0.0.1:9100', nText] = process.argv.slice(2)
const N = Number(nText ?? 8000)
const url = `${upstream}/v1/chat/completions`
const body = JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: 'Say hello in one short sentence.' }] })
const headers = { 'content-type': 'application/json' }

const variants: Record<string, () => Promise<unknown>> = {
  plain: async () => (await fetch(url, { method: 'POST', headers, body })).json(),
  with_signal: async () => {
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), 30_000)
    try {
      return await (await fetch(url, { method: 'POST', headers, body, signal: controller.signal, redirect: 'error' })).json()
    } finally {
      clearTimeout(timer)
    }
  },
}

const result: Record<string, number> = {}
for (const round of [0, 1]) {
  for (const [name, call] of Object.entries(variants)) {
    let started = 0
    const cpu0 = process.cpuUsage()
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (started++ < N) await call()
    }))
    const cpu = process.cpuUsage(cpu0)
    if (round === 1) result[`${name}_cpu_us_per_call`] = Math.round((cpu.user + cpu.system) / N)
  }
}
console.log(JSON.stringify(result))
