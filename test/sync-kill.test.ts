/**
 * A sync's git outliving the sync: `witness sync` killed with SIGKILL (a timeout in cron or
 * systemd, an OOM kill) while its git waits on the remote, and a git past its time limit. The
 * remote is a real bare repository whose pre-receive hook waits (a slow remote); the hook runs in
 * the receive-pack the pushing git started, and writes its pid for the test.
 */
import { afterAll, describe, expect, test } from 'bun:test'
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runSync } from '../src/sync/sync-job.ts'
import { HAVE_GIT, bareRepo, git } from './support/git.ts'
import { BUN, ROOT, eventually, runWitness } from './support/process.ts'
import { seedRows } from './support/seed.ts'
import { tempDir } from './support/temp.ts'

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

/** A machine syncing to a bare repository whose first push waits in its pre-receive hook until killed. */
function slowRemote() {
  const dir = tempDir('witness-sync-kill-')
  const remote = bareRepo(join(dir, 'telemetry.git'))
  const hookPidPath = join(dir, 'hook.pid')
  writeFileSync(join(remote, 'hooks', 'pre-receive'), `#!/bin/sh\nif [ ! -e "${hookPidPath}" ]; then echo $$ > "${hookPidPath}.tmp" && mv "${hookPidPath}.tmp" "${hookPidPath}"; exec sleep 600; fi\n`)
  chmodSync(join(remote, 'hooks', 'pre-receive'), 0o755)
  const configPath = join(dir, 'witness.yaml')
  writeFileSync(
    configPath,
    `machine: alpha\ndatabase: ./w.db\nproviders: { kimi: {} }\nchains: { default: [ { provider: kimi, model: k } ] }\n` +
      `retention: { keep_days: 30, archive_dir: ./arch }\nsync: { remote: "${remote}", branch: main, work_dir: ./clone, every: 0 }\n`,
  )
  return {
    dir,
    remote,
    configPath,
    livePath: join(dir, 'w.db'),
    workDir: join(dir, 'clone'),
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
})
