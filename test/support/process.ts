/** Real subprocesses for crash and lock tests. */
import type { Subprocess } from 'bun'
import { join } from 'node:path'
import { RUNTIME_ENV } from '../../src/runtime-env.ts'

export const ROOT = join(import.meta.dir, '..', '..')
export const BUN = process.execPath

/** Reads a subprocess's stream until a line matches; returns the match. */
export async function waitForLine(stream: ReadableStream<Uint8Array>, pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
  const reader = stream.getReader()
  const decoder = new TextDecoder()
  let buffer = ''
  const deadline = Date.now() + timeoutMs
  // A cleared timer, not Bun.sleep: a pending sleep would keep the caller's process alive.
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<{ value: undefined; done: true }>((resolve) => {
    timer = setTimeout(() => resolve({ value: undefined, done: true }), timeoutMs)
  })
  try {
    while (Date.now() < deadline) {
      const { value, done } = await Promise.race([reader.read(), expired])
      if (done) break
      buffer += decoder.decode(value, { stream: true })
      const match = buffer.match(pattern)
      if (match) return match
    }
  } finally {
    clearTimeout(timer)
    reader.releaseLock()
  }
  throw new Error(`no line matching ${pattern} within ${timeoutMs} ms; got:\n${buffer}`)
}

/** Starts `witness serve` (with `args`, such as `--db PATH`) as its own process on a free port, with the environment its launchers set; resolves with its URL. */
export async function spawnWitness(configPath: string, env: Record<string, string> = {}, args: string[] = []): Promise<{ proc: Subprocess<'ignore', 'pipe', 'pipe'>; url: string }> {
  const proc = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'serve', '--config', configPath, '--port', '0', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...RUNTIME_ENV, ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const match = await waitForLine(proc.stderr, /listening on (http:\/\/[\d.]+:\d+)/)
  return { proc, url: match[1]! }
}

/** Takes the write lock on a database from another process until `release` is called. */
export async function holdWriteLock(dbPath: string): Promise<{ release(): Promise<void> }> {
  const proc = Bun.spawn([BUN, join(ROOT, 'test/support/hold-lock.ts'), dbPath], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' })
  await waitForLine(proc.stdout, /locked/)
  return {
    async release() {
      proc.stdin.end()
      await proc.exited
    },
  }
}

/** Runs the witness CLI as a subprocess and waits for it. */
export async function runWitness(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', ...(process.env.HOME ? { HOME: process.env.HOME } : {}), ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { code, stdout, stderr }
}

/** Takes a job's lock file from another process until `release` (or `kill`) is called. */
export async function holdJobLock(job: string, lockPath: string): Promise<{ release(): Promise<void>; kill(): Promise<void> }> {
  const proc = Bun.spawn([BUN, join(ROOT, 'test/support/hold-job-lock.ts'), job, lockPath], { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' })
  await waitForLine(proc.stdout, /locked/)
  return {
    async release() {
      proc.stdin.end()
      await proc.exited
    },
    async kill() {
      proc.kill('SIGKILL')
      await proc.exited
    },
  }
}

/**
 * Waits until `done()` holds, looking every 10 ms, for at most `timeoutMs`: for what another
 * process or the server does in its own time (a busy machine may take a while), instead of a fixed
 * sleep that a slow run overruns. The caller asserts after it, so a wait that ran out still fails.
 */
export async function eventually(done: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (!done() && performance.now() < deadline) await Bun.sleep(10)
}

/** A port on 127.0.0.1 that was free a moment ago. */
export function freePort(): number {
  const probe = Bun.listen({ hostname: '127.0.0.1', port: 0, socket: { data() {} } })
  const port = probe.port
  probe.stop(true)
  return port
}
