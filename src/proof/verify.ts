/**
 * Verifying the log: recomputes the hash chain over everything gathered
 * (live database, archives, a git export), compares every row with what
 * was chained, checks each signed checkpoint against the chain, and names
 * the first broken places precisely. Pure over the gathered evidence; the
 * sources (proof/sources.ts) do the reading.
 */
import { type Checkpoint, checkpointSignatureValid } from './checkpoint.ts'
import { type PrunedRun, prunedGap } from './pruned.ts'
import { GENESIS_HASH, LOG_COLUMNS, type LogRow, chainHash, decodeRecord } from './record.ts'

export interface ChainEntry {
  seq: number
  log_id: number
  prev_hash: string
  hash: string
  record: string
}

/** A row as the log holds it now. */
export interface RowView {
  row: LogRow
  /** request_log_meta.request_id (null where the row has none, undefined where the source has no meta at all). */
  requestId?: string | null
  /** request_log_meta.response_id, the provider's id for its answer (undefined where the source does not carry it: a git export). */
  responseId?: string | null
}

export interface Evidence {
  entries: ChainEntry[]
  rows: Map<number, RowView>
  checkpoints: Checkpoint[]
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

const PRUNED = 'were deleted with their archives (retention.archive_keep_days); the chain links across them'

/** Consecutive ids as ranges: `5001-5003, 5007`. */
/** `row 4 is` / `rows 4-6, 9 are`. */
export function rowsAre(ids: Iterable<number>): string {
  const list = [...ids]
  return `${list.length === 1 ? 'row' : 'rows'} ${ranges(list)} ${list.length === 1 ? 'is' : 'are'}`
}

function ranges(ids: number[]): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b)
  const parts: string[] = []
  for (let i = 0; i < sorted.length; ) {
    let j = i
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++
    parts.push(i === j ? `${sorted[i]}` : `${sorted[i]}-${sorted[j]}`)
    i = j + 1
  }
  return parts.join(', ')
}

function show(value: unknown): string {
  return JSON.stringify(value)
}

