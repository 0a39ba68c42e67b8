/**
 * Files witness keeps private but did not make: an adopted database (a
 * backup restored, one made by sqlite3) and a signing key copied in keep
 * their modes, which start-up says when others can read them.
 */
import { Database } from 'bun:sqlite'
import { describe, expect, test } from 'bun:test'
import { chmodSync } from 'node:fs'
import { join } from 'node:path'
import { ensureSigningKey } from '../src/proof/keys.ts'
import { tempDir } from './support/temp.ts'
import { startWitness } from './support/witness.ts'

const config = { database: './w.db', proof: { key_path: './key.json' }, providers: { kimi: { base_url: 'http://127.0.0.1:9/v1' } }, chains: { default: [{ provider: 'kimi', model: 'k' }] } }

describe('start-up and the modes of files it did not make', () => {
  test('a database readable by others (with its WAL and shared memory, which SQLite makes alike) and a key readable by its group are said, with the fix', async () => {
    const dir = tempDir()
    new Database(join(dir, 'w.db'), { create: true }).close()
    chmodSync(join(dir, 'w.db'), 0o644)
    await ensureSigningKey(join(dir, 'key.json'))
    chmodSync(join(dir, 'key.json'), 0o640)
    const w = await startWitness(config, { dir })
    try {
      const warnings = w.logs.filter((line) => line.startsWith('witness: WARNING:'))
      expect(warnings).toEqual([
        ...['', '-wal', '-shm'].map((end) => `witness: WARNING: the database ${join(dir, `w.db${end}`)} is open to other users (mode 0644): chmod o-rwx '${join(dir, `w.db${end}`)}'`),
        `witness: WARNING: the signing key ${join(dir, 'key.json')} is open to users other than its owner (mode 0640): chmod go-rwx '${join(dir, 'key.json')}'`,
      ])
    } finally {
      await w.stop(0)
    }
  })

  test('files witness made itself say nothing', async () => {
    // The umask the command line sets (cli.ts) before it makes any file.
    const before = process.umask(0o027)
    try {
      const w = await startWitness(config)
      try {
        expect(w.logs.filter((line) => line.startsWith('witness: WARNING:'))).toEqual([])
      } finally {
        await w.stop(0)
      }
    } finally {
      process.umask(before)
    }
  })
})
