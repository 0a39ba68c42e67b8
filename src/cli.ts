#!/usr/bin/env bun
/**
 * The command line: `witness <command> [options]`. Each command lives in
 * src/commands/; this file only dispatches and maps errors to exit codes
 * (2 for usage, config and flag-value errors, 1 for a job that could not run or finish,
 * or the command's own `failureExitCode`). An unexpected error is printed and
 * exits with that failure code too, never with a code a command gives a meaning.
 */
import { archiveCommand } from './commands/archive.ts'
import { type Command, UsageError } from './commands/args.ts'
import { checkConfigCommand } from './commands/check-config.ts'
import { didCallCommand } from './commands/did-call.ts'
import { fleetCommand } from './commands/fleet.ts'
import { initCommand } from './commands/init.ts'
import { queryCommand } from './commands/query.ts'
import { serveCommand } from './commands/serve.ts'
import { simCommand } from './commands/sim.ts'
import { statsCommand } from './commands/stats.ts'
import { tokenCommand } from './commands/token.ts'
import { verifyCommand } from './commands/verify.ts'
import { syncCommand } from './commands/sync.ts'
import { watchdogCommand } from './commands/watchdog.ts'
import { ArchiveError, ConfigError, DatabaseLockedError, ForeignDatabaseError, InvalidRequestError, JobBusyError, ListenError, SchemaTooNewError, SigningKeyError, SyncError, WitnessError } from './errors.ts'
import { keepLoopbackOffProxy } from './runtime-env.ts'

const COMMANDS: Record<string, Command> = {
  serve: serveCommand,
  init: initCommand,
  'check-config': checkConfigCommand,
  sim: simCommand,
  watchdog: watchdogCommand,
  archive: archiveCommand,
  sync: syncCommand,
  fleet: fleetCommand,
  query: queryCommand,
  'did-call': didCallCommand,
  stats: statsCommand,
  token: tokenCommand,
  verify: verifyCommand,
}

function usage(): string {
  const lines = Object.values(COMMANDS).map((c) => `  ${c.summary}`)
  return `usage: witness <command> [options]\n\ncommands:\n${lines.join('\n')}\n`
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    // Asked for, the usage is the answer (stdout); with no command at all, it is the error (stderr).
    if (name) console.log(usage())
    else console.error(usage())
    return name ? 0 : 2
  }
  const command = COMMANDS[name]
  if (!command) {
    console.error(`witness: unknown command "${name}"\n${usage()}`)
    return 2
  }
  // `witness <command> --help`: that command's line of the usage, and the README for the rest.
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(`usage: witness ${command.summary}\n\nThe README says more (a section per command).`)
    return 0
  }
  try {
    return await command.run(rest)
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`witness: ${error.message}`)
      return 2
    }
    if (error instanceof JobBusyError || error instanceof ArchiveError || error instanceof SyncError || error instanceof DatabaseLockedError || error instanceof ListenError || error instanceof SigningKeyError || error instanceof SchemaTooNewError || error instanceof ForeignDatabaseError || (error instanceof WitnessError && (error.type === 'archives_unavailable' || error.type === 'rows_deleted'))) {
      console.error(`witness: ${error.message}`)
      return command.failureExitCode ?? 1
    }
    if (error instanceof InvalidRequestError) {
      // Bad values for a read command's flags (--since, --status, ...).
      console.error(`witness: ${error.message}`)
      return 2
    }
    if (error instanceof UsageError) {
      // The one line that is wrong, then this command's usage (not every command's, which buried it).
      console.error(error.showUsage ? `witness: ${error.message}\nusage: witness ${command.summary}` : `witness: ${error.message}`)
      return 2
    }
    // The file system or SQLite said no (a read-only directory, a path that is a directory, a file
    // that is not a database): its message says what and where; a stack trace would only hide it.
    const code = (error as { code?: unknown })?.code
    if (typeof code === 'string' && /^(E[A-Z]+|SQLITE_[A-Z_]+)$/.test(code)) {
      console.error(`witness: ${name} failed: ${(error as Error).message}${code.startsWith('SQLITE_') ? ` (${code})` : ''}`)
      return command.failureExitCode ?? 1
    }
    console.error(`witness: ${name} failed unexpectedly: ${(error as Error)?.stack ?? String(error)}`)
    return command.failureExitCode ?? 1
  }
}

if (import.meta.main) {
  keepLoopbackOffProxy(process.env)
  keepFilesFromOthers()
  process.exitCode = await main(process.argv.slice(2))
}

/**
 * What witness creates (the database and its WAL, the archives, the sync clone, state files) holds
 * every agent's rows: not readable by other users of the machine, whatever the umask (022 makes
 * them world-readable). The owner's group keeps read access (a backup, an operator's group).
 */
function keepFilesFromOthers(): void {
  process.umask(process.umask() | 0o027)
}
