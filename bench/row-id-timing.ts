/**
 * Whether `GET /requests/:id` with an agent token tells another agent's row from a missing one by
 * its time: medians of 3000 alternated reads of each (a real server with auth, the simulator).
 * `bun bench/row-id-timing.ts`
 */
import { hashToken } from '../src/auth/tokens.ts'
import { startSimulator } from '../src/sim/server.ts'
import { simConfig, startWitness } from '../test/support/witness.ts'
const EZRA = 'ezra-token-0123456789', BEZ = 'bezalel-token-0123456789'
const auth = { agents: { ezra: { token_sha256: hashToken(EZRA) }, bezalel: { token_sha256: hashToken(BEZ) } } }
const sim = startSimulator()
const w = await startWitness(simConfig(sim.url, { default: [{ provider: 'sim', model: 'm' }] }, { auth }))
const msg = [{ role: 'user', content: 'hi' }]
let id = ''
for (let i = 0; i < 50; i++) id = (await w.post('/v1/infer', { messages: msg }, { authorization: `Bearer ${BEZ}` })).headers.get('x-witness-log-ids')!
const h = { headers: { authorization: `Bearer ${EZRA}` } }
const t = { other: [] as number[], missing: [] as number[] }
for (let i = 0; i < 3000; i++) {
  for (const [k, path] of [['other', `/requests/${id}`], ['missing', '/requests/99999999']] as const) {
    const s = performance.now(); const r = await fetch(w.url + path, h); await r.text(); t[k].push(performance.now() - s)
  }
}
const med = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1] ?? NaN
console.log(`other agent's row: ${(med(t.other) * 1000).toFixed(0)} µs, missing: ${(med(t.missing) * 1000).toFixed(0)} µs`)
await w.stop(0); await sim.stop(); process.exit(0)
