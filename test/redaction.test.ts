/**
 * The redactor on its own: a key and a prompt echoed in the forms a hostile
 * or careless upstream sends them back in (the chain's tests send them
 * through real loopback upstreams).
 */
import { describe, expect, test } from 'bun:test'
import { PROMPT_STEP, PROMPT_WINDOW, PromptText, SECRET_WINDOW, redactor, secretsRedactor } from '../src/redaction.ts'
import { redactedClip } from '../providers/call.ts'

const key = 'sk-live-ECHOSECRETKEY0123456789abcdef'
const hexOf = (text: string) => Buffer.from(text).toString('hex')
const b64Of = (text: string) => Buffer.from(text).toString('base64')
const uEscaped = (text: string) => [...text].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join('')

describe('a secret', () => {
  const redact = redactor({ secret: [key] })

  test.each([
    ['as is', key],
    ['cut short at the front', key.slice(4)],
    ['cut short at the end', key.slice(0, 20)],
    ['a middle run', key.slice(6, 6 + SECRET_WINDOW)],
    ['in upper case', key.toUpperCase()],
    ['in hex', hexOf(key)],
    ['\\u-escaped', uEscaped(key)],
    ['URL-encoded', encodeURIComponent(key)],
    ['in base64', b64Of(key)],
    ['in base64 after "Bearer "', b64Of(`Bearer ${key}`)],
    ['in base64 after two other bytes', b64Of(`:x${key}`)],
    ['in base64url', Buffer.from(`Bearer ${key}`).toString('base64url')],
  ])('%s is cut out', (_, echo) => {
    const out = redact(`denied: ${echo} (see docs)`)
    expect(out).toStartWith('denied: ')
    expect(out).toEndWith(' (see docs)')
    expect(out).toContain('[redacted]')
    // No run of the secret long enough to mean anything is left, in any of its forms.
    for (const form of [key, hexOf(key), b64Of(key).slice(4, -4)]) {
      for (let i = 0; i + SECRET_WINDOW <= form.length; i++) expect(out.toLowerCase()).not.toContain(form.slice(i, i + SECRET_WINDOW).toLowerCase())
    }
  })

  test("in base64, no partial group is left beside the cut to give the secret's first or last bytes back", () => {
    // A password in a base_url's userinfo, sent as Basic credentials and echoed: `…UFc=` was left, "PW".
    const secret = 'alice:s3cretPW'
    for (const [echo, prefix] of [
      [b64Of(secret), ''],
      [b64Of(`x${secret}`), ''],
      [b64Of(`:x${secret}`), ''],
      [b64Of(`${secret}!`), ''],
      [Buffer.from(`Bearer ${secret}`).toString('base64url'), ''],
    ] as const) {
      // (The base64 of "Bearer" before it is cut too, by the pass for credential shapes.)
      expect(redactor({ secret: [secret] })(`Basic ${prefix}${echo} denied`)).toMatch(/^Basic (\[redacted\])+ denied$/)
    }
  })

  test('a run shorter than the window, and text that only looks alike, are left', () => {
    expect(redact(`id ${key.slice(9, 9 + SECRET_WINDOW - 1)} ok`)).toBe(`id ${key.slice(9, 9 + SECRET_WINDOW - 1)} ok`)
    expect(redact('rate limited: try again in 2 s')).toBe('rate limited: try again in 2 s')
  })

  test('two echoes and the text between them: each cut, the rest kept', () => {
    expect(redact(`a ${key} b ${key.toUpperCase()} c`)).toBe('a [redacted] b [redacted] c')
    expect(redact(`${key}${key}`)).toBe('[redacted]')
  })

  test('a cut never splits a surrogate pair', () => {
    const out = redactor({ secret: [] }, new PromptText(['\u{1F600}the launch code is 0000 and nobody may know']))('x \u{1F600}the launch code is 0000 and y')
    expect(out.isWellFormed()).toBe(true)
    expect(out).toBe('x [redacted]y') // the run the text shares with the prompt: its space after "and" too
  })

  test('a cut next to a lone low surrogate keeps the character before it', () => {
    expect(redactor({ secret: [key] })(`ZZ\uDE00${key}`)).toBe('ZZ\uDE00[redacted]')
  })

  test('each set of secrets is its own: a redactor made again for a set finds it, and not another set', () => {
    // No credential shape (sk-…), so only the set can find them.
    const [one, other] = ['opensesame-0123456789-alpha', 'swordfish-9876543210-omega']
    for (let i = 0; i < 3; i++) {
      expect(redactor({ secret: [one] })(`a ${one} b ${other}`)).toBe(`a [redacted] b ${other}`)
      expect(redactor({ secret: [other] })(`a ${one} b ${other}`)).toBe(`a ${one} b [redacted]`)
      expect(redactor({ secret: [one, other] })(`a ${one} b ${other}`)).toBe('a [redacted] b [redacted]')
    }
  })

  test('short secrets are found whole only', () => {
    const short = redactor({ secret: ['hunter22'] })
    expect(short('pw hunter22 no')).toBe('pw [redacted] no')
    expect(short('pw hunter2 no')).toBe('pw hunter2 no')
  })
})

