/** The README stays true: its preset table matches the code, its set-up commands are the scripts, the demo prints what it shows. */
import { describe, expect, test } from 'bun:test'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { PRESETS } from '../providers/presets.ts'
import { runCommand } from '../src/deadman/command.ts'
import { BUN, ROOT } from './support/process.ts'
import { tempDir } from './support/temp.ts'

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

  test('`npm run demo` prints what the README shows, but for the latencies', async () => {
    const shown = readme.split('```\n$ npm run demo\n')[1]!.split('```')[0]!
    const proc = Bun.spawn([BUN, join(ROOT, pkg.scripts.demo.replace(/^bun /, ''))], { cwd: ROOT, stdout: 'pipe', stderr: 'pipe', env: { PATH: process.env.PATH ?? '' } })
    const [printed, code] = await Promise.all([new Response(proc.stdout).text(), proc.exited])
    expect(code).toBe(0)
    // Latency is the 8th column of the table (the columns before it hold no spaces); widths and ports may differ.
    const normal = (text: string) =>
      text
        .trim()
        .replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>')
        .split('\n')
        .map((line) => {
          const fields = line.trim().split(/\s+/)
          if (/^\d+$/.test(fields[0]!) && fields.length >= 8) fields[7] = '<ms>'
          return fields.join(' ')
        })
    expect(normal(printed)).toEqual(normal(shown))
  })

  test('the alert_command shown (README, and the Ansible inventory) logs the summary it is given', async () => {
    const shown = [readme, readFileSync(join(ROOT, 'deploy/ansible/inventory/group_vars/wizards/main.yml'), 'utf8')].map((text) => {
      const line = text.split('\n').find((l) => /^\s*alert_command:/.test(l))!
      return Bun.YAML.parse(line.trim()) as { alert_command: string }
    })
    // A logger that records what it was asked to log, arguments or standard input.
    const dir = tempDir()
    const logged = join(dir, 'logged')
    writeFileSync(join(dir, 'logger'), `#!/bin/sh\necho "args: $*" >> ${logged}\nif [ -t 0 ]; then :; else cat >> ${logged}; fi\n`)
    chmodSync(join(dir, 'logger'), 0o755)
    for (const { alert_command } of shown) {
      writeFileSync(logged, '')
      const result = await runCommand(alert_command, { env: { PATH: `${dir}:/usr/bin:/bin` }, vars: { WITNESS_ALERT: 'rollback of chain default' }, args: ['rollback of chain default'], timeoutMs: 5_000 })
      expect(result.exitStatus).toBe(0)
      expect(readFileSync(logged, 'utf8')).toContain('rollback of chain default')
    }
  })
})
