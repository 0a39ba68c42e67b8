/**
 * The sync clone (`sync.work_dir`) stays bounded: its working tree holds
 * only the machine's own folder (a sparse checkout, own-folder.ts), a clone
 * from before is converted without losing a commit or exporting a row
 * twice, and its loose objects are packed (pack-clone.ts). Real git, real
 * bare repositories and `git daemon`, temp dirs. Each sync is a real run (a
 * subprocess, or in process); some tests run a dozen, hence their time limit.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { existsSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ensureSigningKey } from '../src/proof/keys.ts'
import { runSync } from '../src/sync/sync-job.ts'
import { HAVE_GIT, HAVE_GIT_DAEMON, bareRepo, git, startGitDaemon } from './support/git.ts'
import { runWitness } from './support/process.ts'
import { UP_TO_DATE, commitCount, ids, machine, remoteLines } from './support/sync-machine.ts'
import { daysAgo } from './support/seed.ts'
import { tempDir } from './support/temp.ts'

// Each test runs real gits (several syncs, a verify): more than the suite's 20 s default on a loaded CI machine.
setDefaultTimeout(60_000)

/** What a clone's working tree holds: its top-level names, `.git` left out. */
const checkedOut = (workDir: string) => readdirSync(workDir).filter((name) => name !== '.git').sort()

/** Turns a clone this build made into one a build before made: a full checkout of every folder, no sparse settings. */
function asCloneFromBefore(workDir: string): void {
  git(['sparse-checkout', 'disable'], workDir)
  git(['config', '--worktree', '--unset', 'core.sparseCheckout'], workDir)
  git(['config', '--worktree', '--unset', 'core.sparseCheckoutCone'], workDir)
  git(['config', '--unset', 'extensions.worktreeConfig'], workDir)
  rmSync(join(workDir, '.git', 'info', 'sparse-checkout'), { force: true })
  rmSync(join(workDir, '.git', 'config.worktree'), { force: true })
}

/** A remote another two machines (beta, gamma) have synced into, with a file at its top (put there by hand). */
async function sharedRemote(remote: string) {
  const others = [machine('beta', remote), machine('gamma', remote)]
  for (const [i, other] of others.entries()) {
    await ensureSigningKey(other.keyPath)
    await other.seed([{ timestamp: `2026-11-2${i}T10:00:00.000Z` }, { timestamp: `2026-11-2${i}T11:00:00.000Z` }])
    expect((await other.sync()).code).toBe(0)
  }
  const hand = join(tempDir(), 'hand')
  git(['clone', '-q', '-b', 'main', remote, hand])
  writeFileSync(join(hand, 'README.md'), 'telemetry of the fleet\n')
  git(['add', 'README.md'], hand)
  git(['-c', 'user.name=o', '-c', 'user.email=o@o', 'commit', '-qm', 'readme'], hand)
  git(['push', '-q', 'origin', 'main'], hand)
  return others
}

