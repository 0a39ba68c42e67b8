/**
 * What the deadman switch carries over a restart. A reload compares the
 * config it replaces with the new one: chains it removed count as failing
 * when agents still call them, tokens it dropped are watched (runtime.ts,
 * lockouts.ts). A config applied by a restart (a reboot, a crash, a service
 * restarted by hand) had nothing to be compared with, so a chain renamed or
 * a token mistyped that way went unseen.
 *
 * So the running config's chain names and token hashes, and what reloads
 * removed and no config has brought back since, are kept in witness_state
 * (never synced: sync exports rows and the chain), written at start-up and
 * after each reload. At the next start the new config is compared with them
 * as a reload compares it with the config before. Hashes only: the tokens
 * themselves are never stored anywhere.
 */
import * as v from 'valibot'
import { AuthSchema } from '../config.ts'

/** witness_state key. */
export const CARRIED_KEY = 'deadman.carried'

const CarriedSchema = v.object({
  /** The chains of the config that ran. */
  chains: v.array(v.string()),
  /** Chains reloads removed that no config has brought back since. */
  removedChains: v.array(v.string()),
  /** The token hashes the config that ran accepted (null: it had no auth). */
  auth: v.nullable(AuthSchema),
  /** Token hashes reloads dropped that no config has taken back since. */
  droppedAuth: v.array(AuthSchema),
})
export type Carried = v.InferOutput<typeof CarriedSchema>

export function encodeCarried(carried: Carried): string {
  return JSON.stringify(carried)
}

/** What the last run left, or null when it left nothing readable (a first start, an older witness). */
export function decodeCarried(text: string | null): Carried | null {
  if (text === null) return null
  try {
    const parsed = v.safeParse(CarriedSchema, JSON.parse(text))
    return parsed.success ? parsed.output : null
  } catch {
    return null
  }
}
