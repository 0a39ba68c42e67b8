/**
 * The environment Bun's own behaviour depends on: settings it reads once,
 * when the process starts (setting them later from JavaScript changes
 * nothing), so every launcher sets them (`npm start`, the Ansible role's
 * systemd unit and its `witness` wrapper, which launchd runs), and `serve`
 * warns when one is missing or lower than this; and the proxy variables.
 *
 * - BUN_CONFIG_MAX_HTTP_REQUESTS: how many `fetch` calls Bun runs at once,
 *   across all hosts; 256 by default. A call past it waits inside Bun, after
 *   its pending row is committed and its timeout has started, and reaches
 *   its provider late or never: 300 agents on slow calls would time out a
 *   257th call to another provider that never received it. 65535 is Bun's
 *   highest; the open-file limit is the real bound.
 */
export const RUNTIME_ENV = { BUN_CONFIG_MAX_HTTP_REQUESTS: '65535' } as const

const LOOPBACK = ['127.0.0.1', 'localhost', '::1']

/**
 * Keeps loopback calls off an HTTP proxy set in the environment (HTTP_PROXY,
 * HTTPS_PROXY: Bun's fetch uses them): a proxy reaches its own loopback, not
 * this machine's, so a local model (Ollama) failed through it with the
 * proxy's 502, and the watchdog's heartbeat to the router on 127.0.0.1 failed
 * and counted toward a rollback. Adds the loopback names to NO_PROXY (which
 * Bun reads at each call) when a proxy is set and they are not there yet.
 */
export function keepLoopbackOffProxy(env: Record<string, string | undefined>): void {
  const proxied = ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'].some((name) => env[name])
  if (!proxied) return
  // Both spellings get the same list, the operator's entries first: Bun reads the lower-case one
  // first, so a list set in only one of them must not be hidden behind a shorter other.
  const listed = [...new Set(['no_proxy', 'NO_PROXY'].flatMap((name) => (env[name] ?? '').split(',').map((h) => h.trim()).filter(Boolean)))]
  if (listed.includes('*')) return
  const all = [...listed, ...LOOPBACK.filter((host) => !listed.includes(host))].join(',')
  env.NO_PROXY = all
  env.no_proxy = all
}

/** What is wrong with the process's environment for serving, one line each (empty: nothing). */
export function runtimeEnvProblems(env: Record<string, string | undefined>): string[] {
  const problems: string[] = []
  for (const [name, wanted] of Object.entries(RUNTIME_ENV)) {
    const value = Number(env[name])
    // Bun takes 1 to 65535 and ignores anything else (keeping its 256).
    const taken = Number.isInteger(value) && value >= 1 && value <= 65535
    if (!taken || value < Number(wanted)) {
      problems.push(
        `${name} is ${env[name] === undefined ? 'not set' : `${env[name]}`}: Bun will run at most ${taken ? value : 256} upstream calls at once and queue the rest; start witness with ${name}=${wanted} (npm start and the Ansible role do)`,
      )
    }
  }
  return problems
}