describe.skipIf(!HAVE_GIT)('the sync clone holds only its own folder', () => {
  test("a new clone of a remote holding other machines' folders checks out its own folder and the top-level files, nothing else; fleet refuses it, verify --repo says so", async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    await sharedRemote(remote)
    const alpha = machine('alpha', remote)
    await ensureSigningKey(alpha.keyPath)
    await alpha.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }])
    for (let run = 0; run < 2; run++) {
      const synced = await alpha.sync()
      expect([synced.code, synced.stderr]).toEqual([0, ''])
      expect(synced.stdout).toContain(run === 0 ? `exported 1 rows; ${UP_TO_DATE}` : `nothing new to export; ${UP_TO_DATE}`)
    }
    expect(checkedOut(alpha.workDir)).toEqual(['README.md', 'alpha'])
    for (const name of ['alpha', 'beta', 'gamma']) expect(ids(remoteLines(remote, name))).toEqual(name === 'alpha' ? [1] : [1, 2])

    const fleet = await runWitness(['fleet', '--repo', alpha.workDir, '--out', join(tempDir(), 'fleet.db')])
    expect(fleet.code).toBe(2)
    expect(fleet.stderr).toContain(`${alpha.workDir} is a sparse checkout, holding only some machines' folders (a sync.work_dir holds its own machine's alone): clone the sync remote and give fleet that clone`)
    const verified = await runWitness(['verify', '--repo', alpha.workDir])
    expect(verified.stdout).toContain(`note: ${alpha.workDir} is a sparse checkout (a sync.work_dir holds its own machine's folder alone): only alpha is verified`)
    expect(verified.stdout).toContain(`verified ${alpha.workDir}/alpha`)
    expect(verified.code).toBe(0)
  })

  test('a full clone a build before made is converted on the next run: its unpushed commits are pushed, no row is exported twice, and a run killed mid-conversion is finished by the next', async () => {
    for (const killed of [false, true]) {
      const remote = bareRepo(join(tempDir(), 'telemetry.git'))
      const [beta] = await sharedRemote(remote)
      const alpha = machine('alpha', remote)
      await alpha.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }])
      expect((await alpha.sync()).stdout).toContain(`exported 1 rows; ${UP_TO_DATE}`)
      // The remote away: two rows committed in the clone, not pushed.
      renameSync(remote, `${remote}.away`)
      await alpha.seed([{ timestamp: '2026-11-24T09:00:00.000Z' }, { timestamp: '2026-11-25T09:00:00.000Z' }])
      expect((await alpha.sync()).stdout).toMatch(/exported 2 rows; remote not updated \(.+\); 1 commit\(s\) with 2 rows wait to be pushed/)
      renameSync(`${remote}.away`, remote)
      asCloneFromBefore(alpha.workDir)
      expect(checkedOut(alpha.workDir)).toEqual(['README.md', 'alpha', 'beta', 'gamma'])
      if (killed) {
        // Killed after `init --cone` (the clone checks out nothing but the top level) and with the index locked.
        git(['sparse-checkout', 'init', '--cone'], alpha.workDir)
        writeFileSync(join(alpha.workDir, '.git', 'index.lock'), '')
      }
      await beta!.seed([{ timestamp: '2026-11-25T10:00:00.000Z' }])
      expect((await beta!.sync()).code).toBe(0)

      const converted = await alpha.sync()
      expect([killed, converted.code, converted.stderr]).toEqual([killed, 0, ''])
      expect(converted.stdout).toBe(`witness sync: alpha: nothing new to export; pushed 1 earlier commit(s) with 2 rows; ${UP_TO_DATE}\n`)
      expect(checkedOut(alpha.workDir)).toEqual(['README.md', 'alpha'])
      expect(existsSync(join(alpha.workDir, 'alpha', '2026', '11', '25.ndjson'))).toBe(true)
      expect(remoteLines(remote, 'alpha').map((l) => l.id)).toEqual([1, 2, 3])
      expect(ids(remoteLines(remote, 'beta'))).toEqual([1, 2, 3])
      // beta, gamma, the readme, alpha's first export and its commit that waited, beta's last.
      expect(commitCount(remote)).toBe(6)
    }
  }, 60_000)

  test('two machines syncing one after the other, each into its own sparse clone, never conflict and lose nothing', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const machines = [machine('alpha', remote), machine('beta', remote)]
    const seeded = new Map<string, number[]>(machines.map((m) => [m.name, []]))
    for (let round = 0; round < 3; round++) {
      for (const m of machines) {
        seeded.get(m.name)!.push(...(await m.seed([{ timestamp: daysAgo(Date.now(), 0, round * 60_000) }, { timestamp: daysAgo(Date.now(), 1, round * 60_000) }])))
        const synced = await m.sync()
        expect([m.name, synced.code, synced.stdout]).toEqual([m.name, 0, `witness sync: ${m.name}: exported 2 rows; ${UP_TO_DATE}\n`])
        expect(checkedOut(m.workDir)).toEqual([m.name])
      }
    }
    for (const m of machines) expect(ids(remoteLines(remote, m.name))).toEqual(seeded.get(m.name)!)
    expect(commitCount(remote)).toBe(6)
  }, 60_000)
})

