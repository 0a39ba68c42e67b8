/**
 * Bearer tokens: only their sha256 lives in the config. A presented token is
 * hashed once and compared with every configured hash in constant time
 * (timingSafeEqual over the 32-byte digests, no early exit), so neither the
 * comparison nor the position of a match leaks anything about a token.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { AuthConfig } from '../config-schema.ts'

/** Who a valid token belongs to. */
export interface TokenOwner {
  kind: 'agent' | 'operator'
  name: string
}

/** The hex sha256 of a token, as written in `auth.*.*.token_sha256`. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/** A fresh random token: `wit_` and 32 random bytes in base64url (256 bits). */
export function newToken(): string {
  return `wit_${randomBytes(32).toString('base64url')}`
}

/** The agent or operator whose hash matches `token`, or null. */
export function ownerOf(token: string, auth: AuthConfig): TokenOwner | null {
  const presented = createHash('sha256').update(token, 'utf8').digest()
  let owner: TokenOwner | null = null
  for (const kind of ['agent', 'operator'] as const) {
    for (const [name, { token_sha256 }] of Object.entries(kind === 'agent' ? auth.agents : auth.operators)) {
      // Every hash is compared, match or not, so timing does not depend on where (or whether) it matches.
      const matches = timingSafeEqual(presented, Buffer.from(token_sha256, 'hex'))
      if (matches && !owner) owner = { kind, name }
    }
  }
  return owner
}
