/**
 * Typed errors. Every failure witness reports is one of these classes, or an
 * upstream attempt's ProviderError (providers/provider-error.ts); only
 * `app.onError` (via `shapeError` in src/routes/error-shapes.ts) turns them
 * into HTTP responses.
 *
 * Messages name the provider, the cause and the time spent. They never carry
 * an API key, a token or prompt text: upstream text is passed through
 * `redact` before it reaches a message.
 */
import { listNames } from './text.ts'

export type ErrorType =
  | 'invalid_request'
  | 'unknown_chain'
  | 'payload_too_large'
  | 'request_timeout'
  | 'client_closed_request'
  | 'witness_stopped'
  | 'unsupported_media_type'
  | 'chain_exhausted'
  | 'telemetry_unavailable'
  | 'archives_unavailable'
  | 'rows_deleted'
  | 'unauthorized'
  | 'agent_mismatch'
  | 'forbidden'
  | 'not_found'
  | 'config_invalid'
  | 'internal_error'

/** The base class: an error with a stable machine-readable `type` and an HTTP status. */
export class WitnessError extends Error {
  override name = 'WitnessError'
  readonly type: ErrorType
  readonly status: number
  /** Extra fields merged into the JSON error body (never secrets). */
  readonly details: Record<string, unknown>
  /**
   * False when sending the same request again cannot help (answered with `x-should-retry: false`,
   * which the OpenAI and Anthropic SDKs obey: they retry a 5xx otherwise); undefined: say nothing.
   */
  readonly retry: boolean | undefined
  /** Seconds before the same request is worth sending again (answered as `retry-after`, which the SDKs wait out). */
  readonly retryAfterS: number | undefined

  constructor(
    type: ErrorType,
    status: number,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown>; retry?: boolean; retryAfterS?: number } = {},
  ) {
    super(message, { cause: options.cause })
    this.type = type
    this.status = status
    this.details = options.details ?? {}
    this.retry = options.retry
    this.retryAfterS = options.retryAfterS
  }
}

/** What a client is told of a failure witness did not foresee: its details go to the log alone. */
export function internalError(): WitnessError {
  return new WitnessError('internal_error', 500, 'internal error; see the witness log')
}

/** One problem found in a request or a config, with the path of what is wrong. */
export interface Issue {
  path: string
  message: string
}

export class InvalidRequestError extends WitnessError {
  override name = 'InvalidRequestError'
  constructor(message: string, issues: Issue[] = []) {
    super('invalid_request', 400, message, issues.length ? { details: { issues } } : {})
  }
}

export class UnknownChainError extends WitnessError {
  override name = 'UnknownChainError'
  constructor(chain: string, known: string[]) {
    // Chain names are at most 64 characters: a longer name is cut, so a refusal never echoes a huge input.
    const shown = chain.length > 64 ? `${chain.slice(0, 64)}…` : chain
    super('unknown_chain', 404, `unknown chain "${shown}"; configured chains: ${listNames(known)}`, {
      details: { chain: shown },
    })
  }
}

export class PayloadTooLargeError extends WitnessError {
  override name = 'PayloadTooLargeError'
  constructor(limitBytes: number) {
    super('payload_too_large', 413, `request body is larger than max_body_mb (${limitBytes} bytes)`)
  }
}

/** The request body did not arrive in full within body_timeout_ms. */
export class RequestTimeoutError extends WitnessError {
  override name = 'RequestTimeoutError'
  constructor(timeoutMs: number) {
    super('request_timeout', 408, `request body did not arrive within body_timeout_ms (${timeoutMs} ms)`)
  }
}

/** A body that is not declared as JSON (in open mode: a browser's cross-site "simple" request). */
export class UnsupportedMediaTypeError extends WitnessError {
  override name = 'UnsupportedMediaTypeError'
  constructor(contentType: string | null) {
    super('unsupported_media_type', 415, `request bodies must be sent as content-type: application/json (got ${contentType ? JSON.stringify(contentType.slice(0, 80)) : 'none'})`)
  }
}

/**
 * The client went away before its answer was ready (the chain stops; every
 * row it wrote is finished). Nobody reads the 499; it is not an internal error.
 */
export class ClientGoneError extends WitnessError {
  override name = 'ClientGoneError'
  constructor() {
    super('client_closed_request', 499, 'the client closed the connection before the answer was ready')
  }
}

/** witness stopped (past its grace) while the call waited for its provider; the same request may be sent again. */
export class WitnessStoppedError extends WitnessError {
  override name = 'WitnessStoppedError'
  constructor() {
    super('witness_stopped', 503, 'witness stopped before the answer was ready; retry the request')
  }
}

export class NotFoundError extends WitnessError {
  override name = 'NotFoundError'
  constructor(message: string) {
    super('not_found', 404, message)
  }
}

