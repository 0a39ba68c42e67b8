/**
 * A sync's git outliving the sync: `witness sync` killed with SIGKILL (a timeout in cron or
 * systemd, an OOM kill) or stopped by a signal it handles (Ctrl-C, a timeout's SIGTERM) while its
 * git waits on the remote, a server stopped mid-sync, and a git past its time limit; and the
 * record of the git running, which must never make a sync signal a process that is not its git's.
 * The remote is a real bare repository whose pre-receive hook waits (a slow remote); the hook runs
 * in the receive-pack the pushing git started, and writes its pid for the test.
 */
import { afterAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { SyncError } from '../src/errors.ts'
import { createGit } from '../src/sync/git.ts'
import { runSync } from '../src/sync/sync-job.ts'
import { HAVE_GIT, bareRepo, git } from './support/git.ts'
import { BUN, ROOT, eventually, runWitness, waitForLine } from './support/process.ts'
import { seedRows } from './support/seed.ts'
import { tempDir } from './support/temp.ts'

// Each test runs real gits (several syncs, a verify): more than the suite's 20 s default on a loaded CI machine.
setDefaultTimeout(60_000)

const HAVE_PROC = existsSync('/proc/self/stat')
if (!HAVE_PROC) console.error('skipping the killed-sync tests: no /proc here (not Linux); a sync does not look for a git left running there')

// The hooks waiting, ended after the tests whatever becomes of them (a sync that cannot end them hangs on them).
const hooks: number[] = []
afterAll(() => {
  for (const pid of hooks) if (running(pid)) process.kill(pid, 'SIGKILL')
})

/** Whether `pid` runs (a zombie, dead and not yet reaped, does not). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return !/^[ZX]$/.test(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!)
  } catch {
    return false
  }
}

/**
 * A process that is no git's, in a process group whose leader has exited (a daemon that forked,
 * made a session of its own and forked again): what a group id a killed sync recorded may be
 * given to once that git has ended.
 */
async function daemon(): Promise<{ pid: number; pgid: number }> {
  const leader = Bun.spawn(['sh', '-c', 'sleep 600 </dev/null >/dev/null 2>&1 & echo $!'], { detached: true, stdin: 'ignore', stdout: 'pipe', stderr: 'inherit' })
  const pid = Number((await new Response(leader.stdout).text()).trim())
  await leader.exited
  hooks.push(pid)
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return { pid, pgid: Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) }
}

/** A machine syncing (every `every` inside serve) to a bare repository whose first push waits in its pre-receive hook until killed. */
function slowRemote(every = '0') {
  const dir = tempDir('witness-sync-kill-')
  const remote = bareRepo(join(dir, 'telemetry.git'))
  const hookPidPath = join(dir, 'hook.pid')
  writeFileSync(join(remote, 'hooks', 'pre-receive'), `#!/bin/sh\nif [ ! -e "${hookPidPath}" ]; then echo $$ > "${hookPidPath}.tmp" && mv "${hookPidPath}.tmp" "${hookPidPath}"; exec sleep 600; fi\n`)
  chmodSync(join(remote, 'hooks', 'pre-receive'), 0o755)
  const configPath = join(dir, 'witness.yaml')
  writeFileSync(
    configPath,
    `machine: alpha\ndatabase: ./w.db\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\n` +
      `retention: { keep_days: 30, archive_dir: ./arch }\nsync: { remote: "${remote}", branch: main, work_dir: ./clone, every: ${every} }\n`,
  )
  return {
    dir,
    remote,
    configPath,
    livePath: join(dir, 'w.db'),
    workDir: join(dir, 'clone'),
    /** Where the git running is recorded (its process group and token). */
    groupFile: join(dir, 'clone.lock.git'),
    /** Lets every push through at once (the hook waits only while there is no hook.pid). */
    noWait(): void {
      writeFileSync(hookPidPath, '')
    },
    /** The pid of the hook the first push waits in, once it waits. */
    async hook(): Promise<number> {
      await eventually(() => existsSync(hookPidPath), 60_000)
      const pid = Number(readFileSync(hookPidPath, 'utf8'))
      hooks.push(pid)
      return pid
    },
    /** The ids in the remote's day files. */
    remoteIds(): number[] {
      const files = git(['--git-dir', remote, 'ls-tree', '-r', '--name-only', 'main']).split('\n').filter((n) => n.endsWith('.ndjson'))
      return files.flatMap((f) => git(['--git-dir', remote, 'show', `main:${f}`]).split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { id: number }).id)).sort((a, b) => a - b)
    },
  }
}

