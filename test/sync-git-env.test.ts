/**
 * The sync's git and the caller's `GIT_*` variables (src/git-env.ts): a
 * `witness sync` run with the variables a git hook or an operator's shell
 * sets still exports into its own clone and remote, and leaves the other
 * repository they name alone; the variables of the way to the remote
 * (`GIT_SSH_COMMAND`) still reach git.
 */
import { describe, expect, setDefaultTimeout, test } from 'bun:test'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gitEnv } from '../src/git-env.ts'
import { HAVE_GIT, bareRepo, git } from './support/git.ts'
import { UP_TO_DATE, ids, machine, remoteLines } from './support/sync-machine.ts'
import { tempDir } from './support/temp.ts'

// Each test runs real gits (several syncs, a verify): more than the suite's 20 s default on a loaded CI machine.
setDefaultTimeout(60_000)

/** A repository with one commit: what a hook's `GIT_DIR` names. */
function otherRepository(): { dir: string; state: () => string } {
  const dir = join(tempDir(), 'other')
  mkdirSync(dir)
  git(['init', '-q', '-b', 'trunk'], dir)
  writeFileSync(join(dir, 'notes.txt'), 'mine\n')
  git(['add', 'notes.txt'], dir)
  git(['-c', 'user.name=o', '-c', 'user.email=o@o', 'commit', '-qm', 'mine'], dir)
  // Everything a sync run in it would change: refs, remotes, config, index, work tree, objects.
  const state = () =>
    [
      git(['for-each-ref'], dir),
      readFileSync(join(dir, '.git', 'config'), 'utf8'),
      git(['ls-files', '--stage'], dir),
      git(['status', '--porcelain', '--ignored', '--untracked-files=all'], dir),
      git(['count-objects', '-v'], dir),
    ].join('\n')
  return { dir, state }
}

describe.skipIf(!HAVE_GIT)("the sync's git and the caller's GIT_* variables", () => {
  test('GIT_DIR, GIT_WORK_TREE, GIT_INDEX_FILE, pathspec, config and identity variables set around witness sync (a git hook, a shell) change nothing: the export lands in its remote, the other repository is untouched', async () => {
    const remote = bareRepo(join(tempDir(), 'telemetry.git'))
    const m = machine('alpha', remote)
    const other = otherRepository()
    const before = other.state()
    const env = {
      GIT_DIR: join(other.dir, '.git'),
      GIT_WORK_TREE: other.dir,
      GIT_INDEX_FILE: join(other.dir, '.git', 'index'),
      GIT_OBJECT_DIRECTORY: join(other.dir, '.git', 'objects'),
      GIT_LITERAL_PATHSPECS: '1',
      GIT_GLOB_PATHSPECS: '1',
      GIT_CONFIG_PARAMETERS: `'remote.origin.url'='${other.dir}'`,
      GIT_CONFIG_COUNT: '1',
      GIT_CONFIG_KEY_0: 'core.hooksPath',
      GIT_CONFIG_VALUE_0: join(other.dir, 'hooks'),
      GIT_AUTHOR_NAME: 'someone else',
      GIT_COMMITTER_EMAIL: 'someone@else.example',
    }
    await m.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }])
    for (let run = 0; run < 2; run++) {
      const synced = await m.sync(env)
      expect([synced.code, synced.stderr]).toEqual([0, ''])
      expect(synced.stdout).toContain(UP_TO_DATE)
      if (run === 0) await m.seed([{ timestamp: '2026-11-24T09:00:00.000Z' }])
    }
    expect(ids(remoteLines(remote, 'alpha'))).toEqual([1, 2])
    // Committed as witness says, not as the environment would have it.
    expect(git(['--git-dir', remote, 'log', '--format=%an <%ce>', 'main'])).toBe('witness alpha <witness@alpha.invalid>\nwitness alpha <witness@alpha.invalid>\n')
    expect(existsSync(join(m.workDir, 'alpha', '2026', '11', '24.ndjson'))).toBe(true)
    expect(other.state()).toBe(before)
    expect(existsSync(join(other.dir, 'alpha'))).toBe(false)
  })

  test('GIT_SSH_COMMAND still reaches git: an ssh remote is reached through it', async () => {
    const dir = tempDir()
    const marker = join(dir, 'ssh-ran')
    const ssh = join(dir, 'fake-ssh')
    // Records what git asked of it, then fails as an ssh that cannot connect does.
    writeFileSync(ssh, `#!/bin/sh\necho "$@" > '${marker}'\necho "ssh: connect to host 192.0.2.1 port 22: Connection refused" >&2\nexit 255\n`)
    chmodSync(ssh, 0o755)
    const m = machine('alpha', 'ssh://git@192.0.2.1/telemetry.git')
    await m.seed([{ timestamp: '2026-11-24T08:00:00.000Z' }])
    const synced = await m.sync({ GIT_SSH_COMMAND: ssh })
    expect(synced.stdout).toContain('remote not updated (ssh: connect to host 192.0.2.1 port 22: Connection refused')
    expect(synced.code).toBe(0)
    expect(readFileSync(marker, 'utf8')).toContain('git-upload-pack')
  })
})

