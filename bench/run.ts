/**
 * `npm run bench [-- --quick] [-- --runs N --seconds S]`: every scenario side
 * by side in one run, alternating, against the same loopback upstream (the
 * simulator), with wrk as the load generator in its own process:
 *   direct to the upstream; a bare Hono proxy (no logging); witness with
 *   database_sync full and normal; Portkey's gateway on Node and on Bun.
 * At 1 and 32 connections: requests/s, p50/p99, latency added over direct,
 * rows committed per second, peak memory; medians of the runs. Then a
 * streaming scenario (100-chunk streams at 1 and 200 clients). Writes
 * docs/BENCHMARKS.md and the raw output beside it. Never part of `npm test`.
 */
import { Database } from 'bun:sqlite'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { type Server, freePort, startServer } from './processes.ts'
import { ensureWrk, runWrk, type WrkResult } from './wrk.ts'
import { RUNTIME_ENV } from '../src/runtime-env.ts'

const ROOT = join(import.meta.dir, '..')
const BUN = process.execPath
const args = process.argv.slice(2)
const quick = args.includes('--quick')
const flag = (name: string, fallback: number) => {
  const i = args.indexOf(name)
  return i >= 0 ? Number(args[i + 1]) : fallback
}
const RUNS = flag('--runs', quick ? 1 : 3)
const SECONDS = flag('--seconds', quick ? 2 : 5)
const CONNECTIONS = [1, 32]
const raw: string[] = []
const log = (line: string) => {
  console.log(line)
  raw.push(line)
}

ensureWrk()
const dir = mkdtempSync(join(tmpdir(), 'witness-bench-'))
const port = freePort

// The shared upstream.
const simPort = port()
const sim = await startServer('sim', [BUN, join(ROOT, 'src/cli.ts'), 'sim', '--port', String(simPort), '--keep', '0'], `http://127.0.0.1:${simPort}/_sim/health`)
const upstream = `http://127.0.0.1:${simPort}`

function witnessConfig(name: string, sync: 'full' | 'normal', writer: 'inline' | 'thread' = 'inline', fsync: 'thread_pool' | 'event_loop' = 'thread_pool'): string {
  const path = join(dir, `${name}.yaml`)
  writeFileSync(
    path,
    `listen: { host: 127.0.0.1, port: 0 }
database: ./${name}.db
database_sync: ${sync}
database_writer: ${writer}
database_fsync: ${fsync}
providers:
  sim: { type: openai, base_url: "${upstream}/v1" }
chains:
  default:
    - { provider: sim, model: "bench-model" }
  stream:
    - { provider: sim, model: "bench-model+chunks-100+chunk-delay-5" }
`,
  )
  return path
}

interface Scenario {
  name: string
  url: string
  model: string
  headers: Record<string, string>
  server?: Server
  db?: string
}

