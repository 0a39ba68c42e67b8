/**
 * Lists of row ids in verify's messages (`rows 4-6, 9 are missing`), kept
 * bounded: ids are added in ascending order and folded into ranges as they
 * come; the first MAX_SHOWN ranges are kept for the message, the rest only
 * counted (`… and 5120 more (in 37 ranges)`). A log with millions of rows
 * missing then costs a few numbers, not a list of millions.
 */

/** Ranges named in a message before the rest are only counted. */
export const MAX_SHOWN = 20

export class IdRanges {
  /** Distinct ids added. */
  count = 0
  private readonly shown: [number, number][] = []
  private current: [number, number] | null = null
  private moreIds = 0
  private moreRanges = 0

  /** Adds an id no smaller than the last one added (the same id again is ignored). */
  add(id: number): void {
    const cur = this.current
    if (cur && id === cur[1]) return
    if (cur && id < cur[1]) throw new Error(`IdRanges: ids must come in ascending order (${id} after ${cur[1]})`)
    this.count++
    if (cur && id === cur[1] + 1) {
      cur[1] = id
      return
    }
    if (cur) this.close(cur)
    this.current = [id, id]
  }

  /** `4-6, 9`, with `and N more (in M ranges)` past MAX_SHOWN ranges. */
  text(): string {
    const all = [...this.shown]
    let moreIds = this.moreIds
    let moreRanges = this.moreRanges
    const cur = this.current
    if (cur && all.length < MAX_SHOWN) all.push(cur)
    else if (cur) {
      moreIds += cur[1] - cur[0] + 1
      moreRanges++
    }
    // `-3 to -1` rather than `-3--1`: an id below 1 is made up (verify names such rows), but said plainly.
    const listed = all.map(([from, to]) => (from === to ? `${from}` : from < 0 ? `${from} to ${to}` : `${from}-${to}`)).join(', ')
    return moreRanges ? `${listed} and ${moreIds} more (in ${moreRanges} range${moreRanges === 1 ? '' : 's'})` : listed
  }

  private close(range: [number, number]): void {
    if (this.shown.length < MAX_SHOWN) this.shown.push(range)
    else {
      this.moreIds += range[1] - range[0] + 1
      this.moreRanges++
    }
  }
}

/** `row 4 is` / `rows 4-6, 9 are`. */
export function rowsAre(ids: IdRanges): string {
  return `${ids.count === 1 ? 'row' : 'rows'} ${ids.text()} ${ids.count === 1 ? 'is' : 'are'}`
}