describe('the policy of git-env.ts', () => {
  const caller = {
    PATH: '/usr/bin',
    HOME: '/home/op',
    GIT_DIR: '/elsewhere/.git',
    GIT_WORK_TREE: '/elsewhere',
    GIT_INDEX_FILE: '/elsewhere/.git/index',
    GIT_OBJECT_DIRECTORY: '/elsewhere/.git/objects',
    GIT_ALTERNATE_OBJECT_DIRECTORIES: '/elsewhere/.git/objects',
    GIT_COMMON_DIR: '/elsewhere/.git',
    GIT_NAMESPACE: 'ns',
    GIT_CEILING_DIRECTORIES: '/',
    GIT_LITERAL_PATHSPECS: '1',
    GIT_GLOB_PATHSPECS: '1',
    GIT_NOGLOB_PATHSPECS: '1',
    GIT_ICASE_PATHSPECS: '1',
    GIT_CONFIG_PARAMETERS: "'core.bare'='true'",
    GIT_CONFIG_COUNT: '1',
    GIT_CONFIG_KEY_0: 'core.worktree',
    GIT_CONFIG_VALUE_0: '/elsewhere',
    GIT_CONFIG: '/elsewhere/config',
    GIT_REPLACE_REF_BASE: 'refs/other/',
    GIT_NO_REPLACE_OBJECTS: '1',
    GIT_AUTHOR_NAME: 'a',
    GIT_AUTHOR_EMAIL: 'a@a',
    GIT_AUTHOR_DATE: '2000-01-01',
    GIT_COMMITTER_NAME: 'c',
    GIT_EXEC_PATH: '/elsewhere/libexec',
    GIT_TEMPLATE_DIR: '/elsewhere/templates',
    GIT_DEFAULT_HASH: 'sha256',
    GIT_SSH_COMMAND: 'ssh -i key',
    GIT_SSH: '/usr/bin/ssh',
    GIT_SSL_CAINFO: '/etc/ca.pem',
    GIT_SSL_NO_VERIFY: '1',
    GIT_PROXY_COMMAND: 'proxy',
    GIT_HTTP_USER_AGENT: 'ua',
    GIT_ASKPASS: '/usr/bin/askpass',
    GIT_CONFIG_GLOBAL: '/home/op/.gitconfig-sync',
    GIT_TRACE: '1',
    GIT_TRACE2_EVENT: '/tmp/trace',
  }

  test('remote: the repository, index, objects, pathspecs, injected config, replace refs and identity are left out; the way to the remote, the operator config files and tracing stay', () => {
    expect(Object.keys(gitEnv('remote', caller)).sort()).toEqual(
      ['PATH', 'HOME', 'GIT_SSH_COMMAND', 'GIT_SSH', 'GIT_SSL_CAINFO', 'GIT_SSL_NO_VERIFY', 'GIT_PROXY_COMMAND', 'GIT_HTTP_USER_AGENT', 'GIT_ASKPASS', 'GIT_CONFIG_GLOBAL', 'GIT_TRACE', 'GIT_TRACE2_EVENT'].sort(),
    )
  })

  test('local: no GIT_* variable at all', () => {
    expect(Object.keys(gitEnv('local', caller)).sort()).toEqual(['HOME', 'PATH'])
  })
})
