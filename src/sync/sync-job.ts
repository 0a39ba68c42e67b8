/**
 * The sync job (`witness sync`, and every `sync.every` inside `serve`):
 *
 * 1. prepare the clone (`sync.work_dir`) and fetch + rebase onto the remote;
 * 2. sign a checkpoint of the chain head, then, inside one read snapshot of
 *    the live database, export the rows not yet exported into
 *    `<machine>/YYYY/MM/DD.ndjson` and the proof up to the chain head of that
 *    same snapshot (so a row finished meanwhile goes out next time with its
 *    chain entry, never its entry alone);
 * 3. commit, and only then save the new high-water mark in the database;
 * 4. push (pull --rebase and push again when another machine got there first);
 * 5. pack the clone's loose objects when there are many (pack-clone.ts).
 *
 * Offline: the commit stays local and the report says how many commits and
 * rows wait; the next run that reaches the remote pushes them. A new clone
 * exports only once it has seen the remote, so it never rewrites a day file
 * that already exists there. One run at a time (`<work_dir>.lock`); a git a
 * killed run left running is ended first (`<work_dir>.lock.git`, git-group.ts).
 */
import { existsSync } from 'node:fs'
import type { SyncSettings } from '../config.ts'
import { isoTime } from '../clock.ts'
import { inReadSnapshot, openLiveForJob, retryWhileBusy } from '../jobs/job-db.ts'
import { takeJobLock } from '../jobs/job-lock.ts'
import { commitExport, prepareClone, pushWithRetry, updateFromRemote, waiting } from './clone.ts'
import { chainHead } from '../proof/append.ts'
import { checkpointNow } from '../proof/checkpoint-job.ts'
import { loadSigningKey, publicKeyFile } from '../proof/keys.ts'
import { writeState } from '../jobs/job-db.ts'
import { encodeProofState, exportProof, readProofState } from './export-proof.ts'
import { exportRows } from './export.ts'
import { checkFolders, refuseRename } from './folder-keys.ts'
import { createGit } from './git.ts'
import { type PackLimits, packClone } from './pack-clone.ts'
import { endLeftoverGit } from './git-group.ts'
import { CHAIN_EXPORT_KEY, type Covered, NO_SYNC_STATE, readSyncState, writeSyncState } from './sync-state.ts'

export interface SyncJobOptions {
  livePath: string
  archiveDir: string
  sync: SyncSettings
  machine: string
  now: () => number
  /** WITNESS_SYNC_TOKEN, if set; reaches git only through its credential mechanism. */
  token?: string
  /** WITNESS_SYNC_USER (default "witness"). */
  user?: string
  /** Environment for git (default: this process's), less the `GIT_*` variables git-env.ts leaves out. */
  env?: Record<string, string | undefined>
  /** The machine's signing key (proof.key_path): a checkpoint is signed at every sync. */
  keyPath?: string
  /** Loose objects and packs in the clone past which they are packed (default pack-clone.ts LOOSE_OBJECTS_MAX and PACKS_MAX). */
  packLimits?: PackLimits
  /** Push attempts when another machine pushed first (default 6). */
  pushAttempts?: number
  gitTimeoutMs?: number
  /**
   * Runs after the rows are read and before the proof is, inside the
   * snapshot. Tests use it to finish a row in that window; nothing else does.
   */
  afterRowExport?: () => Promise<void> | void
  /** Runs after the live rows are read and before the archives are, when they are (a test seam, as above). */
  beforeArchiveScan?: () => Promise<void> | void
}

export interface SyncReport {
  /** Rows written to the export by this run. */
  exported: number
  /** Whether this run made a commit. */
  committed: boolean
  /** A new clone that has not reached the remote yet exports nothing (so it never forks a day file). */
  deferred: boolean
  /** Commits of earlier runs, and their rows, that this run pushed (null: none). */
  pushedEarlier: { commits: number; rows: number } | null
  /** Commits and rows in the clone that the remote does not have yet. */
  waitingCommits: number
  waitingRows: number
  /** Why the remote was not brought up to date (null when it was). */
  remoteError: string | null
  /** Archives that could not be read (`file: why`): what they hold is owed, and retried every run. */
  unreadable: string[]
  /** Why the clone's loose objects could not be packed (null: packed, or too few to pack). */
  packError: string | null
}

function syncLockPath(workDir: string): string {
  return `${workDir.replace(/\/+$/, '')}.lock`
}

/** Where the process group and token of the git a run is running are recorded (git-group.ts). */
export function syncGitGroupPath(workDir: string): string {
  return `${syncLockPath(workDir)}.git`
}

