/**
 * The sync clone checks out only its machine's own folder: a sparse
 * checkout in cone mode (`git sparse-checkout set <machine>`), which also
 * keeps the files at the top of the repository. Other machines' folders stay
 * in git's history and index, and out of the working tree, which would
 * otherwise hold every day file, chain file and checkpoint of the fleet
 * (about 0.9 KB per row exported, times the machines).
 *
 * The sync reads nothing of the other folders from the working tree: the
 * export reads its own day, chain and checkpoint files and public key, and
 * the one look at the others (whose `public-key.json` is this machine's key)
 * reads them from git (folder-keys.ts).
 *
 * A clone made by a witness from before, a full checkout, is converted in
 * place by its next run: `sparse-checkout set` only removes the other
 * folders' files from the working tree; commits, pushed or not, are not
 * touched. A run killed while it converted leaves the pattern file unwritten
 * (git writes it last), so the next run converts again.
 */
import { gitEnv } from '../git-env.ts'
import { SyncError } from '../errors.ts'
import { type Git, firstLines } from './git.ts'

/** Makes the clone's working tree hold `machine`'s folder (and the top-level files) and nothing else; a no-op when it does. */
export async function checkOutOwnFolder(git: Git, machine: string): Promise<void> {
  // In cone mode `list` names the folders; otherwise it prints the patterns, and fails on a clone that is not sparse.
  const listed = await git(['sparse-checkout', 'list'])
  if (listed.code === 0 && listed.stdout === `${machine}\n`) return
  // `init --cone` then `set`: what git 2.25 and later all understand (`set --cone` came with 2.35).
  if ((await git(['config', '--bool', 'core.sparseCheckoutCone'])).stdout.trim() !== 'true') await sparseCheckout(git, ['init', '--cone'])
  await sparseCheckout(git, ['set', machine])
}

async function sparseCheckout(git: Git, args: string[]): Promise<void> {
  const result = await git(['sparse-checkout', ...args])
  if (result.code !== 0) {
    throw new SyncError(`sync: git sparse-checkout ${args[0]} failed (${firstLines(result.stderr || result.stdout)}); the clone checks out only this machine's folder, which needs git 2.25 or later`)
  }
}

/** Whether `dir` is in a git working tree with a sparse checkout (a sync.work_dir is one): other folders of its repository may not be there. */
export function isSparseCheckout(dir: string): boolean {
  try {
    const result = Bun.spawnSync(['git', '-C', dir, 'config', '--bool', 'core.sparseCheckout'], { env: { ...gitEnv('local'), LC_ALL: 'C' }, stdout: 'pipe', stderr: 'ignore' })
    return result.exitCode === 0 && result.stdout.toString().trim() === 'true'
  } catch {
    return false // no git here: nothing can tell
  }
}
