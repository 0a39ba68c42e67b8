/**
 * Git remotes on this machine for sync tests: a bare repository by path,
 * `git daemon` on 127.0.0.1, and `git http-backend` behind a small Bun.serve
 * CGI shim that demands HTTP Basic auth with a token.
 */
import type { Subprocess } from 'bun'
import { join } from 'node:path'
import { freePort } from './process.ts'

function which(binary: string): boolean {
  return Bun.spawnSync(['sh', '-c', `command -v ${binary}`]).exitCode === 0
}

/** Whether git, and its daemon and http-backend, can run here (tests that need them skip with a reason). */
export const HAVE_GIT = which('git')
const execPath = HAVE_GIT ? Bun.spawnSync(['git', '--exec-path']).stdout.toString().trim() : ''
export const HAVE_GIT_DAEMON = HAVE_GIT && (await Bun.file(join(execPath, 'git-daemon')).exists())
export const HAVE_GIT_HTTP_BACKEND = HAVE_GIT && (await Bun.file(join(execPath, 'git-http-backend')).exists())
if (!HAVE_GIT) console.error('skipping git sync tests: git is not installed (Debian package "git")')
else if (!HAVE_GIT_DAEMON || !HAVE_GIT_HTTP_BACKEND) console.error('skipping some git sync tests: git daemon or git http-backend is missing')

/** Runs git synchronously; throws with its output on failure. */
export function git(args: string[], cwd?: string): string {
  const result = Bun.spawnSync(['git', ...args], { cwd, env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' } })
  if (result.exitCode !== 0) throw new Error(`git ${args.join(' ')} failed: ${result.stderr.toString()}`)
  return result.stdout.toString()
}

/** Creates an empty bare repository whose HEAD is `main`. */
export function bareRepo(path: string): string {
  git(['init', '-q', '--bare', '--initial-branch=main', path])
  return path
}

async function waitForPort(port: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    try {
      const socket = await Bun.connect({ hostname: '127.0.0.1', port, socket: { data() {} } })
      socket.end()
      return
    } catch {
      await Bun.sleep(20)
    }
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`)
}

export interface GitDaemon {
  /** `git://127.0.0.1:PORT/` + a repository path under the base dir. */
  url(repo: string): string
  stop(): Promise<void>
  /** Starts it again on the same port. */
  start(): Promise<void>
}

/** `git daemon` serving every repository under `baseDir`, pushes allowed, on 127.0.0.1. */
export async function startGitDaemon(baseDir: string): Promise<GitDaemon> {
  const port = freePort()
  let proc: Subprocess | null = null
  const start = async () => {
    proc = Bun.spawn(
      ['git', 'daemon', '--reuseaddr', '--export-all', '--enable=receive-pack', `--base-path=${baseDir}`, '--listen=127.0.0.1', `--port=${port}`, baseDir],
      { stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' },
    )
    await waitForPort(port)
  }
  await start()
  return {
    url: (repo) => `git://127.0.0.1:${port}/${repo}`,
    start,
    async stop() {
      proc?.kill('SIGTERM')
      await proc?.exited
      proc = null
    },
  }
}

export interface GitHttp {
  url(repo: string): string
  /** The Authorization headers received, decoded (user:password). */
  credentials: string[]
  /** Every request line received (method and URL). */
  requests: string[]
  stop(): Promise<void>
}

/**
 * `git http-backend` for the repositories under `baseDir`, behind a Bun.serve
 * CGI shim on 127.0.0.1 that answers 401 unless the request carries HTTP
 * Basic auth whose password is `token` (as Gitea does with a token).
 */
export function startGitHttp(baseDir: string, token: string): GitHttp {
  const credentials: string[] = []
  const requests: string[] = []
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req) {
      const url = new URL(req.url)
      requests.push(`${req.method} ${req.url}`)
      const auth = req.headers.get('authorization')
      const decoded = auth?.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString() : null
      if (decoded) credentials.push(decoded)
      if (decoded?.split(':').slice(1).join(':') !== token) {
        return new Response('authentication required\n', { status: 401, headers: { 'www-authenticate': 'Basic realm="git"' } })
      }
      const body = new Uint8Array(await req.arrayBuffer())
      const proc = Bun.spawn(['git', 'http-backend'], {
        env: {
          PATH: process.env.PATH ?? '',
          GIT_PROJECT_ROOT: baseDir,
          GIT_HTTP_EXPORT_ALL: '1',
          REMOTE_USER: decoded.split(':')[0] ?? 'witness',
          REMOTE_ADDR: '127.0.0.1',
          REQUEST_METHOD: req.method,
          PATH_INFO: decodeURIComponent(url.pathname),
          QUERY_STRING: url.search.slice(1),
          CONTENT_TYPE: req.headers.get('content-type') ?? '',
          CONTENT_LENGTH: String(body.length),
          HTTP_CONTENT_ENCODING: req.headers.get('content-encoding') ?? '',
          GIT_PROTOCOL: req.headers.get('git-protocol') ?? '',
        },
        stdin: body,
        stdout: 'pipe',
        stderr: 'ignore',
      })
      const out = Buffer.from(await new Response(proc.stdout).arrayBuffer())
      await proc.exited
      let split = out.indexOf('\r\n\r\n')
      let gap = 4
      if (split < 0) {
        split = out.indexOf('\n\n')
        gap = 2
      }
      const headers = new Headers()
      let status = 200
      for (const line of out.subarray(0, split).toString().split(/\r?\n/)) {
        const at = line.indexOf(':')
        if (at < 0) continue
        const [name, value] = [line.slice(0, at).trim(), line.slice(at + 1).trim()]
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10)
        else headers.append(name, value)
      }
      return new Response(out.subarray(split + gap), { status, headers })
    },
  })
  return {
    url: (repo) => `http://127.0.0.1:${server.port}/${repo}`,
    credentials,
    requests,
    async stop() {
      await server.stop(true)
    },
  }
}