describe.skipIf(!HAVE_GIT_DAEMON)('the sparse clone with the remote down', () => {
  test("commits stay local while the remote is down and go once it is back; the other machine's folder never comes into the working tree", async () => {
    const base = tempDir()
    const remote = bareRepo(join(base, 'telemetry.git'))
    const daemon = await startGitDaemon(base)
    try {
      const [alpha, beta] = [machine('alpha', daemon.url('telemetry.git')), machine('beta', daemon.url('telemetry.git'))]
      await beta.seed([{ timestamp: '2026-11-23T08:00:00.000Z' }])
      expect((await beta.sync()).code).toBe(0)
      await alpha.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }])
      expect((await alpha.sync()).stdout).toContain(`exported 1 rows; ${UP_TO_DATE}`)

      await daemon.stop()
      for (const [run, hour] of ['09', '10'].entries()) {
        await alpha.seed([{ timestamp: `2026-11-24T${hour}:00:00.000Z` }])
        const down = await alpha.sync()
        expect(down.code).toBe(0)
        expect(down.stdout).toMatch(new RegExp(`exported 1 rows; remote not updated \\(.+\\); ${run + 1} commit\\(s\\) with ${run + 1} rows wait to be pushed`))
        expect(checkedOut(alpha.workDir)).toEqual(['alpha'])
      }
      await daemon.start()
      await beta.seed([{ timestamp: '2026-11-25T08:00:00.000Z' }])
      expect((await beta.sync()).code).toBe(0)
      expect((await alpha.sync()).stdout).toBe(`witness sync: alpha: nothing new to export; pushed 2 earlier commit(s) with 2 rows; ${UP_TO_DATE}\n`)
      expect(ids(remoteLines(remote, 'alpha'))).toEqual([1, 2, 3])
      expect(ids(remoteLines(remote, 'beta'))).toEqual([1, 2])
      expect(checkedOut(alpha.workDir)).toEqual(['alpha'])
    } finally {
      await daemon.stop()
    }
  }, 60_000)
})

describe.skipIf(!HAVE_GIT)("the clone's loose objects", () => {
  test('stay under the threshold after many syncs, with the remote up or down, and so do the packs they go into; the clone stays whole', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const alpha = machine('alpha', remote)
    const beta = machine('beta', remote)
    await ensureSigningKey(alpha.keyPath)
    const limits = { looseObjects: 40, packs: 3 }
    const sync = () => runSync({ livePath: alpha.livePath, archiveDir: alpha.archiveDir, sync: { remote, branch: 'main', workDir: alpha.workDir, everyMs: 0 }, machine: 'alpha', keyPath: alpha.keyPath, now: Date.now, packLimits: limits })
    const counted = (name: string) => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(git(['count-objects', '-v'], alpha.workDir))![1])
    let packed = 0
    for (let run = 0; run < 14; run++) {
      const down = run >= 10 && run < 12
      if (down) renameSync(remote, `${remote}.away`)
      await alpha.seed([{ timestamp: daysAgo(Date.now(), 0, run * 60_000) }])
      if (run % 3 === 0 && !down) {
        await beta.seed([{ timestamp: daysAgo(Date.now(), 0, run * 60_000) }])
        expect((await beta.sync()).code).toBe(0)
      }
      const report = await sync()
      if (down) renameSync(`${remote}.away`, remote)
      expect([run, report.packError, report.remoteError === null]).toEqual([run, null, !down])
      const loose = counted('count')
      expect([run, loose <= limits.looseObjects, counted('packs') <= limits.packs]).toEqual([run, true, true])
      if (loose < 5) packed++
    }
    expect(packed).toBeGreaterThan(0)
    expect(ids(remoteLines(remote, 'alpha'))).toEqual(Array.from({ length: 14 }, (_, i) => i + 1))
    git(['fsck', '--no-progress', '--no-dangling'], alpha.workDir)
    // Packed by the run, in the foreground: no gc left running or detached, no gc.log.
    expect(existsSync(join(alpha.workDir, '.git', 'gc.log'))).toBe(false)
    expect(existsSync(join(alpha.workDir, '.git', 'gc.pid'))).toBe(false)
  }, 60_000)

  test("a fetch of other machines' commits under the limit comes loose, into the clone's next pack, not as a pack of its own", async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const alpha = machine('alpha', remote)
    const beta = machine('beta', remote)
    await alpha.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }])
    const sync = () => runSync({ livePath: alpha.livePath, archiveDir: alpha.archiveDir, sync: { remote, branch: 'main', workDir: alpha.workDir, everyMs: 0 }, machine: 'alpha', now: Date.now })
    expect((await sync()).remoteError).toBeNull()
    // 150 day files: more objects than git unpacks by default (100), fewer than the clone packs at once.
    await beta.seed(Array.from({ length: 150 }, (_, day) => ({ timestamp: daysAgo(Date.parse('2026-11-24T00:00:00.000Z'), day) })))
    expect((await beta.sync()).code).toBe(0)
    const packs = () => Number(/^packs: (\d+)$/m.exec(git(['count-objects', '-v'], alpha.workDir))![1])
    const before = packs()
    expect((await sync()).remoteError).toBeNull()
    expect(packs()).toBe(before)
    expect(git(['cat-file', '-t', `origin/main:beta/2026/06/28.ndjson`], alpha.workDir)).toBe('blob\n')
  })
})
