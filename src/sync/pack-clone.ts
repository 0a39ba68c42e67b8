/**
 * Keeps the clone's `.git` from filling up between gcs. Each sync rewrites
 * the day's growing day file and chain file, a new whole blob each time, and
 * its fetch brings the other machines' new versions of theirs. Left to git:
 * loose objects until 6,700 of them (244 MB after 56 days at 2,200 rows a
 * day, one machine), and a fetch of 100 objects or more kept as a pack of
 * its own, completed with whole copies of the blobs its deltas need: one a
 * sync, 50 of them (over 100 MB in a fleet of five) before git makes them
 * one; and git's gc runs detached, outside the sync's time limit and
 * process group.
 *
 * So every git the sync runs has automatic gc off, and a fetch of fewer
 * than LOOSE_OBJECTS_MAX objects is unpacked into loose objects (git.ts);
 * and after each run, inside its time limit and process group like any of
 * its gits:
 *
 * - past LOOSE_OBJECTS_MAX loose objects (counted exactly, `git
 *   count-objects`), `git repack -d -l`: the reachable ones go into one new
 *   pack, a file's versions as deltas of one another, and their loose copies
 *   are deleted;
 * - then `git gc --auto` in the foreground, which past PACKS_MAX packs makes
 *   them one (`repack -A`: deltas across them all), leaving packs bigger than
 *   BIG_PACK as they are, so its cost does not grow with years of history
 *   (until there are PACKS_MAX of those), expires reflog entries (those no
 *   longer reachable, such as commits a rebase replaced, after 30 days) and
 *   prunes unreachable objects older than two weeks; otherwise it does
 *   nothing.
 */
import { type Git, firstLines } from './git.ts'

/** Loose objects past which they are packed: about ten hourly syncs of five machines, seen from one clone. */
export const LOOSE_OBJECTS_MAX = 1_000
/** Packs past which `git gc --auto` makes them one. */
export const PACKS_MAX = 10
/** Packs bigger than this are left out of that (git's size syntax). */
const BIG_PACK = '100m'

export interface PackLimits {
  looseObjects: number
  packs: number
}

/** Packs the clone's loose objects, and its packs, when there are too many (see the top of this file). Resolves with null, or why it could not. */
export async function packClone(git: Git, limits: PackLimits = { looseObjects: LOOSE_OBJECTS_MAX, packs: PACKS_MAX }): Promise<string | null> {
  const counted = await git(['count-objects', '-v'])
  if (counted.code !== 0) return `git count-objects: ${firstLines(counted.stderr)}`
  const loose = Number(/^count: (\d+)$/m.exec(counted.stdout)?.[1] ?? 0)
  if (loose > limits.looseObjects) {
    const packed = await git(['repack', '-d', '-l', '-q'])
    if (packed.code !== 0) return `git repack: ${firstLines(packed.stderr || packed.stdout)}`
  }
  // These -c options come after git.ts's gc.auto=0, and win over it.
  const gc = await git([
    '-c', 'gc.auto=6700', '-c', `gc.autoPackLimit=${limits.packs}`, '-c', `gc.bigPackThreshold=${BIG_PACK}`, '-c', 'gc.autoDetach=false',
    'gc', '--auto', '--quiet',
  ])
  return gc.code === 0 ? null : `git gc: ${firstLines(gc.stderr || gc.stdout)}`
}
