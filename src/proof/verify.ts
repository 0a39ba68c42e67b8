/**
 * Verifying the log: recomputes the hash chain over everything gathered
 * (live database, archives, a git export), compares every row with what
 * was chained, checks each signed checkpoint against the chain, and names
 * the first broken places precisely. Queries over the work store
 * (work-store.ts) the sources (proof/sources.ts) filled.
 */
import { type Checkpoint, checkpointSignatureValid } from './checkpoint.ts'
import { IdRanges, rowsAre } from './id-ranges.ts'
import { type PrunedRun, prunedGap } from './pruned.ts'
import { GENESIS_HASH, LOG_COLUMNS, type LogColumn, chainHash, decodeRecord } from './record.ts'
import { Breather, CARRIES_REQUEST_ID, CARRIES_RESPONSE_ID, CHECKPOINT_FIELDS, type WorkStore, idsOf } from './work-store.ts'

export interface ChainEntry {
  seq: number
  log_id: number
  prev_hash: string
  hash: string
  record: string
}

export interface Evidence {
  /** The chain entries, rows and signed checkpoints gathered (work-store.ts). */
  store: WorkStore
  /** Public keys by key id. */
  keys: Map<string, JsonWebKey>
  /**
   * Whether every entry must be present: true when the archives are included
   * (or nothing was ever archived). Archiving moves entries out by the age of
   * their rows, so without the archives gaps and a missing start are expected.
   */
  complete: boolean
  /** Rows with a smaller id were finished before the chain existed. */
  chainStartsAtLogId: number
  /** Runs of entries deleted with their archives (retention.archive_keep_days), from the live database. */
  pruned?: readonly PrunedRun[]
}

export interface Verdict {
  ok: boolean
  problems: string[]
  notes: string[]
  entries: number
  firstSeq: number | null
  lastSeq: number | null
  rowsChecked: number
  checkpointsChecked: number
}

const MAX_PROBLEMS = 50

/** Notes of one kind (a gap in the chain, a checkpoint of an entry not here) made one by one before the rest are counted. */
const MAX_NOTED = 20

const PRUNED = 'were deleted with their archives (retention.archive_keep_days); the chain links across them'

/** Why a row id below 1 is made up: request_log.id is an INTEGER PRIMARY KEY AUTOINCREMENT. */
const BELOW_ONE = 'an id below 1, which SQLite never gives a row'

function show(value: unknown): string {
  return JSON.stringify(value)
}

/** A checkpoint's id in a message: an export's file may hold anything there (the store keeps an object or `true` as its JSON bytes). */
function shownId(id: unknown): string {
  return id instanceof Uint8Array ? new TextDecoder().decode(id) : String(id)
}

/** Problems found by one check, the first MAX_PROBLEMS of them (the checks' lists are joined in order, then cut). */
class Found {
  readonly list: string[] = []
  add(text: string): void {
    if (this.list.length < MAX_PROBLEMS) this.list.push(text)
  }
}

/** Notes of one kind: the first MAX_NOTED, then (at close) how many more. */
class CappedNotes {
  private count = 0
  constructor(
    private readonly notes: string[],
    private readonly more: (count: number) => string,
  ) {}
  add(text: string): void {
    if (this.count++ < MAX_NOTED) this.notes.push(text)
  }
  close(): void {
    if (this.count > MAX_NOTED) this.notes.push(this.more(this.count - MAX_NOTED))
  }
}

/** An entry as the checks read it, with its row (null columns when the row is not there). */
type EntryWithRow = ChainEntry & { earlier: number | null; carries: number | null; request_id: unknown; response_id: unknown } & { [c in LogColumn]: unknown }

/**
 * The checks, over the store: one pass over the entries in order (the links, each hash, each row
 * against its record), then the rows the chain does not know, then a pass over the checkpoints.
 * Memory holds an entry or a checkpoint at a time and the ids it names as ranges (id-ranges.ts).
 */
