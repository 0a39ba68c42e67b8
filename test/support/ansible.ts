/**
 * Running the Ansible role (deploy/ansible) from the tests: the tools it
 * needs, and `ansible-playbook -c local` of site.yml into a temporary
 * prefix. Shared by test/ansible.test.ts and test/ansible-git.test.ts, two
 * files so that the test runner's workers can run their plays side by side.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { ROOT } from './process.ts'
import { tempDir } from './temp.ts'

export const ANSIBLE_DIR = join(ROOT, 'deploy', 'ansible')
/** The first run installs the dependencies from the npm registry. */
export const RUN_TIMEOUT_MS = 240_000

/** Why a test cannot run here (the first missing tool), or null. */
export function missing(...tools: string[]): string | null {
  const absent = tools.filter((tool) => Bun.which(tool) === null)
  return absent.length ? `${absent.join(', ')} not installed` : null
}

export function skipUnless(what: string, reason: string | null): boolean {
  if (reason) console.log(`ansible tests: skipping ${what}: ${reason}`)
  return reason !== null
}

export async function run(argv: string[], env: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  const proc = Bun.spawn(argv, {
    cwd: ANSIBLE_DIR,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ANSIBLE_NOCOLOR: '1', NO_COLOR: '1', ...env },
    stdin: 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
  })
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited])
  return { code, output: stdout + stderr }
}

/** site.yml against localhost with the variables in `varsFile`, Ansible's temp files under `work`. */
export function runPlaybook(work: string, varsFile: string, ...extra: string[]) {
  return run(['ansible-playbook', '-c', 'local', '-i', 'localhost,', '-e', `@${varsFile}`, ...extra, 'site.yml'], ansibleEnv(work))
}

/** The Python the plays run modules with: Debian's, where it is, saving the discovery each run makes (0.4 s). */
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'auto_silent'

/** Ansible's temp files under `work`. */
export function ansibleEnv(work: string): Record<string, string> {
  return { ANSIBLE_LOCAL_TEMP: join(work, 'ansible-local'), ANSIBLE_REMOTE_TEMP: join(work, 'ansible-remote'), ANSIBLE_PYTHON_INTERPRETER: PYTHON }
}

/**
 * One of the role's templates rendered alone to `dest` (ansible's template module, no facts
 * gathered) with the role's defaults and vars, then `vars` over them: `ansible_facts` among them
 * stands in for the machine's.
 */
export async function renderTemplate(work: string, template: string, dest: string, vars: Record<string, unknown>): Promise<void> {
  const varsFile = join(work, `render-${basename(dest)}.json`)
  writeFileSync(varsFile, JSON.stringify(vars))
  const role = join(ANSIBLE_DIR, 'roles', 'witness')
  const result = await run(
    [
      'ansible', 'localhost', '-c', 'local', '-i', 'localhost,', '-m', 'ansible.builtin.template',
      '-a', `src=${join(role, 'templates', template)} dest=${dest}`,
      '-e', `@${join(role, 'defaults', 'main.yml')}`, '-e', `@${join(role, 'vars', 'main.yml')}`, '-e', `@${varsFile}`,
    ],
    ansibleEnv(work),
  )
  if (result.code !== 0) throw new Error(`rendering ${template} failed:\n${result.output}`)
}

export function recap(output: string): { changed: number; failed: number } {
  const match = /localhost\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)/.exec(output)
  if (!match) throw new Error(`no PLAY RECAP in:\n${output}`)
  return { changed: Number(match[1]), failed: Number(match[2]) }
}

/** The tools a run of the role needs: why it cannot run here, or null. */
export const runReason = missing('ansible-playbook', 'rsync', 'visudo', 'npm', 'python3')

/**
 * A prefix the role deploys into (test mode), with the variables of a fleet machine (providers and
 * their keys, chains, deadman agents, sync, auth, prices), and the ways to run the role over it.
 */
export function rolePrefix(name: string) {
  const prefix = tempDir(`witness-${name}-`)
  const work = tempDir(`witness-${name}-vars-`)
  const path = (p: string) => join(prefix, p)
  const secrets = { KIMI_API_KEY: 'sk-test-kimi-0123', OPENROUTER_API_KEY: "sk-or-'quoted' key" }
  const vars = {
    witness_hosts: 'all',
    witness_become: false,
    witness_test_mode: true,
    witness_prefix: prefix,
    witness_systemd: true,
    witness_launchd: true,
    witness_npm_timeout_s: 180,
    witness_providers: { kimi: { timeout_ms: 30000 }, openrouter: {}, claude: { preset: 'anthropic' } },
    witness_chains: {
      default: [
        { provider: 'kimi', model: 'kimi-k2.5', timeout_ms: 20000 },
        { provider: 'openrouter', model: 'google/gemini-2.5-pro' },
      ],
    },
    witness_banned_providers: ['anthropic'],
    witness_retention: { keep_days: 30, max_db_mb: 256 },
    witness_sync: { remote: join(work, 'telemetry.git'), every: '15m' },
    witness_deadman_agents: {
      bezalel: { max_silence_s: 300, rollback_command: 'sudo -n -u bezalel /usr/bin/git -C /srv/wizards/bezalel checkout last-good -- config.yaml && sudo -n /usr/bin/systemctl restart hermes-bezalel.service' },
    },
    witness_sudo_commands: ['/usr/bin/systemctl restart hermes-bezalel.service'],
    witness_sudo_as: { bezalel: ['/usr/bin/git -C /srv/wizards/bezalel checkout last-good -- config.yaml'] },
    witness_provider_api_keys: secrets,
    witness_sync_token: 'sync-token-4567',
    witness_watchdog_token: 'watchdog-token-89ab',
    witness_auth: { agents: { bezalel: { token_sha256: 'a'.repeat(64) } }, operators: { alexander: { token_sha256: 'b'.repeat(64) } } },
    witness_pricing: { 'kimi-k2.5': { input_per_mtok: 0.6, output_per_mtok: 2.5 } },
  }
  const varsFile = join(work, 'vars.json')
  writeFileSync(varsFile, JSON.stringify(vars))
  return {
    prefix,
    work,
    path,
    vars,
    varsFile,
    secrets,
    configPath: path('etc/witness/witness.yaml'),
    witnessCommand: path('opt/witness/bin/witness'),
    /** site.yml over the prefix, `extra` after the variables. */
    playbook: (...extra: string[]) => runPlaybook(work, varsFile, ...extra),
    /** Variables over the run's, as a file: `-e @file`. */
    overVars: (file: string, value: Record<string, unknown>) => {
      const at = join(work, `${file}.json`)
      writeFileSync(at, JSON.stringify(value))
      return ['-e', `@${at}`]
    },
  }
}