describe.skipIf(!HAVE_GIT || !HAVE_PROC)('a git that outlives its sync', () => {
  test('a sync killed with SIGKILL mid-push left its git pushing; the next sync ends it, and what it started, before it touches the clone', async () => {
    const r = slowRemote()
    await seedRows(r.livePath, [{ timestamp: '2026-12-01T10:00:00.000Z' }])
    const killed = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'sync', '--config', r.configPath], { cwd: ROOT, stdin: 'ignore', stdout: 'ignore', stderr: 'ignore' })
    const hook = await r.hook()
    try {
      killed.kill('SIGKILL')
      await killed.exited
      // Its git push, the receive-pack it started and the hook wait on, with nothing left to end them.
      expect(running(hook)).toBe(true)
      await seedRows(r.livePath, [{ timestamp: '2026-12-01T11:00:00.000Z' }])
      const next = await runWitness(['sync', '--config', r.configPath])
      expect([next.code, next.stderr]).toEqual([0, ''])
      expect(running(hook)).toBe(false)
      expect(r.remoteIds()).toEqual([1, 2])
      expect(existsSync(`${r.workDir}.lock.git`)).toBe(false)
    } finally {
      if (running(hook)) process.kill(hook, 'SIGKILL')
    }
  })

  test('a git past its time limit is killed with what it started: the hook its push waits on does not run on, nor hold the sync (it kept git\'s output open)', async () => {
    const r = slowRemote()
    await seedRows(r.livePath, [{ timestamp: '2026-12-01T10:00:00.000Z' }])
    const syncing = runSync({
      livePath: r.livePath,
      archiveDir: join(r.dir, 'arch'),
      sync: { remote: r.remote, branch: 'main', workDir: r.workDir, everyMs: 0 },
      machine: 'alpha',
      now: Date.now,
      gitTimeoutMs: 4_000,
    })
    const hook = await r.hook()
    try {
      const report = await syncing
      expect(report.remoteError).toBe('git push timed out after 4000 ms')
      expect(running(hook)).toBe(false)
    } finally {
      if (running(hook)) process.kill(hook, 'SIGKILL')
    }
  }, 30_000)

  test('a record of the git running names a process group since given to a daemon whose leader has exited: the next sync signals only processes that carry the recorded git\'s token, so the daemon runs on', async () => {
    const r = slowRemote()
    await seedRows(r.livePath, [{ timestamp: '2026-12-01T10:00:00.000Z' }])
    r.noWait()
    const other = await daemon()
    expect(other.pgid).not.toBe(other.pid)
    // What a sync killed mid-push leaves once its git has ended by itself and the group id went to the daemon.
    writeFileSync(r.groupFile, `${other.pgid} ${crypto.randomUUID()}\n`)
    try {
      const next = await runWitness(['sync', '--config', r.configPath])
      expect([next.code, next.stderr]).toEqual([0, ''])
      expect(running(other.pid)).toBe(true)
      expect(existsSync(r.groupFile)).toBe(false)
      expect(r.remoteIds()).toEqual([1])
    } finally {
      if (running(other.pid)) process.kill(other.pid, 'SIGKILL')
    }
  })

  test('a git whose record cannot be written is stopped at once, and the run fails naming the file (it ran with no record, and on a kill of witness, no one to end it)', async () => {
    const dir = tempDir('witness-sync-kill-')
    const pidPath = join(dir, 'git-child.pid')
    const groupFile = join(dir, 'no-such-dir', 'clone.lock.git')
    const run = createGit({ cwd: dir, groupFile })
    // A git that would wait, through what it starts (an alias runs in a shell git starts).
    const waiting = run(['-c', `alias.wait=!echo $$ > ${pidPath}; exec sleep 120`, 'wait'])
    await expect(waiting).rejects.toThrow(SyncError)
    await expect(waiting).rejects.toThrow(`cannot record the git running in ${groupFile}`)
    // Stopped before its alias ran, or with it.
    if (existsSync(pidPath)) {
      const pid = Number(readFileSync(pidPath, 'utf8'))
      hooks.push(pid)
      await eventually(() => !running(pid))
      expect(running(pid)).toBe(false)
    }
  })

  test.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const)('witness sync stopped by %s mid-push (Ctrl-C, a timeout\'s signal, a terminal closed: they reach witness, not git in its own session) ends its git and all it started, and exits %d', async (signal, code) => {
    const r = slowRemote()
    await seedRows(r.livePath, [{ timestamp: '2026-12-01T10:00:00.000Z' }])
    const sync = Bun.spawn([BUN, join(ROOT, 'src/cli.ts'), 'sync', '--config', r.configPath], { cwd: ROOT, stdin: 'ignore', stdout: 'pipe', stderr: 'pipe' })
    const hook = await r.hook()
    try {
      sync.kill(signal)
      const [stdout, stderr, exit] = await Promise.all([new Response(sync.stdout).text(), new Response(sync.stderr).text(), sync.exited])
      expect([exit, stdout, stderr]).toEqual([code, '', `witness: sync stopped by ${signal}\n`])
      expect(running(hook)).toBe(false)
      expect(existsSync(r.groupFile)).toBe(false)
    } finally {
      if (running(hook)) process.kill(hook, 'SIGKILL')
    }
  })

  test('a server stopped (SIGTERM) while its scheduled sync waits on the remote ends that git, and all it started, as it exits', async () => {
    const r = slowRemote('1s')
    await seedRows(r.livePath, [{ timestamp: '2026-12-01T10:00:00.000Z' }])
    const server = Bun.spawn([BUN, join(ROOT, 'test/support/serve-jobs.ts'), r.configPath], { cwd: r.dir, stdin: 'ignore', stdout: 'pipe', stderr: 'inherit' })
    await waitForLine(server.stdout, /listening/, 60_000)
    const hook = await r.hook()
    try {
      server.kill('SIGTERM')
      expect(await server.exited).toBe(0)
      expect(running(hook)).toBe(false)
      expect(existsSync(r.groupFile)).toBe(false)
    } finally {
      if (running(hook)) process.kill(hook, 'SIGKILL')
    }
  })
})

