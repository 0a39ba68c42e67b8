/**
 * `witness verify [--config PATH] [--db PATH] [--key PATH] [--live-only] [--repo CLONE [--machine NAME]] [--receipt TEXT] [--work-dir DIR]`:
 * recomputes the hash chain over the live database and, given its config,
 * the archives its rows were moved to (not with `--live-only`, which then
 * only notes the entries the live file lacks), or over a git export; checks every signed checkpoint and, if given, a
 * receipt. Names the first broken places; exits 0 only when everything
 * verifies, 1 when something does not, 2 on a usage error.
 *
 * What it reads goes into a work file on disk (proof/work-store.ts), under
 * the temp directory or `--work-dir`, so memory does not grow with the rows
 * or the signed checkpoints.
 *
 * `--key` needs only a public key (the published `public-key.json`, the key
 * file, or a JWK), so anyone can verify. With `--repo` it pins the key the
 * machine's folder must be signed with: a folder rewritten and re-signed
 * with a new key (its own `public-key.json` replaced) then fails.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { type Config } from '../config.ts'
import { loadConfig, configPathFrom } from '../config-file.ts'
import { ArchiveError, JobBusyError } from '../errors.ts'
import { type PublicKeyFile, keyIdOf, readPublicKey } from '../proof/keys.ts'
import { decodeReceipt } from '../proof/receipt.ts'
import { exportHistory } from '../proof/export-history.ts'
import { type PrunedRun, provenPruned } from '../proof/pruned.ts'
import { rowsAre } from '../proof/id-ranges.ts'
import { isSparseCheckout } from '../sync/own-folder.ts'
import { exportMachines, gatherExport } from '../proof/export-folder.ts'
import { type LiveFacts, chainBegins, checkpointMachines, conflictingRows, gatherArchive, gatheredCheckpoints, gatherLive } from '../proof/sources.ts'
import { type Verdict, verifyEvidence, verifyReceiptRows } from '../proof/verify.ts'
import { type WorkStore, openWorkStore } from '../proof/work-store.ts'
import { eachArchiveForAudit, rowsOfOtherMonths } from '../retention/archive-query.ts'
import { type JobLock, waitForJobLock, waitToReadJobFiles } from '../jobs/job-lock.ts'
import { archiveLockPath } from '../retention/archive-job.ts'
import { type Command, UsageError, dbFlagOf, parsed } from './args.ts'
import { openWitnessDb, optionalConfig, samePath } from './read-db.ts'
import { readState } from '../jobs/job-db.ts'
import { ARCHIVED_MAX_ID_KEY } from '../retention/mover.ts'

/** How long verify --archives waits for a run of the archive job to end. */
const LOCK_WAIT_MS = 120_000