/** No token, or a token that matches no configured agent or operator. Never names the token. */
export class UnauthorizedError extends WitnessError {
  override name = 'UnauthorizedError'
  constructor(message: string) {
    super('unauthorized', 401, message)
  }
}

/** A valid token that does not allow this (an agent token on an operator endpoint, another agent's rows). */
export class ForbiddenError extends WitnessError {
  override name = 'ForbiddenError'
  constructor(message: string) {
    super('forbidden', 403, message)
  }
}

/** The request names an agent other than the one its token belongs to. */
export class AgentMismatchError extends WitnessError {
  override name = 'AgentMismatchError'
  constructor(tokenAgent: string, from: string, named: string) {
    super('agent_mismatch', 403, `the token belongs to agent "${tokenAgent}" but ${from} names agent "${named}"`, {
      details: { agent: tokenAgent },
    })
  }
}

/**
 * The telemetry database could not commit a row. Raised before any upstream
 * call is made: no row, no call.
 */
export class TelemetryUnavailableError extends WitnessError {
  override name = 'TelemetryUnavailableError'
  constructor(message: string, cause?: unknown) {
    super('telemetry_unavailable', 503, message, { cause })
  }
}

/**
 * A read that must search the monthly archives (its window reaches rows moved there) cannot: no
 * archive directory is known, it is gone, or it lacks the month it must hold (read-sources.ts).
 * Answering from the live file alone would leave those rows out, and did-call would say "no" for
 * calls that were made.
 */
export class ArchivesUnavailableError extends WitnessError {
  override name = 'ArchivesUnavailableError'
  constructor(dir: string | null, archivedThrough: string, what = 'does not exist') {
    const where = dir === null ? 'no archive directory is known (give --archive-dir, or the config whose retention.archive_dir names it)' : `the archive directory ${dir} ${what}`
    super('archives_unavailable', 503, `rows up to ${archivedThrough} were moved to the monthly archives, and ${where}: an answer without them would leave them out`, {
      details: { archive_dir: dir, archived_through: archivedThrough },
    })
  }
}

/**
 * "No" cannot be answered: no call was found, but the window reaches months whose rows retention
 * deleted (retention.archive_keep_days), and a call may have been among them. A "yes" still can be.
 */
export class RowsDeletedError extends WitnessError {
  override name = 'RowsDeletedError'
  constructor(months: readonly string[], since: string) {
    super('rows_deleted', 410, `no call found, but the rows of ${months.join(', ')} in this window (since ${since}) were deleted by retention (retention.archive_keep_days), so whether one was made then cannot be told; ask from after those months`, {
      details: { deleted_months: months },
      retry: false,
    })
  }
}

/**
 * A month's archive file holds a batch half written by a killed archive run, and this reader may not
 * roll it back (the file is another user's): its rows cannot be read until the next archive run.
 */
export class ArchiveHalfWrittenError extends WitnessError {
  override name = 'ArchiveHalfWrittenError'
  constructor(path: string, cause: string) {
    super('archives_unavailable', 503, `${path} holds a batch half written by a killed archive run, and this reader cannot roll it back (${cause}); the next archive run will`, {
      details: { archive: path },
    })
  }
}

/**
 * A file a read needs is damaged: an archive month that does not decompress, decompresses into a
 * database that fails SQLite's check, or is not (or no longer) a whole database; or, when SQLite
 * reports the damage in the middle of a read, one of the files that read searched. Its answer would
 * leave rows out, so there is none; the files are named, for the operator to restore from a copy.
 */
export class ArchiveDamagedError extends WitnessError {
  override name = 'ArchiveDamagedError'
  constructor(message: string, files: string[], cause?: unknown) {
    super('archives_unavailable', 503, message, { cause, details: { files } })
  }
}

/**
 * A read over the live file and the monthly archives found, every time it was done, that the
 * archive job had begun moving rows into a month file it had not listed (read-sources.ts
 * withSources): its answer could leave those rows out. Worth sending again in a moment.
 */
export class ArchivesMovingError extends WitnessError {
  override name = 'ArchivesMovingError'
  constructor(tries: number) {
    super('archives_unavailable', 503, `the archive job began moving rows into another month file during each of ${tries} reads of the archives: an answer could leave them out; retry`, {
      retryAfterS: 1,
    })
  }
}

export class ConfigError extends WitnessError {
  override name = 'ConfigError'
  readonly issues: Issue[]
  constructor(source: string, issues: Issue[]) {
    super(
      'config_invalid',
      500,
      `invalid config ${source}:\n${issues.map((i) => `  - ${i.path || '(root)'}: ${i.message}`).join('\n')}`,
    )
    this.issues = issues
  }
}

