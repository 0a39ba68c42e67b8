/**
 * Redaction: what must never be stored, logged or passed on (a provider's
 * API key, a token, the agent's prompt) cut out of a text that an upstream or
 * a command sent back.
 *
 * An echo rarely comes back whole and as sent, so a secret is looked for in
 * the forms an echo takes (as is, trimmed, URL-encoded, JSON-escaped or
 * `\u`-escaped, hex, base64 and base64url at any byte offset, so inside the
 * base64 of `Bearer <key>` too) and by any run of SECRET_WINDOW or more of
 * its characters (a key cut short at either end). The prompt's texts are
 * looked for whole, and by any run of PROMPT_WINDOW + PROMPT_STEP - 1 or
 * more characters from anywhere in them (an upstream quoting the middle of a
 * message it refused). Letters match in either case.
 *
 * The runs are found through an index of fixed-length pieces of each form:
 * every piece of a secret, and for the prompt (which may be megabytes) only
 * the pieces at every PROMPT_STEP-th position, so the index stays a fraction
 * of the prompt's size. A piece found in the text is grown to the whole run
 * it belongs to, and the run is replaced by `[redacted]`. The index is built
 * only when a text must be redacted: on an error's path, never on a success's.
 */

export const SECRET_WINDOW = 12
export const PROMPT_WINDOW = 20
export const PROMPT_STEP = 8
/** Texts shorter than this are not looked for (too likely to occur by chance). */
const MIN_LENGTH = 8

const REDACTED = '[redacted]'

/** Replaces what it must not let through in a text. */
export type Redactor = (text: string) => string

/** A form of a secret or of a prompt text, and the shortest run of it that counts as an echo. */
interface Form {
  text: string
  window: number
  step: number
}

/**
 * A redactor for `secrets` (values, as configured: keys, tokens, header
 * values) and the prompt's texts, plus the credential shapes any text may
 * carry (`Bearer …`, `sk-…`, `?key=…`).
 */
export function redactor(secrets: readonly string[], prompt: readonly string[] = []): Redactor {
  const forms = [...secrets.flatMap(secretForms), ...prompt.flatMap(promptForms)]
  const index = new PieceIndex(forms)
  return (text) => credentialShapes(index.redact(text))
}

/** `text` with `secrets` and the credential shapes cut out: a redactor used once. */
export function redact(text: string, secrets: readonly string[] = []): string {
  return redactor(secrets)(text)
}

function secretForms(secret: string): Form[] {
  const bare = secret.trim()
  if (bare.length < MIN_LENGTH) return []
  const plain = (text: string, perChar = 1): Form => ({ text, window: SECRET_WINDOW * perChar, step: 1 })
  const forms = [
    plain(bare),
    plain(encodeURIComponent(bare)),
    plain(JSON.stringify(bare).slice(1, -1).replaceAll('/', '\\/')),
    plain(Buffer.from(bare).toString('hex'), 2),
    plain([...bare].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''), 6),
  ]
  // base64 (and base64url) after 0, 1 or 2 bytes of something else: the characters that depend on
  // the secret's bytes alone, which is what any base64 text containing the secret shows.
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.from(`${'\0'.repeat(offset)}${bare}`).toString('base64')
    const middle = encoded.slice(offset ? 4 : 0, -4)
    forms.push(plain(middle, 4 / 3), plain(middle.replaceAll('+', '-').replaceAll('/', '_'), 4 / 3))
  }
  return forms.map((f) => ({ ...f, window: Math.ceil(f.window) }))
}

function promptForms(text: string): Form[] {
  if (text.length < MIN_LENGTH) return []
  const escaped = JSON.stringify(text).slice(1, -1)
  const texts = escaped === text ? [text] : [text, escaped]
  return texts.map((t) => ({ text: t, window: PROMPT_WINDOW, step: PROMPT_STEP }))
}

/** Letters in lower case, only ASCII ones: every other character keeps its place and length. */
function lowerAscii(text: string): string {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase())
}

class PieceIndex {
  /** Per window length: each indexed piece, with a form it comes from and where. */
  private readonly byWindow = new Map<number, Map<string, [form: string, at: number]>>()
  /** Forms too short for their window: looked for whole. */
  private readonly whole: string[] = []

  constructor(forms: readonly Form[]) {
    for (const form of forms) {
      const text = lowerAscii(form.text)
      if (text.length < MIN_LENGTH) continue
      if (text.length < form.window + form.step - 1) {
        this.whole.push(text)
        continue
      }
      let pieces = this.byWindow.get(form.window)
      if (!pieces) this.byWindow.set(form.window, (pieces = new Map()))
      for (let at = 0; at + form.window <= text.length; at += form.step) {
        const piece = text.slice(at, at + form.window)
        if (!pieces.has(piece)) pieces.set(piece, [text, at])
      }
    }
    // Longest first, so a text containing a shorter one is cut whole.
    this.whole.sort((a, b) => b.length - a.length)
  }

  redact(text: string): string {
    if (this.byWindow.size === 0 && this.whole.length === 0) return text
    const lower = lowerAscii(text)
    const runs: [number, number][] = []
    for (const form of this.whole) {
      for (let at = lower.indexOf(form); at !== -1; at = lower.indexOf(form, at + form.length)) runs.push([at, at + form.length])
    }
    for (const [window, pieces] of this.byWindow) {
      for (let j = 0; j + window <= lower.length; j++) {
        const found = pieces.get(lower.slice(j, j + window))
        if (!found) continue
        const [form, at] = found
        // Grow the match to the whole run the text shares with the form.
        let start = j
        for (let f = at; start > 0 && f > 0 && lower[start - 1] === form[f - 1]; f--) start--
        let end = j + window
        for (let f = at + window; end < lower.length && f < form.length && lower[end] === form[f]; f++) end++
        runs.push([start, end])
        j = end - 1
      }
    }
    return runs.length ? cutRuns(text, runs) : text
  }
}

/** `text` with each run (merged where they overlap or touch) replaced by REDACTED, never splitting a surrogate pair. */
function cutRuns(text: string, runs: [number, number][]): string {
  const widened = runs
    .map(([from, to]): [number, number] => [
      from > 0 && isLowSurrogate(text.charCodeAt(from)) ? from - 1 : from,
      to < text.length && isLowSurrogate(text.charCodeAt(to)) ? to + 1 : to,
    ])
    .sort((a, b) => a[0] - b[0])
  let out = ''
  let done = 0
  let cut = false
  for (const [from, to] of widened) {
    if (cut && from <= done) {
      done = Math.max(done, to)
      continue
    }
    out += text.slice(done, from) + REDACTED
    done = to
    cut = true
  }
  return out + text.slice(done)
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff
}

/** Credential shapes, whoever's they are. */
function credentialShapes(text: string): string {
  return text
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]')
    .replace(/\b(sk|pk|rk|tp|gsk|xai|key)[-_][A-Za-z0-9_-]{12,}/g, '[redacted]')
    .replace(/([?&](?:key|api_key|apikey|token|access_token)=)[^&\s"']+/gi, '$1[redacted]')
}