export async function verifyEvidence(ev: Evidence): Promise<Verdict> {
  const problems: string[] = []
  const notes: string[] = []
  const problem = (text: string) => {
    if (problems.length < MAX_PROBLEMS) problems.push(text)
  }

  // One entry per position; the same entry may be seen twice (a row caught between live and archive).
  const bySeq = new Map<number, ChainEntry>()
  for (const e of ev.entries) {
    const seen = bySeq.get(e.seq)
    if (!seen) bySeq.set(e.seq, e)
    else if (seen.hash !== e.hash || seen.log_id !== e.log_id || seen.record !== e.record) {
      problem(`chain entry ${e.seq} exists twice with different contents (rows ${seen.log_id} and ${e.log_id}): the chain was forked`)
    }
  }
  const entries = [...bySeq.values()].sort((a, b) => a.seq - b.seq)
  const pruned = ev.pruned ?? []

  // 1. The links.
  let prev: ChainEntry | null = null
  for (const e of entries) {
    if (prev === null) {
      if (e.seq === 1 && e.prev_hash !== GENESIS_HASH) problem(`chain entry 1 (row ${e.log_id}) does not start from the genesis hash`)
      if (e.seq > 1) {
        if (prunedGap(pruned, 1, e.seq - 1, GENESIS_HASH, e.prev_hash)) notes.push(`chain entries 1-${e.seq - 1} ${PRUNED}`)
        else if (ev.complete) problem(`chain entries 1-${e.seq - 1} are missing (the chain starts at entry ${e.seq}, row ${e.log_id})`)
        else notes.push(`the chain here starts at entry ${e.seq}; earlier entries are in the archives (use --archives with the config)`)
      }
    } else if (e.seq !== prev.seq + 1) {
      const gap = `chain entries ${prev.seq + 1}-${e.seq - 1}`
      if (prunedGap(pruned, prev.seq + 1, e.seq - 1, prev.hash, e.prev_hash)) notes.push(`${gap} ${PRUNED}`)
      else if (ev.complete) problem(`${gap} are missing (rows after ${prev.log_id} and before ${e.log_id} were removed with their chain entries)`)
      else notes.push(`${gap} are not here; archived? (use --archives with the config)`)
    } else if (e.prev_hash !== prev.hash) {
      problem(`the chain is broken at entry ${e.seq} (row ${e.log_id}): it does not follow entry ${prev.seq} (row ${prev.log_id})`)
    }
    if (chainHash(e.prev_hash, e.record) !== e.hash) problem(`chain entry ${e.seq} (row ${e.log_id}) was altered: its hash does not match its record`)
    prev = e
  }

  // 2. Each row against what was chained.
  const missing: number[] = []
  const chained = new Set<number>()
  let rowsChecked = 0
  const seqOf = new Map<number, number>()
  for (const e of entries) {
    // A row joins the chain once (log_chain.log_id is unique): a second entry for it is a forgery.
    const earlier = seqOf.get(e.log_id)
    if (earlier !== undefined) problem(`row ${e.log_id} is chained twice (entries ${earlier} and ${e.seq})`)
    seqOf.set(e.log_id, e.seq)
    chained.add(e.log_id)
    const recorded = decodeRecord(e.record)
    if (!recorded) {
      problem(`chain entry ${e.seq} (row ${e.log_id}) has an unreadable record`)
      continue
    }
    if (recorded.row.id !== e.log_id) problem(`chain entry ${e.seq} is filed under row ${e.log_id} but records row ${String(recorded.row.id)}`)
    const now = ev.rows.get(e.log_id)
    if (!now) {
      missing.push(e.log_id)
      continue
    }
    rowsChecked++
    const changed = LOG_COLUMNS.filter((c) => recorded.row[c] !== now.row[c])
    if (changed.length) {
      const details = changed.map((c) => `${c} was ${show(recorded.row[c])} when chained, is now ${show(now.row[c])}`).join('; ')
      problem(`row ${e.log_id} was changed after it was chained: ${details}`)
    } else if (now.requestId !== undefined && now.requestId !== recorded.facts.requestId) {
      problem(`row ${e.log_id} was changed after it was chained: request_id was ${show(recorded.facts.requestId)} when chained, is now ${show(now.requestId)}`)
    } else if (now.responseId !== undefined && now.responseId !== recorded.facts.responseId) {
      problem(`row ${e.log_id} was changed after it was chained: response_id was ${show(recorded.facts.responseId)} when chained, is now ${show(now.responseId)}`)
    }
  }
  if (missing.length) problem(`${rowsAre(missing)} missing`)

  // 3. Finished rows the chain does not know.
  const unchained: number[] = []
  let predating = 0
  for (const [id, view] of ev.rows) {
    if (view.row.status === 'pending' || chained.has(id)) continue
    if (id < ev.chainStartsAtLogId) predating++
    else unchained.push(id)
  }
  if (unchained.length) problem(`${rowsAre(unchained)} not in the chain`)
  if (predating) notes.push(`${predating} row(s) were finished before the chain existed and are not covered by it`)

  // 4. Signed checkpoints.
  if (ev.checkpoints.length && ev.keys.size === 0) {
    const signers = [...new Set(ev.checkpoints.map((c) => c.key_id))].join(', ')
    problem(`the signatures of ${ev.checkpoints.length} checkpoint(s) were not checked: no public key is known (they name key ${signers}); pass --key with the machine's public-key.json`)
  }
  const lastSeq = entries.at(-1)?.seq ?? 0
  let checkpointsChecked = 0
  for (const c of ev.checkpoints) {
    checkpointsChecked++
    const jwk = ev.keys.get(c.key_id)
    if (!jwk && ev.keys.size > 0) {
      problem(`checkpoint ${c.id} was not signed by this machine's key (signed by key ${c.key_id}; known: ${[...ev.keys.keys()].join(', ')})`)
      continue
    }
    // With no key at all the signature cannot be checked (said once, below); what it signed still can.
    if (jwk && !(await checkpointSignatureValid(c, jwk))) {
      problem(`checkpoint ${c.id} has a signature that does not verify: it was forged or altered`)
      continue
    }
    const entry = bySeq.get(c.seq)
    const deleted = entry ? undefined : pruned.find((r) => r.fromSeq <= c.seq && c.seq <= r.toSeq)
    if (deleted) {
      if (deleted.toSeq === c.seq && deleted.hash !== c.head_hash) problem(`checkpoint ${c.id} does not match the chain: entry ${c.seq}, deleted with its archive, had another hash than the one signed`)
      else if (deleted.toSeq !== c.seq) notes.push(`checkpoint ${c.id} signed entry ${c.seq}, deleted with its archive`)
    } else if (!entry) {
      if (ev.complete && c.seq > lastSeq) problem(`the log ends before checkpoint ${c.id}: the chain ends at entry ${lastSeq}, the checkpoint signed entry ${c.seq}`)
      else if (ev.complete) problem(`checkpoint ${c.id} signed entry ${c.seq}, which is missing from the chain`)
      else notes.push(`checkpoint ${c.id} signed entry ${c.seq}, which is not among the entries checked (use --archives with the config)`)
    } else if (entry.hash !== c.head_hash) {
      problem(`checkpoint ${c.id} does not match the chain: entry ${c.seq} (row ${entry.log_id}) has another hash than the one signed`)
    }
  }

  return {
    ok: problems.length === 0,
    problems,
    notes,
    entries: entries.length,
    firstSeq: entries[0]?.seq ?? null,
    lastSeq: entries.at(-1)?.seq ?? null,
    rowsChecked,
    checkpointsChecked,
  }
}

/** Checks a receipt's rows against the chain: each id chained with that hash, and the row unchanged. */
export function verifyReceiptRows(receiptRows: { id: number; hash: string }[], ev: Pick<Evidence, 'entries' | 'rows'>): string[] {
  const problems: string[] = []
  const byLogId = new Map(ev.entries.map((e) => [e.log_id, e]))
  for (const r of receiptRows) {
    const entry = byLogId.get(r.id)
    if (!entry) {
      problems.push(`receipt names row ${r.id}, which is not in the chain checked`)
      continue
    }
    if (entry.hash !== r.hash) {
      problems.push(`receipt does not match the log: row ${r.id} was chained with hash ${entry.hash.slice(0, 12)}…, the receipt says ${r.hash.slice(0, 12)}…`)
      continue
    }
    const recorded = decodeRecord(entry.record)
    const now = ev.rows.get(r.id)
    if (!now) problems.push(`row ${r.id} named by the receipt is missing: its chain entry is there, the row is not`)
    else if (recorded && LOG_COLUMNS.some((c) => recorded.row[c] !== now.row[c])) problems.push(`row ${r.id} named by the receipt was changed after it was chained`)
  }
  return problems
}