export async function verifyEvidence(ev: Evidence): Promise<Verdict> {
  const { db } = ev.store
  const notes: string[] = []
  const pruned = ev.pruned ?? []

  // One entry per position; the same entry may be seen twice (a row caught between live and archive).
  const forked = new Found()
  for (const f of db.query(`SELECT seq, kept_log_id, other_log_id FROM forks ORDER BY rowid LIMIT ${MAX_PROBLEMS}`).iterate() as Iterable<{ seq: number; kept_log_id: unknown; other_log_id: unknown }>) {
    forked.add(`chain entry ${f.seq} exists twice with different contents (rows ${f.kept_log_id} and ${f.other_log_id}): the chain was forked`)
  }

  // 1. The links and 2. each row against what was chained, in one pass.
  const links = new Found()
  const rowProblems = new Found()
  const noteMissing = db.prepare('INSERT OR IGNORE INTO missing (id) VALUES (?)')
  const breather = new Breather()
  // A file without its archives may lack entries in many places (a row finished late is archived with
  // its month, its entry from the middle of the chain with it).
  const gaps = new CappedNotes(notes, (n) => `and ${n} more gap(s) in the chain like these`)
  let prev: ChainEntry | null = null
  let firstSeq: number | null = null
  let entries = 0
  let rowsChecked = 0
  const pass = db.prepare(
    // A row joins the chain once (log_chain.log_id is unique): a second entry for it is a forgery.
    `SELECT e.seq, e.log_id, e.prev_hash, e.hash, e.record,
       (SELECT max(d.seq) FROM entries d WHERE d.log_id = e.log_id AND d.seq < e.seq) AS earlier, r.*
     FROM entries e LEFT JOIN rows r ON r.id = e.log_id ORDER BY e.seq`,
  )
  db.exec('BEGIN')
  try {
    for (const e of pass.iterate() as Iterable<EntryWithRow>) {
      if (breather.due()) await breather.pause()
      if (e.seq < 1) {
        // Not linked with the rest: before entry 1 it would stand in for the genesis hash.
        links.add(`chain entry ${e.seq} (row ${e.log_id}) is at a position the chain never has (it starts at 1), so it was written by hand`)
        continue
      }
      entries++
      firstSeq ??= e.seq
      if (prev === null) {
        if (e.seq === 1 && e.prev_hash !== GENESIS_HASH) links.add(`chain entry 1 (row ${e.log_id}) does not start from the genesis hash`)
        if (e.seq > 1) {
          if (prunedGap(pruned, 1, e.seq - 1, GENESIS_HASH, e.prev_hash)) gaps.add(`chain entries 1-${e.seq - 1} ${PRUNED}`)
          else if (ev.complete) links.add(`chain entries 1-${e.seq - 1} are missing (the chain starts at entry ${e.seq}, row ${e.log_id})`)
          else gaps.add(`the chain here starts at entry ${e.seq}; earlier entries are in the archives (verify with the config that names the archives, without --live-only)`)
        }
      } else if (e.seq !== prev.seq + 1) {
        const gap = `chain entries ${prev.seq + 1}-${e.seq - 1}`
        if (prunedGap(pruned, prev.seq + 1, e.seq - 1, prev.hash, e.prev_hash)) gaps.add(`${gap} ${PRUNED}`)
        else if (ev.complete) links.add(`${gap} are missing (rows after ${prev.log_id} and before ${e.log_id} were removed with their chain entries)`)
        else gaps.add(`${gap} are not here; archived? (verify with the config that names the archives, without --live-only)`)
      } else if (e.prev_hash !== prev.hash) {
        links.add(`the chain is broken at entry ${e.seq} (row ${e.log_id}): it does not follow entry ${prev.seq} (row ${prev.log_id})`)
      }
      if (chainHash(e.prev_hash, e.record) !== e.hash) links.add(`chain entry ${e.seq} (row ${e.log_id}) was altered: its hash does not match its record`)
      prev = e

      if (e.log_id < 1) rowProblems.add(`chain entry ${e.seq} chains row ${e.log_id}: ${BELOW_ONE}, so the row and its entry were written by hand`)
      if (e.earlier !== null) rowProblems.add(`row ${e.log_id} is chained twice (entries ${e.earlier} and ${e.seq})`)
      const recorded = decodeRecord(e.record)
      if (!recorded) {
        rowProblems.add(`chain entry ${e.seq} (row ${e.log_id}) has an unreadable record`)
        continue
      }
      if (recorded.row.id !== e.log_id) rowProblems.add(`chain entry ${e.seq} is filed under row ${e.log_id} but records row ${String(recorded.row.id)}`)
      if (e.carries === null) {
        noteMissing.run(e.log_id)
        continue
      }
      rowsChecked++
      const changed = LOG_COLUMNS.filter((c) => recorded.row[c] !== e[c])
      if (changed.length) {
        const details = changed.map((c) => `${c} was ${show(recorded.row[c])} when chained, is now ${show(e[c])}`).join('; ')
        rowProblems.add(`row ${e.log_id} was changed after it was chained: ${details}`)
      } else if ((e.carries & CARRIES_REQUEST_ID) !== 0 && e.request_id !== recorded.facts.requestId) {
        rowProblems.add(`row ${e.log_id} was changed after it was chained: request_id was ${show(recorded.facts.requestId)} when chained, is now ${show(e.request_id)}`)
      } else if ((e.carries & CARRIES_RESPONSE_ID) !== 0 && e.response_id !== recorded.facts.responseId) {
        rowProblems.add(`row ${e.log_id} was changed after it was chained: response_id was ${show(recorded.facts.responseId)} when chained, is now ${show(e.response_id)}`)
      }
    }
  } finally {
    pass.finalize()
    noteMissing.finalize()
    if (db.inTransaction) db.exec('COMMIT')
  }
  gaps.close()
  const missing = await idsOf(db, 'SELECT id FROM missing ORDER BY id')
  if (missing.count) rowProblems.add(`${rowsAre(missing)} missing`)

  // 3. Finished rows the chain does not know. An id below 1 was never given by SQLite (request_log.id
  // counts from 1), so such a row is no row from before the chain, wherever that began.
  const unchained = new IdRanges()
  const handMade = new IdRanges()
  let predating = 0
  // A pending row below 1 too: in flight or not, no call of witness's ever had that id.
  const unknown = db.query(`SELECT r.id FROM rows r WHERE (r.status IS NOT 'pending' OR r.id < 1) AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.log_id = r.id) ORDER BY r.id`)
  for (const { id } of unknown.iterate() as Iterable<{ id: number }>) {
    if (breather.due()) await breather.pause()
    if (id < 1) handMade.add(id)
    else if (id < ev.chainStartsAtLogId) predating++
    else unchained.add(id)
  }
  if (handMade.count) rowProblems.add(`${rowsAre(handMade)} not in the chain: ${BELOW_ONE}, so ${handMade.count === 1 ? 'it was' : 'they were'} written by hand`)
  if (unchained.count) rowProblems.add(`${rowsAre(unchained)} not in the chain`)
  if (predating) notes.push(`${predating} row(s) were finished before the chain existed and are not covered by it`)

  // 4. Signed checkpoints, one at a time from the store, in the order of their ids.
  const signed = new Found()
  // A copy of a checkpoint with every field the same was not stored twice: one with other contents was.
  const copies = db.query(
    `SELECT a.id, a.source AS one, b.source AS other FROM checkpoints a JOIN checkpoints b ON b.id = a.id AND b.n > a.n
     WHERE a.from_history = 0 AND b.from_history = 0 ORDER BY a.id, a.n, b.n LIMIT ${MAX_PROBLEMS}`,
  )
  for (const d of copies.iterate() as Iterable<{ id: unknown; one: string; other: string }>) {
    signed.add(`checkpoint ${shownId(d.id)} is in two copies with different contents (${d.one} and ${d.other}): one of them was put there by hand`)
  }
  const held = (db.query('SELECT count(*) AS n FROM checkpoints').get() as { n: number }).n
  if (held && ev.keys.size === 0) {
    const signers = (db.query(`SELECT DISTINCT key_id FROM checkpoints LIMIT ${MAX_NOTED + 1}`).all() as { key_id: unknown }[]).map((c) => String(c.key_id))
    const named = signers.length > MAX_NOTED ? `${signers.slice(0, MAX_NOTED).join(', ')} and more` : signers.join(', ')
    signed.add(`the signatures of ${held} checkpoint(s) were not checked: no public key is known (they name key ${named}); pass --key with the machine's public-key.json`)
  }
  const lastSeq = prev?.seq ?? 0
  const entryAt = db.query('SELECT seq, log_id, hash FROM entries WHERE seq = ?')
  // Years of checkpoints sign entries archived or deleted since: the first are noted, the rest counted.
  const elsewhere = new CappedNotes(notes, (n) => `and ${n} more checkpoint(s) like these`)
  let checkpointsChecked = 0
  const checkpoints = db.query(`SELECT ${CHECKPOINT_FIELDS.join(', ')} FROM checkpoints ORDER BY id, n`)
  // Signatures are checked SIGNATURES_AT_ONCE ahead of the checkpoint looked at (most of verify's time
  // with years of checkpoints; many at once took 80 µs each here, one at a time 130), and the
  // checkpoints are looked at in order, so what is said of them is too.
  const ahead: { c: Checkpoint; valid: Promise<boolean> | null }[] = []
  const look = async (c: Checkpoint, valid: Promise<boolean> | null) => {
    const id = shownId(c.id)
    checkpointsChecked++
    const jwk = ev.keys.get(c.key_id)
    if (!jwk && ev.keys.size > 0) {
      signed.add(`checkpoint ${id} was not signed by this machine's key (signed by key ${c.key_id}; known: ${[...ev.keys.keys()].join(', ')})`)
      return
    }
    // With no key at all the signature cannot be checked (said once, below); what it signed still can.
    if (valid && !(await valid)) {
      signed.add(`checkpoint ${id} has a signature that does not verify: it was forged or altered`)
      return
    }
    const entry = entryAt.get(c.seq) as Pick<ChainEntry, 'seq' | 'log_id' | 'hash'> | null
    const deleted = entry ? undefined : pruned.find((r) => r.fromSeq <= c.seq && c.seq <= r.toSeq)
    if (deleted) {
      if (deleted.toSeq === c.seq && deleted.hash !== c.head_hash) signed.add(`checkpoint ${id} does not match the chain: entry ${c.seq}, deleted with its archive, had another hash than the one signed`)
      else if (deleted.toSeq !== c.seq) elsewhere.add(`checkpoint ${id} signed entry ${c.seq}, deleted with its archive`)
    } else if (!entry) {
      if (ev.complete && c.seq > lastSeq) signed.add(`the log ends before checkpoint ${id}: the chain ends at entry ${lastSeq}, the checkpoint signed entry ${c.seq}`)
      else if (ev.complete) signed.add(`checkpoint ${id} signed entry ${c.seq}, which is missing from the chain`)
      else elsewhere.add(`checkpoint ${id} signed entry ${c.seq}, which is not among the entries checked (verify with the config that names the archives, without --live-only)`)
    } else if (entry.hash !== c.head_hash) {
      signed.add(`checkpoint ${id} does not match the chain: entry ${c.seq} (row ${entry.log_id}) has another hash than the one signed`)
    }
  }
  for (const c of checkpoints.iterate() as Iterable<Checkpoint>) {
    if (breather.due()) await breather.pause()
    const jwk = ev.keys.get(c.key_id)
    ahead.push({ c, valid: jwk ? checkpointSignatureValid(c, jwk) : null })
    if (ahead.length >= SIGNATURES_AT_ONCE) {
      const next = ahead.shift()!
      await look(next.c, next.valid)
    }
  }
  for (const next of ahead) await look(next.c, next.valid)

  elsewhere.close()
  const problems = [...forked.list, ...links.list, ...rowProblems.list, ...signed.list].slice(0, MAX_PROBLEMS)
  return {
    ok: problems.length === 0,
    problems,
    notes,
    entries,
    firstSeq,
    lastSeq: prev?.seq ?? null,
    rowsChecked,
    checkpointsChecked,
  }
}