export const verifyCommand: Command = {
  summary: 'verify [--config PATH | --db PATH] [--key PUBLIC-KEY] [--live-only] [--repo CLONE [--machine NAME]] [--receipt TEXT] [--work-dir DIR]  check the hash chain, checkpoints and receipts',
  async run(args) {
    const { values } = parsed(() =>
      parseArgs({
        args,
        options: {
          config: { type: 'string' },
          db: { type: 'string' },
          key: { type: 'string' },
          archives: { type: 'boolean' },
          'live-only': { type: 'boolean' },
          repo: { type: 'string' },
          machine: { type: 'string' },
          receipt: { type: 'string' },
          'work-dir': { type: 'string' },
        },
      }),
    )
    const workDir = values['work-dir']
    if (workDir !== undefined && (!existsSync(workDir) || !statSync(workDir).isDirectory())) {
      throw new UsageError(`--work-dir: no directory at ${workDir}`, { showUsage: false })
    }
    const receipt = values.receipt === undefined ? null : decodeReceipt(values.receipt)
    if (values.receipt !== undefined && !receipt) {
      console.log('receipt: not a witness receipt (it does not decode); it was altered or cut')
      return 1
    }
    const pinned = values.key === undefined ? null : await publicKeyAt(values.key)
    if (values.repo) return verifyRepo(values.repo, receipt, pinned, values.machine ?? null, workDir)
    if (values.machine !== undefined) throw new UsageError('--machine chooses a folder of a git export: use it with --repo')

    dbFlagOf(values.db)
    const configPath = configPathFrom(values.config)
    const config =
      values.db === undefined || values.config !== undefined
        ? existsSync(configPath) ? loadConfig(configPath) : null
        : optionalConfig(configPath, values.db, 'no archives, the key only with --key')
    const dbPath = values.db ?? config?.databasePath
    if (!dbPath) throw new UsageError('no database: pass --db PATH or --config PATH')
    if (!existsSync(dbPath)) throw new UsageError(`no database at ${dbPath}`)
    const keyPath = values.key ?? config?.proof.keyPath
    // A key that is there but cannot be read is not a missing key: the checkpoints would look forged.
    if (keyPath && existsSync(keyPath)) {
      try {
        accessSync(keyPath, constants.R_OK)
      } catch (error) {
        throw new UsageError(`cannot read the key ${keyPath} (${(error as { code?: string }).code ?? (error as Error).message}): run verify as a user who may, or pass --key with the published public-key.json`)
      }
    }
    const keys = new Map<string, JsonWebKey>()
    const key = pinned ?? (keyPath && existsSync(keyPath) ? await readPublicKey(keyPath) : null)
    if (key) keys.set(key.key_id, key.jwk)

    if (values.archives && values['live-only']) throw new UsageError('--archives and --live-only: choose one')
    if (values.archives && !config) throw new UsageError('--archives needs the config (for retention.archive_dir)')
    // The config's archives are its own database's, not those of another file given with --db (a copy).
    const own = config && samePath(dbPath, config.databasePath) ? config : null
    if (values.archives && !own) throw new UsageError(`--archives: ${dbPath} is not the database of the config ${configPath}, so its archives are unknown`)
    // A file that is not a witness database is a usage error, before anything is read.
    const probe = openWitnessDb(dbPath)
    const everArchived = readState(probe, ARCHIVED_MAX_ID_KEY) !== null
    probe.close()
    // With its config, a database whose rows were ever archived is verified with its archives unless
    // --live-only: from the live file alone, entries missing from it could only be noted, and anyone
    // who can write the file could delete rows and mark them archived.
    const withArchives = own !== null && (Boolean(values.archives) || (everArchived && !values['live-only']))
    const archiveDir = own?.retention.archiveDir ?? ''
    const store = openWorkStore(workDir)
    let archiveLock: JobLock | null = null
    const forged: string[] = []
    try {
      // The live file is copied in one read snapshot, taken before the archives are read (sources.ts,
      // gatherLive). The archive job is kept from moving and deleting months while they are read (it
      // waits for the lock), or an archive deleted meanwhile would read as damaged, or its entries as missing.
      if (withArchives && existsSync(archiveDir)) archiveLock = await keepArchiveJobOff(archiveDir)
      const live = await gatherLive(store, dbPath).catch((error: unknown) => {
        throw (error as { code?: string }).code === 'SQLITE_FULL' ? workDiskFull(store.dir, error) : error
      })
      if (withArchives && live.archived && !existsSync(archiveDir)) {
        forged.push(`rows were moved to the archives, and the archive directory ${archiveDir} does not exist: the entries they took with them cannot be checked`)
      }
      // What the store holds first wins, so the live copy of a row found in an archive too is the one checked.
      const archives = !withArchives
        ? 0
        : await eachArchiveForAudit(archiveDir, store.dir, async (archive) => {
            let pending: Awaited<ReturnType<typeof gatherArchive>>
            try {
              pending = await gatherArchive(store, archive.db.filename, archive.path)
            } catch (error) {
              // The work file's disk filling up is not the archive's fault.
              if ((error as { code?: string }).code === 'SQLITE_FULL') throw workDiskFull(store.dir, error)
              throw new ArchiveError(`archive ${archive.path} cannot be read: ${(error as Error).message}`)
            }
            if (pending.count) forged.push(`archive ${archive.path} holds pending row(s) ${pending.text()}: the archive job moves only finished rows, so they were put there by hand`)
            const strays = rowsOfOtherMonths(archive)
            if (strays) forged.push(`archive ${archive.path} holds ${strays.count} row(s) of other months (${strays.months.join(', ')}): the file was renamed or replaced by another month's, or rows were put there by hand (reads of those months miss them)`)
          })
      const conflicts = await conflictingRows(store)
      if (conflicts.count) {
        forged.push(`${rowsAre(conflicts)} in two copies with different contents (in the live database and an archive, in two archives, or twice in one file): one copy was put there by hand`)
      }
      // Without the archives, entries may be missing because they were archived, unless nothing ever was.
      const complete = withArchives || !live.archived
      const { proven, unproven } = await provenPruned(live.pruned, keys)
      const starts = await chainBegins(live.chainStartsAt, store, 'stated', proven)
      const verdict = await verifyEvidence({ store, keys, complete, chainStartsAtLogId: starts, pruned: proven })
      const checkpoints = gatheredCheckpoints(store)
      for (const r of unproven) {
        verdict.notes.push(`chain_pruned says chain entries ${r.fromSeq}-${r.toSeq} were deleted with the archive of ${r.month}, but no known key signed that record (written by hand, or by a witness from before such records were signed): it excuses nothing`)
      }
      forged.push(...tailProblems(live, verdict, complete, proven))
      // No chain at all: nothing is proved. A database from before the chain (schema 1-2) gets one, and
      // where it begins, once witness opens it; one from after it had the table dropped.
      if (!live.hasChain) {
        forged.unshift(`${dbPath} has no hash chain (schema version ${live.userVersion}): nothing in it is proved. If it predates the chain, open it once with witness init (or serve), which marks where the chain begins, and verify again`)
      }
      if (forged.length) {
        verdict.problems.push(...forged)
        verdict.ok = false
      }
      if (checkpoints.count && keys.size === 0) verdict.notes.push(`no public key at ${keyPath ?? '(none)'}`)
      // Past the newest signed head, entries rewritten (or the tail dropped) on this machine would verify
      // here: the export's checkpoints, published elsewhere, would not.
      const signedTo = checkpoints.highestSeq
      if (verdict.lastSeq !== null && verdict.lastSeq > signedTo) {
        const after = signedTo ? `come after the newest signed checkpoint (entry ${signedTo})` : 'are covered by no signed checkpoint'
        verdict.notes.push(`chain entries ${Math.max(signedTo + 1, verdict.firstSeq ?? 1)}-${verdict.lastSeq} ${after}: this database alone cannot show they were not rewritten, or the tail dropped; verify the export too (--repo)`)
      }
      report(dbPath + (archives ? ` and ${archives} archive file(s)` : ''), verdict)
      // A receipt's row missing from the live file alone may have been archived since.
      const missingHint = !withArchives && live.archived ? ' (archived since? verify without --live-only, with the config that names the archives)' : ''
      const receiptOk = receipt ? sameMachine(receipt.machine, store, values.db ? null : config) && checkReceipt(receipt.rows, store, missingHint) : true
      return verdict.ok && receiptOk && (keys.size > 0 || checkpoints.count === 0) ? 0 : 1
    } finally {
      archiveLock?.release()
      store.close()
    }
  },
}

