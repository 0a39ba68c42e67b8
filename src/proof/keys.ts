/**
 * The machine's Ed25519 signing key (Web Crypto). One JSON file holds the
 * private and public JWK; it is created by `witness init` (or the first
 * `serve`) with mode 0600, readable only by the service user. The public
 * half is what the git export publishes next to the rows, and all that
 * `witness verify --key` needs.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname } from 'node:path'
import * as v from 'valibot'
import { SigningKeyError } from '../errors.ts'
import { writeFileDurably } from '../jobs/durable-file.ts'
import { sha256 } from '../hash.ts'

export interface SigningKey {
  keyId: string
  publicJwk: JsonWebKey
  privateKey: CryptoKey
  publicKey: CryptoKey
}

/** The published form of a public key. */
export interface PublicKeyFile {
  key_id: string
  algorithm: 'Ed25519'
  jwk: JsonWebKey
}

/** A key's id: the first 16 hex digits of the sha256 of its public point. */
export function keyIdOf(publicJwk: JsonWebKey): string {
  return sha256(publicJwk.x ?? '').slice(0, 16)
}

/**
 * A public key for checking signatures, imported once per JWK object: verify checks years of
 * checkpoints and signed runs against one key.
 */
export function importPublicKey(jwk: JsonWebKey): Promise<CryptoKey> {
  let key = imported.get(jwk)
  if (!key) imported.set(jwk, (key = crypto.subtle.importKey('jwk', { kty: 'OKP', crv: 'Ed25519', x: jwk.x }, { name: 'Ed25519' }, true, ['verify'])))
  return key
}

const imported = new WeakMap<JsonWebKey, Promise<CryptoKey>>()

/**
 * Loads the key at `path`, creating it first if there is none. A new key is on disk, fsynced, before
 * anything is signed with it: a key lost to a power cut after it signed would leave checkpoints no
 * key verifies, and a file half written (or empty) would stop every start after.
 */
export async function ensureSigningKey(path: string): Promise<{ key: SigningKey; created: boolean }> {
  if (existsSync(path)) return { key: await loadSigningKey(path), created: false }
  const pair = (await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])) as CryptoKeyPair
  const privateJwk = await crypto.subtle.exportKey('jwk', pair.privateKey)
  const publicJwk = await crypto.subtle.exportKey('jwk', pair.publicKey)
  mkdirSync(dirname(path), { recursive: true })
  const text = `${JSON.stringify({ algorithm: 'Ed25519', key_id: keyIdOf(publicJwk), private_jwk: privateJwk, public_jwk: publicJwk }, null, 2)}\n`
  writeFileDurably(path, new TextEncoder().encode(text), { mode: 0o600 })
  return { key: await loadSigningKey(path), created: true }
}

/** The key file's shape: both halves of an Ed25519 key as JWKs (`d` is the private scalar). */
const KeyFileSchema = v.looseObject({
  private_jwk: v.looseObject({ d: v.string(), x: v.string() }),
  public_jwk: v.looseObject({ x: v.string() }),
})

/**
 * The machine's signing key from its file. A file that is empty (a crash while it was written), cut
 * short, not JSON or not an Ed25519 key is a SigningKeyError naming it (never its contents: it is a
 * private key); a file that cannot be read is the file system's error.
 */
export async function loadSigningKey(path: string): Promise<SigningKey> {
  const text = readFileSync(path, 'utf8')
  if (text.trim() === '') throw new SigningKeyError(path, `is empty (${Buffer.byteLength(text)} bytes)`)
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new SigningKeyError(path, `is not JSON (${Buffer.byteLength(text)} bytes: cut short, or not a key file)`)
  }
  const parsed = v.safeParse(KeyFileSchema, value)
  if (!parsed.success) throw new SigningKeyError(path, 'does not hold an Ed25519 key pair (private_jwk and public_jwk)')
  const file = parsed.output
  try {
    const privateKey = await crypto.subtle.importKey('jwk', file.private_jwk, { name: 'Ed25519' }, false, ['sign'])
    const publicKey = await importPublicKey(file.public_jwk)
    return { keyId: keyIdOf(file.public_jwk), publicJwk: { kty: 'OKP', crv: 'Ed25519', x: file.public_jwk.x }, privateKey, publicKey }
  } catch {
    throw new SigningKeyError(path, 'does not hold a usable Ed25519 key pair (private_jwk and public_jwk)')
  }
}

export function publicKeyFile(key: SigningKey): PublicKeyFile {
  return { key_id: key.keyId, algorithm: 'Ed25519', jwk: key.publicJwk }
}

/** An Ed25519 public JWK: the curve point `x` is all that matters. */
const PublicJwkSchema = v.looseObject({ kty: v.optional(v.literal('OKP')), crv: v.optional(v.literal('Ed25519')), x: v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{43}$/)) })

/** What `--key` may name: the published public-key.json (`jwk`), the machine's key file (`public_jwk`), or a bare JWK. */
const KEY_FILE_SHAPES = [
  v.pipe(v.looseObject({ jwk: PublicJwkSchema }), v.transform((f) => f.jwk.x)),
  v.pipe(v.looseObject({ public_jwk: PublicJwkSchema }), v.transform((f) => f.public_jwk.x)),
  v.pipe(PublicJwkSchema, v.transform((f) => f.x)),
]

/**
 * Reads the public half of a key from any of the files that carry one: the
 * published `public-key.json`, the key file itself (only its public half is
 * read) or a bare JWK. The key id is recomputed from the point, never taken
 * from the file. Null when the file holds no usable Ed25519 public key.
 */
export async function readPublicKey(path: string): Promise<PublicKeyFile | null> {
  let value: unknown
  try {
    value = JSON.parse(readFileSync(path, 'utf8'))
  } catch {
    return null
  }
  for (const shape of KEY_FILE_SHAPES) {
    const parsed = v.safeParse(shape, value)
    if (!parsed.success) continue
    const jwk: JsonWebKey = { kty: 'OKP', crv: 'Ed25519', x: parsed.output }
    try {
      await importPublicKey(jwk)
    } catch {
      return null
    }
    return { key_id: keyIdOf(jwk), algorithm: 'Ed25519', jwk }
  }
  return null
}
