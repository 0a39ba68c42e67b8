/**
 * Keeps the clone's `.git` from filling with loose objects. Each sync
 * rewrites the day's growing day file and chain file, a new whole blob each
 * time, and a fetch of fewer than 100 objects (other machines' few commits)
 * is unpacked into loose objects too. Git's own `gc --auto` would pack them
 * only past 6,700 (244 MB of them after 56 days at 2,200 rows a day, one
 * machine), and detached, outside the sync's time limit and process group.
 *
 * So every git the sync runs has automatic gc switched off (git.ts), and
 * after each run, inside its time limit and process group like any of its
 * gits:
 *
 * - past `looseMax` loose objects (counted exactly, `git count-objects`),
 *   `git repack -d -l`: the reachable ones go into one new pack (deltas
 *   against each other: a day file's versions pack small), the loose copies
 *   are deleted. Incremental: the packs there are stay as they are.
 * - then `git gc --auto`, in the foreground: past 50 packs it makes them one
 *   (`repack -A`), expires reflogs (entries no longer reachable, such as
 *   commits a rebase replaced, after 30 days) and prunes unreachable
 *   objects older than two weeks; otherwise it does nothing.
 */
import { type Git, firstLines } from './git.ts'

/** Loose objects past which they are packed: about ten syncs of five machines. */
export const LOOSE_OBJECTS_MAX = 1_000

/** Packs the clone's loose objects when there are too many (see the top of this file). Resolves with null, or why it could not. */
export async function packClone(git: Git, looseMax = LOOSE_OBJECTS_MAX): Promise<string | null> {
  const counted = await git(['count-objects', '-v'])
  if (counted.code !== 0) return `git count-objects: ${firstLines(counted.stderr)}`
  const loose = Number(/^count: (\d+)$/m.exec(counted.stdout)?.[1] ?? 0)
  if (loose > looseMax) {
    const packed = await git(['repack', '-d', '-l', '-q'])
    if (packed.code !== 0) return `git repack: ${firstLines(packed.stderr || packed.stdout)}`
  }
  // The -c options come after git.ts's gc.auto=0, and win over it.
  const gc = await git(['-c', 'gc.auto=6700', '-c', 'gc.autoDetach=false', 'gc', '--auto', '--quiet'])
  return gc.code === 0 ? null : `git gc: ${firstLines(gc.stderr || gc.stdout)}`
}
