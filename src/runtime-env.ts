/**
 * Settings of Bun's own that it reads from the environment once, when the
 * process starts (setting them later from JavaScript changes nothing), so
 * every launcher sets them: `npm start`, the Ansible role's systemd unit and
 * its `witness` wrapper (launchd runs that). `serve` warns when one is
 * missing or lower than this.
 *
 * - BUN_CONFIG_MAX_HTTP_REQUESTS: how many `fetch` calls Bun runs at once,
 *   across all hosts; 256 by default. A call past it waits inside Bun, after
 *   its pending row is committed and its timeout has started, and reaches
 *   its provider late or never: 300 agents on slow calls would time out a
 *   257th call to another provider that never received it. 65535 is Bun's
 *   highest; the open-file limit is the real bound.
 */
export const RUNTIME_ENV = { BUN_CONFIG_MAX_HTTP_REQUESTS: '65535' } as const

/** What is wrong with the process's environment for serving, one line each (empty: nothing). */
export function runtimeEnvProblems(env: Record<string, string | undefined>): string[] {
  const problems: string[] = []
  for (const [name, wanted] of Object.entries(RUNTIME_ENV)) {
    const value = Number(env[name])
    if (!(value >= Number(wanted))) {
      problems.push(
        `${name} is ${env[name] === undefined ? 'not set' : `${env[name]}`}: Bun will run at most ${Number.isFinite(value) && value > 0 ? value : 256} upstream calls at once and queue the rest; start witness with ${name}=${wanted} (npm start and the Ansible role do)`,
      )
    }
  }
  return problems
}
