/**
 * The Ansible role deploying from a git URL and version (witness_source:
 * git): a real `ansible-playbook -c local` run into a temporary prefix, as
 * in test/ansible.test.ts (a file of its own, so its plays run beside
 * those). Skips, saying why, where a tool it needs is missing.
 */
import { describe, expect, test } from 'bun:test'
import { readFileSync, readdirSync, readlinkSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { RUN_TIMEOUT_MS, missing, run, runPlaybook, runReason, skipUnless } from './support/ansible.ts'
import { ROOT } from './support/process.ts'
import { tempDir } from './support/temp.ts'

const gitReason = runReason ?? missing('git') ?? (Bun.spawnSync(['git', '-C', ROOT, 'rev-parse', 'HEAD']).exitCode === 0 ? null : 'this checkout is not a git repository')
describe.skipIf(skipUnless('the run of the role from git', gitReason))('a run of the role that deploys from a git URL and version', () => {
  test('checks out exactly that commit and installs it', async () => {
    const prefix = tempDir('witness-ansible-git-')
    const work = tempDir('witness-ansible-git-vars-')
    const repo = join(work, 'witness.git')
    expect(Bun.spawnSync(['git', 'clone', '-q', '--bare', ROOT, repo]).exitCode).toBe(0)
    const version = Bun.spawnSync(['git', '-C', ROOT, 'rev-parse', 'HEAD']).stdout.toString().trim()
    const varsFile = join(work, 'vars.json')
    writeFileSync(
      varsFile,
      JSON.stringify({
        witness_hosts: 'all',
        witness_become: false,
        witness_test_mode: true,
        witness_prefix: prefix,
        witness_npm_timeout_s: 180,
        witness_source: 'git',
        witness_git_repo: `file://${repo}`,
        witness_git_version: version,
        witness_providers: { kimi: {} },
        witness_provider_api_keys: { KIMI_API_KEY: 'sk-test-kimi' },
        witness_chains: { default: [{ provider: 'kimi', model: 'kimi-k2.5' }] },
      }),
    )
    const first = await runPlaybook(work, varsFile)
    if (first.code !== 0) console.log(first.output)
    expect(first.code).toBe(0)
    const checkout = join(prefix, 'opt/witness/source/git')
    expect(Bun.spawnSync(['git', '-C', checkout, 'rev-parse', 'HEAD']).stdout.toString().trim()).toBe(version)
    // The release is built from the checkout's files (no .git), and app links to it.
    const app = join(prefix, 'opt/witness/app')
    expect(readlinkSync(app)).toMatch(/\/opt\/witness\/releases\/[0-9a-f]{16}$/)
    expect(readdirSync(app).sort()).toEqual(['bunfig.toml', 'node_modules', 'package-lock.json', 'package.json', 'providers', 'src', 'tsconfig.json'])
    expect(readFileSync(join(app, 'src/cli.ts'), 'utf8')).toBe(Bun.spawnSync(['git', '-C', ROOT, 'show', `${version}:src/cli.ts`]).stdout.toString())
    expect(statSync(join(app, 'node_modules/.bin/bun')).isFile()).toBe(true)
    expect((await run([join(prefix, 'opt/witness/bin/witness'), 'check-config', '--config', join(prefix, 'etc/witness/witness.yaml')])).code).toBe(0)
    // A second run is not made here: the suite is CPU-bound, and what differs from a controller
    // source is the checkout alone (a pinned version); test/ansible.test.ts runs the role twice.
  }, RUN_TIMEOUT_MS)
})