const portkeyScript = join(ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js')
const scenarios: Scenario[] = [{ name: 'direct (upstream)', url: `${upstream}/v1/chat/completions`, model: 'bench-model', headers: {} }]

async function add(name: string, cmd: string[], p: number, extra: Omit<Scenario, 'name' | 'url' | 'server'>, healthPath = '/') {
  const base = `http://127.0.0.1:${p}`
  // witness as its launchers start it (src/runtime-env.ts); the others as their packages document.
  const server = await startServer(name, cmd, `${base}${healthPath}`, name.startsWith('witness') ? { ...RUNTIME_ENV } : {})
  scenarios.push({ name, url: `${base}/v1/chat/completions`, server, ...extra })
}

const bareP = port()
await add('bare proxy (Hono, no log)', [BUN, join(ROOT, 'bench/bare-proxy.ts'), String(bareP), upstream], bareP, { model: 'bench-model', headers: {} })
// witness (full) is the default (the fsync waited for off the event loop); full, fsync on loop puts it inside COMMIT.
for (const [label, name, sync, fsync] of [
  ['witness (full)', 'witness-full', 'full', 'thread_pool'],
  ['witness (full, fsync on loop)', 'witness-full-loop', 'full', 'event_loop'],
  ['witness (normal)', 'witness-normal', 'normal', 'thread_pool'],
] as const) {
  const p = port()
  await add(
    label,
    [BUN, join(ROOT, 'src/cli.ts'), 'serve', '--config', witnessConfig(name, sync, 'inline', fsync), '--port', String(p)],
    p,
    { model: 'default', headers: { 'x-agent-name': 'bench' }, db: join(dir, `${name}.db`) },
    '/v1/models',
  )
}
if (existsSync(portkeyScript)) {
  const portkeyHeaders = { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${upstream}/v1`, authorization: 'Bearer sk-bench' }
  for (const runtime of ['node', 'bun'] as const) {
    const p = port()
    const exe = runtime === 'node' ? 'node' : BUN
    await add(`portkey (${runtime})`, [exe, portkeyScript, `--port=${p}`, '--headless'], p, { model: 'bench-model', headers: portkeyHeaders })
  }
} else {
  log('portkey: @portkey-ai/gateway is not installed (npm install); skipped')
}

/** Rows finished (committed final), not the pending rows of requests still in flight. */
function rowCount(db: string | undefined): number {
  if (!db) return 0
  const conn = new Database(db, { readonly: true })
  try {
    return (conn.query("SELECT count(*) AS n FROM request_log WHERE status != 'pending'").get() as { n: number }).n
  } finally {
    conn.close()
  }
}

interface Sample extends WrkResult {
  rowsPerS: number
  peakMb: number
}
const samples = new Map<string, Sample[]>()
const body = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: 'Say hello in one short sentence.' }] })

// Warm every server up (JIT, connection pools) before measuring: Portkey on Node, least of all, is
// not at speed after a second.
for (const s of scenarios) {
  runWrk(s.url, body(s.model), s.headers, 8, 1, join(dir, 'warm.lua'))
  runWrk(s.url, body(s.model), s.headers, 32, quick ? 1 : 3, join(dir, 'warm.lua'))
}

for (let run = 1; run <= RUNS; run++) {
  for (const connections of CONNECTIONS) {
    // The order turns each run, so no scenario always runs first (or right after a heavy one).
    const order = scenarios.map((_, i) => scenarios[(i + run - 1) % scenarios.length]!)
    for (const s of order) {
      const before = rowCount(s.db)
      s.server?.resetPeak()
      const result = runWrk(s.url, body(s.model), s.headers, connections, SECONDS, join(dir, 'load.lua'))
      const rows = rowCount(s.db) - before
      const sample: Sample = { ...result, rowsPerS: rows / result.seconds, peakMb: s.server?.peakRssMb() ?? 0 }
      const key = `${s.name}|${connections}`
      samples.set(key, [...(samples.get(key) ?? []), sample])
      log(`run ${run} c=${connections} ${s.name}: ${result.rps.toFixed(0)} req/s p50 ${result.p50Ms.toFixed(3)} ms p99 ${result.p99Ms.toFixed(3)} ms errors ${result.errors}${s.db ? ` rows/s ${sample.rowsPerS.toFixed(0)}` : ''}`)
      raw.push(result.raw)
    }
  }
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}
const med = (name: string, c: number, f: (s: Sample) => number) => median((samples.get(`${name}|${c}`) ?? []).map(f))

// The fsyncs on a request's critical path: witness (full) under strace at 1 connection, by thread.
// fdatasync: the commits' (the pending row, the finish), on Bun's thread pool, each awaited by its
// request. fsync on the event loop: the WAL's new header after each time the WAL starts over.
// fsync elsewhere: the checkpoint thread's (src/telemetry/checkpointer.ts), which nobody waits for.
let fsyncReport = ''
if (Bun.which('strace')) {
  const full = scenarios.find((s) => s.name === 'witness (full)')!
  const pid = full.server!.proc.pid
  const tracePath = join(dir, 'fsyncs.trace')
  const tracer = Bun.spawn(['strace', '-f', '-qq', '-e', 'trace=fsync,fdatasync', '-o', tracePath, '-p', String(pid)], { stdout: 'pipe', stderr: 'pipe' })
  await Bun.sleep(500) // attached
  const traced = runWrk(full.url, body(full.model), full.headers, 1, quick ? 1 : 3, join(dir, 'load.lua'))
  tracer.kill('SIGINT')
  await tracer.exited
  const calls = { fdatasync: 0, loopFsync: 0, otherFsync: 0 }
  for (const line of (await Bun.file(tracePath).text()).split('\n')) {
    const m = /^(\d+)\s+(fsync|fdatasync)\(/.exec(line)
    if (!m) continue
    if (m[2] === 'fdatasync') calls.fdatasync++
    else if (Number(m[1]) === pid) calls.loopFsync++
    else calls.otherFsync++
  }
  const per = (n: number) => (n / Math.max(1, traced.requests)).toFixed(2)
  fsyncReport =
    `witness (full) at 1 connection, under strace: ${traced.requests} requests; ${calls.fdatasync} fdatasync off the event loop (${per(calls.fdatasync)} per request: the pending row's commit and the finish's, each awaited); ` +
    `${calls.loopFsync} fsync on the event loop (${per(calls.loopFsync)} per request: the WAL's new header each time it starts over, about one in every ${Math.round(traced.requests / Math.max(1, calls.loopFsync))} requests); ` +
    `${calls.otherFsync} fsync on the checkpoint thread (${per(calls.otherFsync)} per request; no request waits for them).`
  log(`fsyncs: ${fsyncReport}`)
} else {
  log('fsyncs: strace is not installed (apt-get install strace); not counted')
}

// Streaming: 100-chunk streams, direct and through witness (full).
const streamRows: string[] = []
const witnessFull = scenarios.find((s) => s.name === 'witness (full)')!
for (const concurrency of [1, 200]) {
  let directTtfb = Number.NaN
  for (const target of [
    { name: 'direct (upstream)', url: `${upstream}/v1/chat/completions`, model: 'bench-model+chunks-100+chunk-delay-5', headers: [] as string[], server: sim },
    { name: 'witness (full)', url: witnessFull.url, model: 'stream', headers: ['x-agent-name:bench'], server: witnessFull.server! },
  ]) {
    target.server.resetPeak()
    const proc = Bun.spawnSync(
      [BUN, join(ROOT, 'bench/stream-load.ts'), target.url, JSON.stringify({ model: target.model, stream: true, messages: [{ role: 'user', content: 'Count to one hundred.' }] }), String(concurrency), String(quick ? 2 : SECONDS), ...target.headers],
      { stdout: 'pipe', stderr: 'pipe' },
    )
    const out = proc.stdout.toString().trim()
    const r = JSON.parse(out || '{}') as { streams: number; errors: number; ttfb_p50_ms: number; ttfb_p99_ms: number; chunks_per_s: number }
    if (target.server === sim) directTtfb = r.ttfb_p50_ms
    const added = target.server === sim ? '-' : (r.ttfb_p50_ms - directTtfb).toFixed(2)
    streamRows.push(`| ${concurrency} | ${target.name} | ${r.streams} | ${r.errors} | ${r.ttfb_p50_ms?.toFixed(2)} | ${added} | ${r.ttfb_p99_ms?.toFixed(2)} | ${r.chunks_per_s?.toFixed(0)} | ${target.server.peakRssMb().toFixed(0)} |`)
    log(`stream c=${concurrency} ${target.name}: ${out} ${proc.stderr.toString().trim()}`)
  }
}

for (const s of scenarios) await s.server?.stop()

// Where the time goes: CPU per request, measured in one process (robust when the machine is busy).
const runJson = (args: string[]) => {
  const proc = Bun.spawnSync([BUN, ...args], { stdout: 'pipe', stderr: 'pipe' })
  const out = proc.stdout.toString().trim()
  raw.push(`${args.join(' ')}: ${out} ${proc.stderr.toString().trim()}`)
  return JSON.parse(out.split('\n').at(-1) || '{}') as Record<string, number>
}
const loops = quick ? 1 : 3
const cpuN = String(quick ? 3000 : 10_000)
const cpuRows: string[] = []
const cpuMedians = new Map<string, number>()
for (const [label, args] of [
  ['bare proxy (Hono, no log)', ['bare']],
  ['witness (full, writer inline)', ['witness', witnessConfig('cpu-full', 'full')]],
  ['witness (normal, writer inline)', ['witness', witnessConfig('cpu-normal', 'normal')]],
  ['witness (full, writer thread)', ['witness', witnessConfig('cpu-thread', 'full', 'thread')]],
] as const) {
  const samples = Array.from({ length: loops }, () => runJson([join(ROOT, 'bench/cpu-loop.ts'), args[0], args[1] ?? '', cpuN, upstream]).cpu_us_per_request ?? Number.NaN)
  cpuMedians.set(label, median(samples))
  cpuRows.push(`| ${label} | ${median(samples).toFixed(0)} |`)
  log(`cpu ${label}: ${median(samples).toFixed(1)} us/request`)
}
const writerFull = median(Array.from({ length: loops }, () => runJson([join(ROOT, 'bench/writer-cost.ts'), 'full', '16000']).cpu_us_per_request ?? Number.NaN))
const writerNormal = median(Array.from({ length: loops }, () => runJson([join(ROOT, 'bench/writer-cost.ts'), 'normal', '16000']).cpu_us_per_request ?? Number.NaN))
const chainRow = median(Array.from({ length: loops }, () => runJson([join(ROOT, 'bench/chain-cost.ts'), '32000']).cpu_us_per_row ?? Number.NaN))
await sim.stop()

// The writer's anatomy (bench/writer-anatomy.ts): frames per commit by owner, and the cost part by part.
let anatomy = ''
if (!quick) {
  const proc = Bun.spawnSync([BUN, join(ROOT, 'bench/writer-anatomy.ts')], { stdout: 'pipe', stderr: 'pipe' })
  anatomy = proc.stdout.toString().trim()
  raw.push(anatomy)
}

// Query scaling (bench/queries.ts), unless --quick.
let queries = ''
if (!quick && !args.includes('--no-queries')) {
  const proc = Bun.spawnSync([BUN, join(ROOT, 'bench/queries.ts'), '--sizes', '1m,10m'], { stdout: 'pipe', stderr: 'pipe' })
  queries = proc.stdout.toString().trim()
  raw.push(queries)
}

// The report.
const bare = 'bare proxy (Hono, no log)'
const lines: string[] = []
const commit = Bun.spawnSync(['git', 'rev-parse', '--short', 'HEAD'], { cwd: ROOT }).stdout.toString().trim()
const nodeVersion = Bun.spawnSync(['node', '--version']).stdout.toString().trim()
lines.push('# Benchmarks', '')
lines.push(`Measured ${new Date().toISOString().slice(0, 16)}Z on ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown cpu'}), ${Math.round(totalmem() / 2 ** 30)} GiB;`)
lines.push(`Bun ${Bun.version}, Node ${nodeVersion}, witness ${commit}. Upstream: the witness simulator on loopback (answers at once).`)
lines.push(
  `Load: wrk -t1, ${SECONDS} s per run, ${RUNS} alternating run(s) (the order turns each run), medians, after a warm-up of every server. Command: \`npm run bench${args.length ? ` -- ${args.join(' ')}` : ''}\`.`,
  'Peak MB is the kernel\'s peak resident set of the server (VmHWM, reset before each run); rows committed/s counts finished rows over wrk\'s measured time; errors are non-2xx answers and socket errors.',
  '',
)
for (const c of CONNECTIONS) {
  lines.push(`## ${c} connection${c > 1 ? 's' : ''}`, '')
  lines.push('| scenario | req/s | p50 ms | p99 ms | p50 added over direct | rows committed/s | peak MB | errors | vs bare proxy |')
  lines.push('|---|---|---|---|---|---|---|---|---|')
  const directP50 = med('direct (upstream)', c, (s) => s.p50Ms)
  const bareRps = med(bare, c, (s) => s.rps)
  for (const s of scenarios) {
    const rps = med(s.name, c, (x) => x.rps)
    const p50 = med(s.name, c, (x) => x.p50Ms)
    lines.push(
      `| ${s.name} | ${rps.toFixed(0)} | ${p50.toFixed(3)} | ${med(s.name, c, (x) => x.p99Ms).toFixed(3)} | ${s.name.startsWith('direct') ? '-' : (p50 - directP50).toFixed(3)} | ${s.db ? med(s.name, c, (x) => x.rowsPerS).toFixed(0) : '-'} | ${s.server ? med(s.name, c, (x) => x.peakMb).toFixed(0) : '-'} | ${(samples.get(`${s.name}|${c}`) ?? []).reduce((n, x) => n + x.errors, 0)} | ${(rps / bareRps).toFixed(2)}x |`,
    )
  }
  lines.push('')
}
const r32 = (name: string) => med(name, 32, (s) => s.rps)
const ratio = (a: string, b: string) => (samples.has(`${b}|32`) ? `${(r32(a) / r32(b)).toFixed(2)}x` : 'n/a')
lines.push('## Targets at 32 connections (ratios within this run)', '')
lines.push(`- witness (full) / bare proxy: ${ratio('witness (full)', bare)} (target at least 0.80x); with the fsync on the event loop: ${ratio('witness (full, fsync on loop)', bare)}`)
lines.push(`- witness (full) / Portkey on Bun: ${ratio('witness (full)', 'portkey (bun)')} (target at least 2x)`)
lines.push(`- witness (full) / Portkey on Node: ${ratio('witness (full)', 'portkey (node)')} (target at least 10x)`)
lines.push(`- p50 added over direct at 1 connection, witness (normal): ${(med('witness (normal)', 1, (s) => s.p50Ms) - med('direct (upstream)', 1, (s) => s.p50Ms)).toFixed(3)} ms (target under 0.3 ms)`, '')
if (fsyncReport) lines.push('## Fsyncs on the critical path', '', fsyncReport, '')
lines.push('## Streaming (100-chunk streams, 5 ms apart)', '')
lines.push(
  'One run each (not alternated), from one Bun client process (bench/stream-load.ts), which at 200 clients spends much of the CPU itself. "chunks/s" counts the SSE frames received.',
  '',
)
lines.push('| clients | scenario | streams | errors | TTFB p50 ms | TTFB p50 added ms | TTFB p99 ms | chunks/s | peak MB |', '|---|---|---|---|---|---|---|---|---|', ...streamRows, '')
lines.push('## Where the time goes (CPU per request)', '')
lines.push('Measured in one process (bench/cpu-loop.ts drives the server handler with 16 requests in flight against the simulator and reads the process CPU time): medians of the runs. This moves much less than requests/s when the machine is busy, but it does move (the raw output has each run).', '')
lines.push('| server | CPU µs per request |', '|---|---|', ...cpuRows, '')
lines.push(`The writer alone (bench/writer-cost.ts: the pending row, its finish, the chain entry, 16 requests per commit): ${writerFull.toFixed(0)} µs per request with \`full\`, ${writerNormal.toFixed(0)} µs with \`normal\`.`)
lines.push(`The proof chain alone (bench/chain-cost.ts: record, SHA-256, log_chain insert, head): ${chainRow.toFixed(1)} µs per chained row, one row per single-attempt request.`)
const chainShare = (100 * chainRow) / (cpuMedians.get('witness (full, writer inline)') ?? Number.NaN)
lines.push(`That is ${chainShare.toFixed(1)}% of witness's CPU per request (full, inline writer); target: the chain under 5% of throughput at 32 connections. witness is CPU-bound there, so its share of CPU is its share of throughput.`, '')
if (anatomy) lines.push('## The writer, part by part (bench/writer-anatomy.ts)', '', anatomy.replace(/^## /gm, '### '), '')
if (queries) lines.push('## Query scaling (bench/queries.ts)', '', '```', queries, '```', '')
lines.push(`Raw wrk output: [${quick ? 'benchmarks-quick-raw.txt' : 'benchmarks-raw.txt'}](${quick ? 'benchmarks-quick-raw.txt' : 'benchmarks-raw.txt'}).`, '')

const out = join(ROOT, 'docs', quick ? 'BENCHMARKS-quick.md' : 'BENCHMARKS.md')
mkdirSync(join(ROOT, 'docs'), { recursive: true })
writeFileSync(out, lines.join('\n'))
writeFileSync(join(ROOT, 'docs', quick ? 'benchmarks-quick-raw.txt' : 'benchmarks-raw.txt'), raw.join('\n'))
console.log(`\n${lines.join('\n')}\nwritten to ${out}`)
rmSync(dir, { recursive: true, force: true })