/**
 * Keeps the archive job from moving or deleting months while verify reads them: its lock, waited for
 * up to LOCK_WAIT_MS while a run holds it; a shared hold on it for a user who may only read the
 * archive directory. A run still going after that is a usage error naming it (exit 2), not a failed
 * verification.
 */
async function keepArchiveJobOff(archiveDir: string): Promise<JobLock> {
  const path = archiveLockPath(archiveDir)
  let writable = true
  try {
    accessSync(archiveDir, constants.W_OK)
  } catch {
    writable = false
  }
  try {
    return writable ? await waitForJobLock('archive', path, LOCK_WAIT_MS, 'witness verify') : await waitToReadJobFiles('archive', path, LOCK_WAIT_MS)
  } catch (error) {
    if (!(error instanceof JobBusyError)) throw error
    throw new UsageError(
      `the archive job has been running for over ${LOCK_WAIT_MS / 1000} s (${error.message.replace(/^archive: /, '').replace(/; nothing done$/, '')}): verify reads the archives once it has ended; run it again then, or with --live-only now`,
      { showUsage: false },
    )
  }
}

/** The work file's disk is full: said as such, with the way out. */
function workDiskFull(dir: string, error: unknown): UsageError {
  return new UsageError(`the disk of verify's work directory ${dir} is full (${(error as Error).message}): give --work-dir on a disk with room for about the size of the rows read`, { showUsage: false })
}

/** The public key an explicit `--key` names; a usage error when there is none there. */
async function publicKeyAt(path: string): Promise<PublicKeyFile> {
  if (!existsSync(path)) throw new UsageError(`--key: no file at ${path}`)
  try {
    accessSync(path, constants.R_OK)
  } catch (error) {
    throw new UsageError(`--key: ${path} cannot be read (${(error as { code?: string }).code ?? (error as Error).message})`, { showUsage: false })
  }
  const key = await readPublicKey(path)
  if (!key) throw new UsageError(`--key: ${path} holds no Ed25519 public key (give the published public-key.json, the key file, or a JWK)`)
  return key
}

/**
 * Verifies each machine folder of a clone against its key: the pinned one
 * when `--key` is given (the folder's own public-key.json must then be that
 * key), else the one the folder publishes.
 */