describe('a secret in a short field read on every call (a response id, a model)', () => {
  const redact = secretsRedactor([key])

  test.each([
    ['as is', key],
    ['a run of one window', key.slice(5, 5 + SECRET_WINDOW)],
    ['in upper case', key.toUpperCase()],
    ['in hex', hexOf(key)],
    ['URL-encoded', encodeURIComponent(key)],
    ['in base64 after "Bearer "', b64Of(`Bearer ${key}`)],
  ])('%s is cut out, wherever it starts', (_, echo) => {
    for (let pad = 0; pad < 8; pad++) {
      const out = redact(`${'x'.repeat(pad)}${echo}-1`)
      expect(out).toStartWith('x'.repeat(pad))
      expect(out).toEndWith('-1')
      expect(out).toContain('[redacted]')
      for (const form of [key, hexOf(key), b64Of(key).slice(4, -4)]) {
        for (let i = 0; i + SECRET_WINDOW <= form.length; i++) expect(out.toLowerCase()).not.toContain(form.slice(i, i + SECRET_WINDOW).toLowerCase())
      }
    }
  })

  test('text with no run of it is returned as it is, credential shapes included', () => {
    for (const text of ['chatcmpl-9f8e7d6c5b4a39281706f5e4d3c2b1a0', 'xai-grok-4-fast-reasoning', 'sk-someone-elses-0123456789', `${key.slice(0, 10)}…`]) expect(redact(text)).toBe(text)
  })
})

describe('the prompt', () => {
  const prompt = 'The launch code is ZEBRA-ALPHA-7731 and the vault PIN is 4242, keep it secret'
  const redact = redactor({ secret: [] }, new PromptText([prompt, 'tool: look up the customer by SSN 078-05-1120', 'line one\nline "two"', 'location']))
  const shortest = PROMPT_WINDOW + PROMPT_STEP - 1

  test.each([
    ['whole', prompt],
    ['its first 30 characters', `"${prompt.slice(0, 30)}..."`],
    ['a run from its middle', prompt.slice(10, 10 + shortest)],
    ['its end', prompt.slice(-shortest)],
    ['in upper case', prompt.toUpperCase()],
    ['a tool description', 'look up the customer by SSN 078-05-1120'],
    ['as a JSON string', JSON.stringify('line one\nline "two"')],
  ])('%s is cut out', (_, echo) => {
    const out = redact(`cannot process «${echo}»`)
    expect(out).toStartWith('cannot process «')
    expect(out).toEndWith('»')
    expect(out).toContain('[redacted]')
    expect(out).not.toContain('7731')
    expect(out).not.toContain('078-05')
    expect(out).not.toContain('line one')
  })

  test('a message sharing only a few words with the prompt is kept, and a short text is found only as sent', () => {
    expect(redact('the vault is closed')).toBe('the vault is closed')
    expect(redact("Invalid value for 'Location'")).toBe("Invalid value for 'Location'")
    expect(redact('no location given')).toBe('no [redacted] given')
  })

  test('a large prompt is indexed at every step only: any long enough run of it is still found', () => {
    const big = Array.from({ length: 20_000 }, (_, i) => `word${i}`).join(' ')
    const cut = redactor({ secret: [] }, new PromptText([big]))
    for (const at of [0, 1, 7, 50_001, big.length - shortest]) expect(cut(`«${big.slice(at, at + shortest)}»`)).toBe('«[redacted]»')
  })
})

describe('values that are no secret (a configured HTTP-Referer, X-Title)', () => {
  test('are found whole, not by runs that ordinary text shares with them', () => {
    const redact = redactor({ secret: [], plain: ['https://www.example.com/agent', 'Acme Research Agent'] })
    expect(redact('see https://www.anthropic.com/pricing')).toBe('see https://www.anthropic.com/pricing')
    expect(redact('Research Agent quota exceeded')).toBe('Research Agent quota exceeded')
    expect(redact('referer https://www.example.com/agent refused')).toBe('referer [redacted] refused')
  })
})

describe('credential shapes, whoever they belong to', () => {
  test('a bearer token, an sk- key and a key in a query string', () => {
    const out = redactor({ secret: [] })('Authorization: Bearer abcdefghijkl; sk-proj-abcdefghijklmnop; https://x.test/?key=AIzaSyA123')
    expect(out).toBe('Authorization: Bearer [redacted]; [redacted]; https://x.test/?key=[redacted]')
  })

  test('a key shown masked with its ends kept (as OpenAI says an incorrect key)', () => {
    const out = redactor({ secret: ['evilKEY0123456789abcdfXYZ'] })('Incorrect API key provided: evilKEY0**********fXYZ. You can find your API key at https://x.test/keys; also sk-pr************************3kFZ.')
    expect(out).toBe('Incorrect API key provided: [redacted]. You can find your API key at https://x.test/keys; also [redacted].')
    for (const masked of ['****abcd', 'sk-proj-****-****abcd', 'sk-pr••••3kFZ']) expect(redactor({ secret: [] })(`Your api key: ${masked} is invalid`)).toBe('Your api key: [redacted] is invalid')
    // Emphasis in markdown is no key.
    expect(redactor({ secret: [] })('a **bold** word and 2 * 3 = 6')).toBe('a **bold** word and 2 * 3 = 6')
  })
})

describe('an upstream text as a row stores it', () => {
  test('control characters become U+FFFD: read from an export with cat, they cannot clear the screen, set its title or write the clipboard', () => {
    const hostile = 'boom \x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]52;c;ZWNobw==\x07 \u009b31mFAKE: all good\x1b[0m\x00\x7f'
    expect(redactedClip(redactor({ secret: [] }), hostile)).toBe('boom \ufffd[2J\ufffd[H\ufffd]0;pwned\ufffd\ufffd]52;c;ZWNobw==\ufffd \ufffd31mFAKE: all good\ufffd[0m\ufffd\ufffd')
    // Whitespace is still collapsed to single spaces, and ordinary text left as it is.
    expect(redactedClip(redactor({ secret: [] }), 'line one\r\n\tline two – ünïcode ✓')).toBe('line one line two – ünïcode ✓')
  })
})
