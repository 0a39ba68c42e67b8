/**
 * What `witness check-config` and `witness serve` say about real config files in temp dirs, run as
 * real subprocesses: the problems they refuse (each with its path), the warnings they give, and
 * that they say it in a line, not a stack trace.
 */
import { describe, expect, test } from 'bun:test'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runWitness } from './support/process.ts'
import { tempDir } from './support/temp.ts'

/** A config file in a fresh temp dir holding `text`; returns its path. */
function configFile(text: string): string {
  const path = join(tempDir(), 'witness.yaml')
  writeFileSync(path, text)
  return path
}

describe('api_key_env', () => {
  // Made up, but shaped like the real thing: each matched the old check (letters, digits, "_").
  const pasted = {
    groq: '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',
    huggingface: 'hf_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789',
    github: 'ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R',
    gemini: 'AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q',
  }

  test('a provider key pasted in place of the variable name is refused by check-config and serve, and never echoed', async () => {
    const providers = Object.entries(pasted).map(([name, key]) => `  ${name}: { type: openai, base_url: "http://127.0.0.1:9/v1", api_key_env: ${key} }`)
    const path = configFile(`providers:\n${providers.join('\n')}\nchains:\n  default: [ { provider: groq, model: m } ]\n`)
    for (const command of ['check-config', 'serve']) {
      const result = await runWitness([command, '--config', path, ...(command === 'serve' ? ['--port', '0'] : [])])
      expect(result.code).toBe(2)
      for (const [name, key] of Object.entries(pasted)) {
        expect(result.stderr).toContain(`providers.${name}.api_key_env: must name the environment variable that holds the key (like GROQ_API_KEY), not the key itself`)
        expect(result.stderr).toContain(`starts ${JSON.stringify(key.slice(0, 4))} and is ${key.length} characters long`)
        // Nothing past its first 4 characters, anywhere.
        expect(`${result.stdout}${result.stderr}`).not.toContain(key.slice(0, 5))
      }
    }
  })

  test('a name must be written as operators write them, in capitals: a lower-case one is refused, GROQ_API_KEY is not', async () => {
    const lower = configFile('providers:\n  groq: { api_key_env: groq_api_key }\nchains:\n  default: [ { provider: groq, model: m } ]\n')
    const refused = await runWitness(['check-config', '--config', lower])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('providers.groq.api_key_env: must name the environment variable that holds the key')
    const upper = configFile('providers:\n  groq: { api_key_env: GROQ_API_KEY_2 }\nchains:\n  default: [ { provider: groq, model: m } ]\n')
    const passed = await runWitness(['check-config', '--config', upper])
    expect(passed.stderr).toBe('')
    expect(passed.code).toBe(0)
  })
})
