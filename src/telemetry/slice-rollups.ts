/**
 * The stored slice partials of one database (the live file), as the stats
 * reads use them (stats-window.ts): the stored partials of a window's
 * sealed slices, still true, in one read; and a sealed slice the read
 * folded from its rows (fold-stepwise.ts), stored, where there is a writer
 * (`serve`), through it when it is final. The command line reads them and
 * never writes. See slice-store.ts for why a stored slice is never stale.
 */
import type { Database } from 'bun:sqlite'
import { isoTime } from '../clock.ts'
import type { SideWrites } from './rows.ts'
import { type FoldedSlice, hasSliceTable, loadStoredSlices, storeSliceWrite } from './slice-store.ts'
import { finalAtMs } from './stats-window.ts'
import type { SlicePartial } from './stats.ts'

export class SliceRollups {
  private table: boolean | null = null
  private readonly storing = new Map<string, Promise<void>>()
  /** Sealed slices answered from storage, folded from rows, and stores asked of the writer (and those that failed). */
  readonly counters = { loaded: 0, folded: 0, stores: 0, storeFailures: 0 }

  /**
   * @param db the database the stored slices are in, and the only one they answer for
   * @param write commits a write through the store's writer; without it nothing is stored
   * @param now wall clock (ms), for folded_at
   */
  constructor(
    readonly db: Database,
    private readonly write: ((side: SideWrites) => Promise<void>) | null = null,
    private readonly now: () => number = Date.now,
  ) {}

  private hasTable(): boolean {
    // An older database read by the command line (not migrated: read-only) has no stored slices.
    this.table ??= hasSliceTable(this.db)
    return this.table
  }

  /** The stored, still true partials of the slices starting at `starts`, by slice start. */
  load(starts: readonly string[]): Map<string, SlicePartial> {
    return this.hasTable() ? loadStoredSlices(this.db, starts) : new Map()
  }

  /** Counts a stored partial used by a read. */
  used(): void {
    this.counters.loaded++
  }

  /** Takes a sealed slice folded from its rows: stores it (not waiting) if it is final at `nowMs`. */
  keepFolded(folded: FoldedSlice, nowMs: number): void {
    this.counters.folded++
    if (this.write && this.hasTable() && finalAtMs(folded.partial, Date.parse(folded.to)) <= nowMs) void this.store(folded)
  }

  /** Whether a store of the slice starting at `from` is under way. */
  isStoring(from: string): boolean {
    return this.storing.has(from)
  }

  /**
   * Stores a folded slice, which the caller found final (finalAtMs), through
   * the writer (once at a time per slice). Never rejects: a write refused
   * (disk full, lock held) leaves the slice to be folded and stored later.
   */
  store(folded: FoldedSlice): Promise<void> {
    const write = this.write
    if (!write || folded.partial.hasPending) return Promise.resolve()
    const already = this.storing.get(folded.from)
    if (already) return already
    this.counters.stores++
    const done = write(storeSliceWrite(folded, isoTime(this.now())))
      .catch(() => {
        this.counters.storeFailures++
      })
      .finally(() => this.storing.delete(folded.from))
    this.storing.set(folded.from, done)
    return done
  }

  /** Resolves when every store asked for so far has settled. */
  async settled(): Promise<void> {
    while (this.storing.size) await Promise.all(this.storing.values())
  }
}
