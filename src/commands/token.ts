/**
 * `witness token new --agent NAME` (or `--operator NAME`): a fresh random
 * token, printed once, and the config line holding only its sha256.
 */
import { parseArgs } from 'node:util'
import * as v from 'valibot'
import { hashToken, newToken } from '../auth/tokens.ts'
import { AgentName } from '../validation.ts'
import { type Command, UsageError, parsed } from './args.ts'

export const tokenCommand: Command = {
  summary: 'token new --agent NAME | --operator NAME        print a new token once, and the config line with its hash',
  async run(args) {
    const { values, positionals } = parsed(() =>
      parseArgs({ args, allowPositionals: true, options: { agent: { type: 'string' }, operator: { type: 'string' } } }),
    )
    if (positionals[0] !== 'new') throw new UsageError('token: the only subcommand is "new"')
    if (positionals.length > 1) throw new UsageError(`token new: unexpected argument ${JSON.stringify(positionals[1]!.slice(0, 64))} (names go after --agent or --operator)`)
    if ((values.agent === undefined) === (values.operator === undefined)) throw new UsageError('token new: give exactly one of --agent NAME or --operator NAME')
    const kind = values.agent !== undefined ? 'agents' : 'operators'
    const name = values.agent ?? values.operator!
    if (!v.is(AgentName, name)) throw new UsageError(`token new: "${name}" is not a valid name (1-128 letters, digits, ".", "_", "-", "@" or ":")`)
    const token = newToken()
    console.log(`token for ${kind === 'agents' ? 'agent' : 'operator'} ${name} (shown once; witness keeps only its hash):`)
    console.log(token)
    console.log('')
    console.log('add to witness.yaml (into its auth block if it has one: a second is refused):')
    console.log('auth:')
    console.log(`  ${kind}:`)
    // Quoted: a name such as 007 or 1e3 would otherwise be read back as a number (7, 1000).
    console.log(`    ${JSON.stringify(name)}: { token_sha256: "${hashToken(token)}" }`)
    return 0
  },
}
