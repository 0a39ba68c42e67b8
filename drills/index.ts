/**
 * The fault drills, in the order they run and are reported. Each takes a
 * size (`small` for the test suite, `full` for `npm run drills`) and
 * returns its counts and the problems it found.
 */
import { chaosDrill } from './chaos.ts'
import { crashDrill } from './crash.ts'
import { diskDrill } from './disk.ts'
import { hostileDrill } from './hostile.ts'
import type { DrillResult, DrillSize } from './support/result.ts'

export interface Drill {
  name: string
  title: string
  /** What it does and checks, for docs/RELIABILITY.md. */
  about: string
  run(size: DrillSize, options?: { seed?: number }): Promise<DrillResult>
}

export const DRILLS: Drill[] = [
  {
    name: 'crash',
    title: 'Crash',
    about:
      'Concurrent clients on all three inference APIs (streaming and not, one chain with a fallback) against an upstream with random latency, ' +
      'while `witness serve` is killed with SIGKILL at random moments and restarted. After each restart and at the end: every 200 a client ' +
      'received (a stream only if it ended with its final event) has its rows, with the log ids it was given, in the request it was told, ' +
      'the last one `success`; no log id or request id was given twice; no row of a killed run is left `pending` once the restart has run ' +
      'its recovery; every request the upstream received carries an `x-witness-log-id` that is an attempt row of its `x-witness-request-id`, ' +
      'for the model sent, and no id went upstream twice; every `success` row was received upstream.',
    run: crashDrill,
  },
  {
    name: 'chaos',
    title: 'Chaos soak',
    about:
      'Clients on all three inference APIs, streaming and not, against two upstreams in chaos mode (`chaos-40`/`chaos-50`: requests hang, ' +
      'fail with 500 or 503, are rate-limited with `Retry-After`, get malformed or empty bodies; streams are cut, stall or end without their ' +
      'final event), over chains of one to three steps, with 5 % of clients walking away mid-request. Checks: every client that stayed got a ' +
      'whole answer (200 or 502, a stream ending with its final or an error event); each request id has exactly one final outcome (rows ' +
      'numbered without a gap, none pending, at most one success and only last) that agrees with what its client was told; each row agrees ' +
      'with the fault its upstream played; the attempt rows and the requests the upstreams received match one to one.',
    run: chaosDrill,
  },
  {
    name: 'disk',
    title: 'Disk trouble',
    about:
      'The database reaches `database_max_mb` (a ballast table takes most of it, then real rows fill the rest), and, separately, another ' +
      'process holds its write lock while calls are in flight. Meanwhile every request (each API, streaming and not) must get 503 ' +
      '`telemetry_unavailable`, the upstream must receive nothing, no row may be written, calls already in flight still get their 200, and ' +
      '`GET /heartbeat` must say 503. When the space is freed or the lock released, service must resume by itself within 10 s, the ' +
      'heartbeat turn 200, and rows whose finishing write had to wait be finished.',
    run: diskDrill,
  },
  {
    name: 'hostile',
    title: 'Hostile input',
    about:
      'Every input of the corpus (drills/hostile-corpus.ts: bad JSON, wrong types, huge values, deep nesting, invalid UTF-8, header injection, ' +
      'malformed request lines, path traversal in parameters, wrong methods, slow and stalled bodies) against every endpoint it applies to, ' +
      'over raw sockets. Each must get a 4xx with a body under 16 kB within 5 s; the server must stay up and under 300 MB (and grow less ' +
      'than 40 MB from the first round to the last); no row may be written to any of its tables (request_log, its side tables) and ' +
      'nothing may reach the upstream. Optional endpoints not in this build are skipped.',
    run: hostileDrill,
  },
]
