/** SHA-256 as lowercase hex: config hashes, token hashes, the proof chain's and the evidence's. */
export function sha256(data: string | Uint8Array): string {
  return Bun.SHA256.hash(data, 'hex')
}