/** Runs the sync once. Throws JobBusyError when another run holds the lock, SyncError when git fails locally. */
export async function runSync(options: SyncJobOptions): Promise<SyncReport> {
  const { sync, machine } = options
  const lock = takeJobLock('sync', syncLockPath(sync.workDir), options.now)
  try {
    const groupFile = syncGitGroupPath(sync.workDir)
    // A run killed while git ran (SIGKILL, an OOM kill) left it running: it is ended before the clone is touched.
    await endLeftoverGit(groupFile)
    const git = createGit({ cwd: sync.workDir, token: options.token, user: options.user, env: options.env, timeoutMs: options.gitTimeoutMs, groupFile })
    const clone = await prepareClone(git, sync.workDir, sync.remote, sync.branch, machine)
    const remote = await updateFromRemote(git, sync.branch)

    let exported = 0
    let committed = false
    // What the clone holds once this run has committed: pushed too, if the push below succeeds.
    let covered: Covered | null = null
    let mayExport = false
    let unreadable: string[] = []
    const live = existsSync(options.livePath) ? await openLiveForJob(options.livePath, 'sync') : null
    try {
      const saved = live ? readSyncState(live) : NO_SYNC_STATE
      if (saved.repo === clone.repoId && saved.machine !== null && saved.machine !== machine) refuseRename(saved.machine, machine)
      // A clone this state was not written for starts over (lines it already has are not written twice),
      // and a new clone waits until it has seen the remote, so it never forks a day file.
      const state = saved.repo === clone.repoId ? { ...saved, machine } : { ...NO_SYNC_STATE, repo: clone.repoId, machine }
      mayExport = saved.repo === clone.repoId || remote.reachable
      if (live && mayExport) {
        // The proof goes with the rows: a fresh checkpoint (signed before the snapshot: it writes), the chain entries, the public key.
        const key = options.keyPath && existsSync(options.keyPath) ? await loadSigningKey(options.keyPath) : null
        if (key) await checkFolders(git, sync.workDir, machine, key.keyId)
        if (key) await checkpointNow(live, key, machine, options.now)
        // One snapshot for both halves: the proof stops at the head that the exported rows reached.
        const { result, proof } = await inReadSnapshot(live, async () => {
          const through = chainHead(live)?.seq ?? 0 // read first, so every entry up to here has its row among those read below
          const result = await exportRows({ live, archiveDir: options.archiveDir, workDir: sync.workDir, machine, state, beforeArchives: options.beforeArchiveScan })
          await options.afterRowExport?.()
          const proof = await exportProof({
            live,
            archiveDir: options.archiveDir,
            workDir: sync.workDir,
            machine,
            publicKey: key ? publicKeyFile(key) : null,
            from: readProofState(live, clone.repoId),
            through,
          })
          return { result, proof }
        })
        exported = result.written
        unreadable = [...new Set([...result.unreadable, ...proof.unreadable])]
        if (exported > 0 || proof.entries > 0 || proof.checkpoints > 0) {
          committed = await commitExport(git, machine, `witness sync: ${machine}: ${exported} rows, ${result.files.length} day files, ${proof.entries} chain entries, ${proof.checkpoints} checkpoints`)
        }
        // Only after the commit: a kill before this re-exports the same rows, which the day files refuse twice.
        await retryWhileBusy('sync: saving the export high-water mark', () =>
          live.transaction(() => {
            writeSyncState(live, result.state, isoTime(options.now()))
            writeState(live, CHAIN_EXPORT_KEY, encodeProofState(clone.repoId, proof.state), isoTime(options.now()))
          })(),
        )
        covered = { watermark: result.state.watermark, pending: result.state.pending }
      }
    } finally {
      live?.close()
    }

    let remoteError = remote.reachable ? null : remote.reason
    const queued = await waiting(git, sync.branch)
    if (remote.reachable) remoteError = await pushWithRetry(git, sync.branch, options.pushAttempts ?? 6)
    const left = await waiting(git, sync.branch)
    if (covered && remoteError === null && left.commits === 0) await savePushed(options.livePath, covered, isoTime(options.now()))
    // Last, with the remote up or down: an offline run's commits are loose objects too.
    const packError = await packClone(git, options.packLimits)
    // Commits of earlier runs (the remote was down then) that this run pushed.
    const earlier = { commits: queued.commits - left.commits - (committed ? 1 : 0), rows: queued.rows - left.rows - (committed ? exported : 0) }
    return {
      exported,
      committed,
      deferred: live !== null && !mayExport,
      waitingCommits: left.commits,
      waitingRows: left.rows,
      pushedEarlier: earlier.commits > 0 ? earlier : null,
      remoteError,
      unreadable,
      packError,
    }
  } finally {
    lock.release()
  }
}

/** Records that the remote holds everything up to `covered`: archives of those rows may now be deleted. */
async function savePushed(livePath: string, covered: Covered, at: string): Promise<void> {
  const live = await openLiveForJob(livePath, 'sync')
  try {
    await retryWhileBusy('sync: saving what the remote holds', () => live.transaction(() => writeSyncState(live, { ...readSyncState(live), pushed: covered }, at))())
  } finally {
    live.close()
  }
}

/** The line `witness sync` prints for a report. */
export function describeSync(report: SyncReport, branch: string): string {
  const what = report.deferred
    ? 'nothing exported yet (a new clone waits until it has reached the remote once)'
    : report.exported > 0
      ? `exported ${report.exported} rows`
      : 'nothing new to export'
  const problems =
    (report.unreadable.length ? `; ARCHIVES UNREADABLE, their rows still owed: ${report.unreadable.join('; ')}` : '') +
    (report.packError ? `; the clone's loose objects could not be packed (${report.packError})` : '')
  const caughtUp = report.pushedEarlier ? `; pushed ${report.pushedEarlier.commits} earlier commit(s) with ${report.pushedEarlier.rows} rows` : ''
  if (report.remoteError === null && report.waitingCommits === 0) return `${what}${caughtUp}; the remote branch ${branch} is up to date${problems}`
  // A clone that never reached the remote holds nothing: its rows wait in the database, not in commits.
  const wait = report.deferred ? '' : `; ${report.waitingCommits} commit(s) with ${report.waitingRows} rows wait to be pushed`
  return `${what}; remote not updated (${report.remoteError ?? 'unknown reason'})${wait}${problems}`
}
