/**
 * The environment witness gives git: the caller's, without the `GIT_*`
 * variables that would make git work on another repository or work
 * otherwise than witness asks. Such variables are set inside a git hook
 * (`GIT_DIR`, `GIT_INDEX_FILE`, and `-c` options as `GIT_CONFIG_PARAMETERS`),
 * or by an operator's shell, and would silently redirect what witness does.
 *
 * The policy, in one place:
 *
 * - `local` (verify reading an export's history, fleet looking at a clone:
 *   git on this disk only): no `GIT_*` variable at all.
 * - `remote` (the sync, which fetches and pushes): only the variables of
 *   the way to the remote and of git's diagnostics, listed below: ssh
 *   (`GIT_SSH_COMMAND`, `GIT_SSH`, `GIT_SSH_VARIANT`), TLS (`GIT_SSL_*`),
 *   HTTP and proxies (`GIT_HTTP_*`, `GIT_PROXY_*`, `GIT_CURL_VERBOSE`,
 *   `GIT_REDACT_COOKIES`), which protocols may be used (`GIT_ALLOW_PROTOCOL`,
 *   `GIT_PROTOCOL_FROM_USER`), a credential program (`GIT_ASKPASS`; git
 *   still never prompts on a terminal), the operator's own config files
 *   (`GIT_CONFIG_GLOBAL`, `GIT_CONFIG_SYSTEM`, `GIT_CONFIG_NOSYSTEM`: they
 *   choose which files stand for `~/.gitconfig` and `/etc/gitconfig`, which
 *   git reads anyway, and which cannot choose the repository), and tracing
 *   (`GIT_TRACE*`). Every other `GIT_*` is left out: the repository,
 *   work tree, index and object store (`GIT_DIR`, `GIT_WORK_TREE`,
 *   `GIT_INDEX_FILE`, `GIT_OBJECT_DIRECTORY`, `GIT_ALTERNATE_OBJECT_DIRECTORIES`,
 *   `GIT_COMMON_DIR`, `GIT_NAMESPACE`, `GIT_CEILING_DIRECTORIES`,
 *   `GIT_SHALLOW_FILE`, `GIT_DEFAULT_HASH`, `GIT_TEMPLATE_DIR`), pathspecs
 *   (`GIT_GLOB_PATHSPECS`, `GIT_LITERAL_PATHSPECS`, `GIT_NOGLOB_PATHSPECS`,
 *   `GIT_ICASE_PATHSPECS`), config put on git's command line by a parent
 *   (`GIT_CONFIG_PARAMETERS`, `GIT_CONFIG_COUNT` with its `GIT_CONFIG_KEY_n`
 *   and `GIT_CONFIG_VALUE_n`, `GIT_CONFIG`), replace refs
 *   (`GIT_REPLACE_REF_BASE`, `GIT_NO_REPLACE_OBJECTS`), the commit identity
 *   (`GIT_AUTHOR_*`, `GIT_COMMITTER_*`: witness sets it), `GIT_EXEC_PATH`, and
 *   any variable a later git adds.
 *
 * Each caller then adds its own (`GIT_TERMINAL_PROMPT=0`, `LC_ALL=C`, ...).
 */

export type GitEnvPolicy = 'local' | 'remote'

/** The `GIT_*` variables the sync keeps (exact names, or prefixes ending in `*`). */
const REMOTE_KEEPS = [
  'GIT_SSH',
  'GIT_SSH_COMMAND',
  'GIT_SSH_VARIANT',
  'GIT_SSL_*',
  'GIT_HTTP_*',
  'GIT_PROXY_*',
  'GIT_CURL_VERBOSE',
  'GIT_REDACT_COOKIES',
  'GIT_ALLOW_PROTOCOL',
  'GIT_PROTOCOL_FROM_USER',
  'GIT_ASKPASS',
  'GIT_CONFIG_GLOBAL',
  'GIT_CONFIG_SYSTEM',
  'GIT_CONFIG_NOSYSTEM',
  'GIT_TRACE*',
] as const

function kept(name: string, policy: GitEnvPolicy): boolean {
  if (!name.startsWith('GIT_')) return true
  if (policy === 'local') return false
  return REMOTE_KEEPS.some((keep) => (keep.endsWith('*') ? name.startsWith(keep.slice(0, -1)) : name === keep))
}

/** `env` (default: this process's) without the `GIT_*` variables `policy` leaves out (see the top of this file). */
export function gitEnv(policy: GitEnvPolicy, env: Record<string, string | undefined> = process.env): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(env).filter(([name, value]) => value !== undefined && kept(name, policy)))
}
