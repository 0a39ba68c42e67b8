/**
 * The sync's writes into its clone name the file a failure hit: write(2)'s
 * own errors (a full disk) name none.
 */
import { describe, expect, test } from 'bun:test'
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { appendTo, writeTo } from '../src/sync/file-write.ts'
import { tempDir } from './support/temp.ts'

// /dev/full opens, and every write to it fails with ENOSPC, as on a full disk (Linux; elsewhere the test says it skips).
const HAVE_DEV_FULL = existsSync('/dev/full')
if (!HAVE_DEV_FULL) console.log('sync-file-write: skipping the full-disk test: no /dev/full (not Linux)')

describe('writes into the sync clone', () => {
  test.skipIf(!HAVE_DEV_FULL)('a full disk: the error keeps its code and names the file', () => {
    for (const write of [appendTo, writeTo]) {
      let thrown: unknown
      try {
        write('/dev/full', '{"id":1}\n')
      } catch (error) {
        thrown = error
      }
      expect(thrown).toMatchObject({ code: 'ENOSPC', message: 'ENOSPC: no space left on device, write (writing /dev/full)' })
    }
  })

  test('an error that names the file already is left as it is', () => {
    const dir = join(tempDir(), 'alpha')
    mkdirSync(dir)
    let thrown: unknown
    try {
      appendTo(dir, 'x')
    } catch (error) {
      thrown = error
    }
    expect(thrown).toMatchObject({ code: 'EISDIR', message: `EISDIR: illegal operation on a directory, open '${dir}'` })
  })
})