/** Checkpoint signatures being checked at once (verifyChain). */
const SIGNATURES_AT_ONCE = 64

/** Checks a receipt's rows against the chain: each id chained with that hash, and the row unchanged. */
export function verifyReceiptRows(receiptRows: { id: number; hash: string }[], store: WorkStore): string[] {
  const problems: string[] = []
  const entryOf = store.db.query('SELECT seq, log_id, prev_hash, hash, record FROM entries WHERE log_id = ? ORDER BY seq DESC LIMIT 1')
  const rowOf = store.db.query('SELECT * FROM rows WHERE id = ?')
  for (const r of receiptRows) {
    const entry = entryOf.get(r.id) as ChainEntry | null
    if (!entry) {
      problems.push(`receipt names row ${r.id}, which is not in the chain checked`)
      continue
    }
    if (entry.hash !== r.hash) {
      problems.push(`receipt does not match the log: row ${r.id} was chained with hash ${entry.hash.slice(0, 12)}…, the receipt says ${r.hash.slice(0, 12)}…`)
      continue
    }
    const recorded = decodeRecord(entry.record)
    const now = rowOf.get(r.id) as Record<LogColumn, unknown> | null
    if (!now) problems.push(`row ${r.id} named by the receipt is missing: its chain entry is there, the row is not`)
    else if (recorded && LOG_COLUMNS.some((c) => recorded.row[c] !== now[c])) problems.push(`row ${r.id} named by the receipt was changed after it was chained`)
  }
  return problems
}