/** A reload found the config file invalid: it is refused and the running config stays. */
export class ReloadRefusedError extends WitnessError {
  override name = 'ReloadRefusedError'
  constructor(cause: ConfigError, runningHash: string) {
    super('config_invalid', 422, `config reload refused; still running sha256 ${runningHash}. ${cause.message}`, {
      cause,
      details: { issues: cause.issues, config_hash: runningHash },
    })
  }
}

/** Longest wait the OpenAI and Anthropic SDKs take from `retry-after`; past it they retry on their own schedule (about a second). */
export const SDK_RETRY_AFTER_MAX_MS = 60_000

/**
 * Every step of a chain failed or was skipped. `retry` false: every step failed in a way the same
 * request would again (a 4xx such as a bad request or a rejected key, a missing API key).
 * `retryAfterMs`: every step tried asked to be left alone this long at least (429 or 503 with
 * `Retry-After`); answered as `retry-after`, and past what the SDKs wait out, as "do not resend".
 * `causedByRequest`: every step was tried and refused the request itself (see refusedRequest); the
 * deadman switch counts it as a failing chain only while the running config is unproven (see
 * CallHandle.refused).
 */
export class ChainExhaustedError extends WitnessError {
  override name = 'ChainExhaustedError'
  readonly causedByRequest: boolean
  constructor(chain: string, summary: string, details: Record<string, unknown>, retry?: boolean, retryAfterMs?: number, causedByRequest = false) {
    const waitTooLong = retryAfterMs !== undefined && retryAfterMs >= SDK_RETRY_AFTER_MAX_MS
    super('chain_exhausted', 502, `chain "${chain}" exhausted: ${summary}`, {
      details,
      retry: waitTooLong ? false : retry,
      retryAfterS: retryAfterMs === undefined ? undefined : Math.max(1, Math.ceil(retryAfterMs / 1000)),
    })
    this.causedByRequest = causedByRequest
  }
}

/** A job (archive, sync) is already running elsewhere: its lock file is held. */
export class JobBusyError extends Error {
  override name = 'JobBusyError'
  constructor(job: string, lockPath: string, holder: string | null) {
    super(`${job}: another run holds the lock ${lockPath}${holder ? ` (${holder})` : ''}; nothing done`)
  }
}

/** Archiving stopped without deleting anything it could not prove was archived. */
export class ArchiveError extends Error {
  override name = 'ArchiveError'
}

/**
 * A git command or sync step failed. `unreachable` says the remote could not
 * be reached (commits stay local). The message is already redacted.
 */
export class SyncError extends Error {
  override name = 'SyncError'
  readonly unreachable: boolean
  constructor(message: string, options: { unreachable?: boolean } = {}) {
    super(message)
    this.unreachable = options.unreachable ?? false
  }
}

/** A job's write found the database locked by another process for its whole budget. */
export class DatabaseLockedError extends Error {
  override name = 'DatabaseLockedError'
  constructor(what: string, budgetMs: number) {
    super(`${what}: database locked by another process for ${budgetMs} ms`)
  }
}

/**
 * The machine's signing key file cannot be used: empty (a crash while it was written), cut short, not
 * JSON, not an Ed25519 key. Never replaced on its own: a new key would not verify what this one signed.
 */
export class SigningKeyError extends Error {
  override name = 'SigningKeyError'
  readonly path: string
  constructor(path: string, problem: string) {
    super(
      `the signing key ${path} ${problem}: restore it from a backup. A new key would not verify the checkpoints this one signed; ` +
        'only if no copy is left, move the file aside and run witness init to make a new key',
    )
    this.path = path
  }
}

/** A database made by a newer witness (its `PRAGMA user_version` is past this build's schema): left as it is. */
export class SchemaTooNewError extends Error {
  override name = 'SchemaTooNewError'
  constructor(path: string, version: number, known: number) {
    super(`database schema version ${version}${path ? ` (${path})` : ''} is newer than this witness (${known}); upgrade witness`)
  }
}

/** A database file that holds another program's tables and no witness log: witness does not add its own to it. */
export class ForeignDatabaseError extends Error {
  override name = 'ForeignDatabaseError'
  constructor(path: string, tables: string[]) {
    super(`${path || 'the database'} is a SQLite database of something else (its tables: ${listNames(tables, 5)}), not a witness log: witness does not add its tables to it; give another path`)
  }
}

/** The server could not bind its address: the port is taken (never shared) or not allowed. */
export class ListenError extends Error {
  override name = 'ListenError'
  constructor(host: string, port: number, cause: unknown) {
    const code = (cause as { code?: unknown })?.code
    const why = code === 'EADDRINUSE' ? `port ${port} in use by another process` : cause instanceof Error ? cause.message : String(cause)
    super(`cannot listen on ${host}:${port}: ${why}`, { cause })
  }
}
