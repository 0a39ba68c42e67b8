/** The README stays true: its preset table matches the code, its set-up commands are the scripts. */
import { describe, expect, test } from 'bun:test'
import { join } from 'node:path'
import { PRESETS } from '../providers/presets.ts'
import { ROOT } from './support/process.ts'

const readme = await Bun.file(join(ROOT, 'README.md')).text()
const pkg = await Bun.file(join(ROOT, 'package.json')).json()

describe('README', () => {
  test('the preset table lists every preset with its base URL and key variable', () => {
    const table = readme.split('<!-- presets:start -->')[1]!.split('<!-- presets:end -->')[0]!
    const rows = table.trim().split('\n').slice(2)
    expect(rows).toHaveLength(Object.keys(PRESETS).length)
    for (const [name, preset] of Object.entries(PRESETS)) {
      const row = rows.find((r) => r.startsWith(`| \`${name}\` |`))
      expect(row, name).toBeDefined()
      expect(row).toContain(`| ${preset.type} |`)
      expect(row).toContain(preset.baseUrl ? `\`${preset.baseUrl}\`` : '(set `base_url`)')
      expect(row).toContain('apiKeyEnv' in preset ? `\`${preset.apiKeyEnv}\`` : '| - |')
    }
  })

  test('the two set-up commands are there and the scripts they run exist', () => {
    expect(readme).toContain('npm install && npm start')
    expect(readme).toContain('npm install && npm test')
    expect(pkg.scripts.start).toBeDefined()
    expect(pkg.scripts.test).toBeDefined()
    expect(pkg.scripts.demo).toBeDefined()
    expect(pkg.dependencies.bun).toMatch(/^\d+\.\d+\.\d+$/)
  })
})