async function verifyRepo(clone: string, receipt: ReturnType<typeof decodeReceipt>, pinned: PublicKeyFile | null, only: string | null, workDir: string | undefined): Promise<number> {
  if (!existsSync(clone) || !statSync(clone).isDirectory()) throw new UsageError(`no clone at ${clone}${existsSync(clone) ? ' (it is a file)' : ''}`)
  let ok = true
  const all = exportMachines(clone)
  // A sync.work_dir checks out its own machine's folder alone (sync/own-folder.ts): the others are not missing from the export.
  const sparse = isSparseCheckout(clone)
  if (only !== null && !all.includes(only)) {
    throw new UsageError(`--machine: ${clone} has no folder ${only} (it has: ${all.join(', ') || 'none'}${sparse ? '; it is a sparse checkout, such as a sync.work_dir: verify a clone of the sync remote' : ''})`)
  }
  const machines = only === null ? all : [only]
  if (sparse && only === null) console.log(`note: ${clone} is a sparse checkout (a sync.work_dir holds its own machine's folder alone): only ${all.join(', ') || 'none'} is verified; for every machine, verify a clone of the sync remote`)
  if (machines.length === 0) {
    console.log(`${clone}: no machine folders to verify`)
    return 1
  }
  if (pinned && machines.length > 1) {
    throw new UsageError(`--key pins one machine's key, but ${clone} has folders ${machines.join(', ')}: choose one with --machine`)
  }
  for (const machine of machines) {
    const store = openWorkStore(workDir)
    try {
      ok = (await verifyMachine(store, clone, machine, pinned, receipt)) && ok
    } finally {
      store.close()
    }
  }
  if (receipt && !machines.includes(receipt.machine)) {
    console.log(`receipt: machine ${receipt.machine} has no folder in ${clone}`)
    ok = false
  }
  return ok ? 0 : 1
}

/** Verifies one machine's folder of a clone (gathered into `store`) and the receipt, if it is that machine's; prints the verdict. */
async function verifyMachine(store: WorkStore, clone: string, machine: string, pinned: PublicKeyFile | null, receipt: ReturnType<typeof decodeReceipt>): Promise<boolean> {
  const { key: published, problems: unreadable, chainStartsAt: firstLogId } = await gatherExport(store, clone, machine)
  const publishedId = published ? keyIdOf(published.jwk) : null
  const trusted = pinned ?? (published ? { ...published, key_id: publishedId! } : null)
  const keys = new Map<string, JsonWebKey>(trusted ? [[trusted.key_id, trusted.jwk]] : [])
  // The history: every checkpoint the branch ever held, those gone from the folder read back and checked too.
  const history = await exportHistory(clone, machine, trusted?.key_id ?? null, store)
  const verdict = await verifyEvidence({ store, keys, complete: true, chainStartsAtLogId: await chainBegins(firstLogId, store, 'none') })
  const checkpoints = gatheredCheckpoints(store)
  if (unreadable.length || history.problems.length) {
    verdict.problems.unshift(...unreadable, ...history.problems)
    verdict.ok = false
  }
  if (history.note) verdict.notes.push(history.note)
  const signed = checkpoints.newest
  if (signed && typeof signed.seq === 'number' && verdict.lastSeq !== null && verdict.lastSeq > signed.seq) {
    verdict.notes.push(`chain entries ${signed.seq + 1}-${verdict.lastSeq} come after the last signed checkpoint (${String(signed.id)}, entry ${signed.seq}): no signature covers them yet (each sync signs the head before it exports)`)
  }
  if (!trusted && checkpoints.count) {
    verdict.problems.push(`${machine}/public-key.json is missing: the checkpoints cannot be checked`)
    verdict.ok = false
  }
  if (pinned && published && publishedId !== pinned.key_id) {
    verdict.problems.unshift(`${machine}/public-key.json is key ${publishedId}, not the pinned key ${pinned.key_id}: the folder's key was replaced`)
    verdict.ok = false
  }
  // What sync writes always has its key and a signed checkpoint (each run signs the chain head
  // before it exports): a folder without them may have been rewritten whole, its chain recomputed.
  for (const problem of missingFromExport(machine, store.holdsAny(), checkpoints.count > 0, published !== null, pinned !== null)) {
    verdict.problems.push(problem)
    verdict.ok = false
  }
  if (!pinned && published) verdict.notes.push(`checked against the key ${machine}/public-key.json publishes (${publishedId}); pass --key to pin the key you expect`)
  report(`${clone}/${machine}`, verdict)
  if (receipt && receipt.machine === machine) return checkReceipt(receipt.rows, store) && verdict.ok
  return verdict.ok
}