const IS_ROOT = process.getuid?.() === 0
const HAVE_SETPRIV = Bun.spawnSync(['sh', '-c', 'command -v setpriv']).exitCode === 0
if (HAVE_GIT && HAVE_PROC && (!IS_ROOT || !HAVE_SETPRIV)) console.error('skipping the test of a record naming another user\'s process group: it needs root and setpriv, to start a process as one user and the sync as another')

describe.skipIf(!HAVE_GIT || !HAVE_PROC || !IS_ROOT || !HAVE_SETPRIV)('a record naming another user\'s processes', () => {
  test('a sync run as nobody, whose record names a group since given to root\'s daemon, neither fails on it nor waits for it: a process whose environment it cannot read is not its git\'s', async () => {
    const r = slowRemote()
    await seedRows(r.livePath, [{ timestamp: '2026-12-01T10:00:00.000Z' }])
    r.noWait()
    const other = await daemon()
    writeFileSync(r.groupFile, `${other.pgid} ${crypto.randomUUID()}\n`)
    const NOBODY = 65534
    expect(Bun.spawnSync(['chown', '-R', `${NOBODY}:${NOBODY}`, r.dir]).exitCode).toBe(0)
    try {
      const next = Bun.spawn(['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', BUN, join(ROOT, 'src/cli.ts'), 'sync', '--config', r.configPath], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', HOME: r.dir },
        stdin: 'ignore',
        stdout: 'pipe',
        stderr: 'pipe',
      })
      const [stderr, code] = await Promise.all([new Response(next.stderr).text(), next.exited])
      expect([code, stderr]).toEqual([0, ''])
      expect(running(other.pid)).toBe(true)
      expect(existsSync(r.groupFile)).toBe(false)
      expect(r.remoteIds()).toEqual([1])
    } finally {
      if (running(other.pid)) process.kill(other.pid, 'SIGKILL')
    }
  })
})
