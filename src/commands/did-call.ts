/**
 * `witness did-call --agent X --provider Y [--model M] [--since 1h]`: one
 * sentence answering the question. Exit 0: yes, 1: no, 2: usage error or
 * anything else that kept it from answering (a database that cannot be read,
 * a crash), so a script never takes a failure for "no".
 */
import { parseArgs } from 'node:util'
import { readState } from '../jobs/job-db.ts'
import { parseDidCallInput } from '../query-input.ts'
import { ARCHIVED_THROUGH_KEY } from '../retention/mover.ts'
import { deletedMonthsIn, withSources } from '../retention/read-sources.ts'
import { listNames } from '../text.ts'
import { type DidCallAnswer, didCall } from '../telemetry/did-call.ts'
import { type Command, UsageError, parsed } from './args.ts'
import { READ_OPTIONS, given, parseFlags, openForReading } from './read-db.ts'

export const didCallCommand: Command = {
  summary:
    'did-call --agent A --provider P [--model M] [--since T] [--until T] [--json] [--config PATH] [--db PATH] [--archives [--archive-dir DIR]]\n' +
    '                                                 did the agent really call the provider? exit 0 yes, 1 no, 2 usage error or failure',
  failureExitCode: 2,
  async run(args) {
    const options = { ...READ_OPTIONS, json: { type: 'boolean' }, agent: { type: 'string' }, provider: { type: 'string' }, model: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' } } as const
    const { values } = parsed(() => parseArgs({ args, options }))
    const query = parseFlags(() => parseDidCallInput(given(values, ['agent', 'provider', 'model', 'since', 'until']), Date.now()))
    const target = openForReading(values)
    try {
      const [answer, archivesRead] = await withSources(
        () => target.sources(query.archives, query, true),
        (sources) => [didCall(sources.live, query, sources.archives, false, deletedMonthsIn(sources.live, query)), sources.archives.length > 0] as const,
      )
      // A provider no row names and the config does not have is a name mistyped: not a "no". Unless
      // rows were moved to archives this read did not open: a provider taken out of the config since
      // may be named there alone.
      const providers = target.ownConfig ? [...target.ownConfig.providers.keys()] : null
      let unknownProvider: string | null = null
      if (answer.never_seen?.includes('provider') && providers && !providers.includes(answer.provider)) {
        unknownProvider = `no row in the files read names provider "${answer.provider}", and the config has none of that name (it has ${listNames(providers)})`
        const archived = readState(target.db, ARCHIVED_THROUGH_KEY)
        if (archived === null || archivesRead) throw new UsageError(`no provider "${answer.provider}": the config has none of that name (it has ${listNames(providers)}), and no row names one; a typo?`, { showUsage: false })
        unknownProvider += `: a typo? Rows archived through ${archived} were not read (--archives reads them)`
      }
      console.log(values.json ? JSON.stringify(answer) : sentence(answer))
      if (!values.json && unknownProvider) console.error(`note: ${unknownProvider}`)
      if (!values.json && answer.never_seen?.includes('agent')) console.error(`note: no row in the files read names agent "${answer.agent}": check its spelling`)
      return answer.called ? 0 : 1
    } finally {
      target.close()
    }
  },
}

/** "yes: agent ezra called provider kimi 12 times since … (11 success, 1 timeout); last call at …" */
export function sentence(a: DidCallAnswer): string {
  const what = `provider ${a.provider}${a.model !== undefined ? ` (model ${a.model})` : ''}`
  const window = `since ${a.since}${a.until !== undefined ? ` until ${a.until}` : ''}`
  if (a.called) {
    const statuses = Object.entries(a.by_status).map(([status, n]) => `${n} ${status}`).join(', ')
    return `yes: agent ${a.agent} called ${what} ${a.calls} time${a.calls === 1 ? '' : 's'} ${window} (${statuses}); last call at ${a.last_call_at}`
  }
  const named = a.fallback_rows ? `; ${a.fallback_rows} fallback row${a.fallback_rows === 1 ? '' : 's'} named it, but no call was attempted` : ''
  return `no: agent ${a.agent} made no call to ${what} ${window}${named}`
}