/** What a folder `witness sync` wrote cannot lack; each one missing is a problem. */
function missingFromExport(machine: string, holds: boolean, hasCheckpoints: boolean, hasKey: boolean, pinned: boolean): string[] {
  const problems: string[] = []
  if (!holds && !hasCheckpoints) return [`${machine} holds no rows, chain or checkpoints: not a folder witness sync wrote`]
  if (pinned && !hasKey) problems.push(`${machine}/public-key.json is missing: sync always writes it, so the pinned key cannot be matched with the folder's`)
  if (holds && !hasCheckpoints) {
    problems.push(`${machine} has no signed checkpoint: nothing in it is signed by the machine's key, so its rows and chain could have been rewritten together`)
  }
  return problems
}

function checkReceipt(rows: { id: number; hash: string }[], store: WorkStore, missingHint = ''): boolean {
  if (rows.length === 0) {
    console.log('receipt: it names no rows, so it proves nothing (a receipt from a stream is the ": witness-receipt" comment at its end)')
    return false
  }
  const problems = verifyReceiptRows(rows, store).map((p) => (p.endsWith('not in the chain checked') ? p + missingHint : p))
  if (problems.length) {
    for (const p of problems) console.log(`receipt: ${p}`)
    return false
  }
  console.log(`receipt: ${rows.length === 1 ? 'row' : 'rows'} ${rows.map((r) => r.id).join(', ')} ${rows.length === 1 ? 'is' : 'are'} in the chain with the hash${rows.length === 1 ? '' : 'es'} the receipt gives, unchanged`)
  return true
}

function report(what: string, v: Verdict): void {
  if (v.ok) {
    const span = v.firstSeq === null ? 'no chain entries yet' : `chain entries ${v.firstSeq}-${v.lastSeq}`
    console.log(`verified ${what}: ${span}, ${v.rowsChecked} rows checked, ${v.checkpointsChecked} signed checkpoint(s)`)
  } else {
    console.log(`NOT VERIFIED ${what}:`)
    for (const p of v.problems) console.log(`  - ${p}`)
  }
  for (const n of v.notes) console.log(`  note: ${n}`)
}

/**
 * A receipt names the machine that issued it; row ids are only unique per
 * machine. The database says whose it is by its signed checkpoints (a
 * machine renamed keeps the checkpoints it signed under its old name, and
 * its receipts from then); without any, the config it came from does. A
 * receipt from another machine is refused.
 */
function sameMachine(issuer: string, store: WorkStore, config: Config | null): boolean {
  const { has, names } = checkpointMachines(store, issuer, 20)
  if (has) return true
  if (names.length === 0 && config) names.push(config.machine)
  if (names.length === 0 || names.includes(issuer)) return true
  console.log(`receipt: issued by machine ${issuer}, but this database is ${names.join(' / ')}'s; check it against that machine's log (or its export with --repo)`)
  return false
}

/**
 * The newest chain entries and checkpoints, deleted together: the chain then ends earlier and the
 * newest signed checkpoint still matches it, but the live file remembers what it gave out: it keeps
 * every checkpoint it makes (ids from 1, none deleted), and the sync state says which chain entries
 * and checkpoints the exports already covered. Anyone who can write the file can rewrite these too;
 * the export (`--repo`) is what they cannot reach.
 */
function tailProblems(live: LiveFacts, verdict: Verdict, complete: boolean, pruned: readonly PrunedRun[]): string[] {
  const problems: string[] = []
  // The newest entries deleted with their archive month (a drained live file, months past archive_keep_days): no tail to hold.
  if (pruned.some((r) => r.toSeq >= (verdict.lastSeq ?? 0))) complete = false
  // Not SQLite's id sequence for rows, nor the rows sync looked at: an old pending row finished late is
  // chained after newer rows its month's deleted archive took, and a database adopted by witness may have
  // had its newest rows deleted before; both leave the sequence above the rows, legitimately.
  if (complete && verdict.lastSeq !== null && live.exported.entries > verdict.lastSeq) {
    problems.push(`chain entries ${verdict.lastSeq + 1}-${live.exported.entries} were exported by witness sync and are missing here: the chain's newest entries were deleted`)
  }
  for (const [from, to] of live.checkpointGaps) problems.push(`checkpoint${from === to ? ` ${from} is` : `s ${from}-${to} are`} missing from the live database, which keeps every checkpoint it makes: deleted`)
  if (live.exported.checkpoints > live.lastCheckpoint) {
    const [from, to] = [live.lastCheckpoint + 1, live.exported.checkpoints]
    problems.push(`checkpoint${from === to ? ` ${from} was` : `s ${from}-${to} were`} exported by witness sync and ${from === to ? 'is' : 'are'} missing from the live database: deleted`)
  }
  return problems
}
