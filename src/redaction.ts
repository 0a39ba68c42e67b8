/**
 * Redaction: what must never be stored, logged or passed on (a provider's
 * API key, a token, the agent's prompt) cut out of a text that an upstream or
 * a command sent back.
 *
 * An echo rarely comes back whole and as sent, so a secret is looked for in
 * the forms an echo takes (as is, trimmed, URL-encoded, JSON-escaped or
 * `\u`-escaped, hex, base64 and base64url at any byte offset, so inside the
 * base64 of `Bearer <key>` too) and by any run of SECRET_WINDOW or more of
 * its characters (a key cut short at either end), letters in either case.
 * A value that is not secret but must not be echoed either (a configured
 * header such as `HTTP-Referer`) is looked for whole and as sent: a run of
 * it would also match ordinary text (`https://www.`).
 *
 * The prompt's texts are looked for whole (as sent, or JSON-escaped) and, in
 * either case, by any run of PROMPT_WINDOW + PROMPT_STEP - 1 or more
 * characters from anywhere in them (an upstream quoting the middle of a
 * message it refused). In a text of single spaces (a message as stored, its
 * whitespace collapsed) they are looked for collapsed the same way.
 *
 * Runs are found through an index of fixed-length pieces. A secret's forms
 * are small: every piece of them is indexed and the text is read at every
 * position. A prompt may be megabytes: the text (an error message, small) is
 * indexed instead, and the prompt read at every PROMPT_STEP-th position, so
 * the work is a fraction of one pass over the prompt. A piece found is grown
 * to the whole run the text shares with its form, and the run is replaced by
 * `[redacted]`. All of it happens on an error's path only.
 */

import { collapseWhitespace } from './text.ts'

export const SECRET_WINDOW = 12
export const PROMPT_WINDOW = 20
export const PROMPT_STEP = 8
/** Texts shorter than this are not looked for (too likely to occur by chance). */
const MIN_LENGTH = 8

const REDACTED = '[redacted]'

/** Replaces what it must not let through in a text. */
export type Redactor = (text: string) => string

/** A form of a secret, and the shortest run of it that counts as an echo. */
interface Form {
  text: string
  window: number
  /**
   * base64 of the secret, its partial groups left off: the characters next to it that encode a
   * secret byte together with another's (1-3 of them, and any `=` padding) are cut with it, or the
   * secret's first or last bytes could be read back from them (`…UFc=` of `…:s3cretPW`).
   */
  partialGroups?: { before: boolean }
}

type Run = [from: number, to: number]

interface PromptForms {
  whole: string[]
  folded: string[]
  escaped: string[]
}

/**
 * The prompt's texts, prepared once for all the errors of one request: each
 * whole, JSON-escaped where that differs, and letters folded to lower case.
 */
export class PromptText {
  private sent: PromptForms | null = null
  private flat: PromptForms | null = null

  constructor(private readonly texts: readonly string[]) {}

  /**
   * The texts to find whole (short ones), and the folded forms of the long ones: as sent, and
   * JSON-escaped where that differs (only a text with a backslash in it can hold one of those).
   * `flat`: the same forms with their whitespace collapsed, for a text that has none but single
   * spaces (a message as stored: providers/call.ts redactedClip). An echo of the prompt there is
   * found whatever was done to its whitespace, and every run of the forms as sent that such a text
   * can hold is in these too.
   */
  forms(flat = false): PromptForms {
    if (flat) return (this.flat ??= promptForms(this.texts, collapseWhitespace))
    return (this.sent ??= promptForms(this.texts, (text) => text))
  }
}

function promptForms(texts: readonly string[], shape: (text: string) => string): PromptForms {
  const whole: string[] = []
  const folded: string[] = []
  const escapedForms: string[] = []
  for (const text of texts) {
    const sent = shape(text)
    if (sent.length < MIN_LENGTH) continue
    const escaped = shape(JSON.stringify(text).slice(1, -1))
    for (const form of escaped === sent ? [sent] : [sent, escaped]) {
      if (form.length < PROMPT_WINDOW + PROMPT_STEP - 1) whole.push(form)
      else (form === sent ? folded : escapedForms).push(lowerAscii(form))
    }
  }
  // Longest first, so a text containing a shorter one is cut whole.
  whole.sort((a, b) => b.length - a.length)
  return { whole, folded, escaped: escapedForms }
}

/** Whether a text's whitespace is single spaces only, as collapseWhitespace leaves it. */
function isFlat(text: string): boolean {
  return !/[^\S ]| {2}/.test(text)
}

export interface Secrets {
  /** Keys and tokens: looked for in every form and by runs. */
  secret: readonly string[]
  /** Values looked for whole and as sent only (a configured header that is no credential). */
  plain?: readonly string[]
}

/**
 * A redactor for secrets and the prompt's texts, plus the credential shapes
 * any text may carry (`Bearer …`, `sk-…`, `?key=…`).
 */
export function redactor(secrets: Secrets, prompt?: PromptText): Redactor {
  const index = pieceIndexOf(secrets.secret)
  // As sent, and collapsed as a stored message is (redactedClip).
  const plain = [...new Set((secrets.plain ?? []).flatMap((v) => [v.trim(), collapseWhitespace(v)]))].filter((v) => v.length >= MIN_LENGTH)
  return (text) => {
    const runs = [...index.runsIn(text), ...wholeRuns(text, plain), ...(prompt ? promptRuns(text, prompt) : [])]
    return credentialShapes(runs.length ? cutRuns(text, runs) : text)
  }
}

/**
 * The index of a set of secrets, built once per set: a target's secrets are the same for every
 * error it answers (its key, its headers, its URL's query values), and indexing every piece of
 * every form of a long query string costs milliseconds (30 ms for 300 parameters), which an outage
 * would pay on every failed try. The sets are a config's, so few; the oldest is dropped past
 * INDEXES_KEPT (a config reloaded many times).
 */
function pieceIndexOf(secrets: readonly string[]): PieceIndex {
  const key = JSON.stringify(secrets)
  let index = indexes.get(key)
  if (index) {
    indexes.delete(key)
  } else {
    index = new PieceIndex(secrets.flatMap(secretForms))
    if (indexes.size >= INDEXES_KEPT) indexes.delete(indexes.keys().next().value!)
  }
  indexes.set(key, index)
  return index
}

const INDEXES_KEPT = 64
const indexes = new Map<string, PieceIndex>()

/**
 * A redactor for keys and tokens alone, in every form and by runs: no credential shapes and no
 * prompt, for short fields read on every call whose honest values may look like a credential (a
 * model `xai-grok-…`). A quick test (PieceIndex.mayHold) comes first: most of them hold nothing.
 */
export function secretsRedactor(secret: readonly string[]): Redactor {
  const index = pieceIndexOf(secret)
  return (text) => {
    if (!index.mayHold(text)) return text
    const runs = index.runsIn(text)
    return runs.length ? cutRuns(text, runs) : text
  }
}

/**
 * secretsRedactor, and whole occurrences of `plain` values too (configured headers not named like
 * credentials, which error text has cut out the same way): for the answer's id and model.
 */
export function valuesRedactor(secret: readonly string[], plain: readonly string[]): Redactor {
  const secrets = secretsRedactor(secret)
  const values = plain.map((v) => v.trim()).filter((v) => v.length >= MIN_LENGTH)
  if (values.length === 0) return secrets
  return (text) => {
    const runs = wholeRuns(text, values)
    return secrets(runs.length ? cutRuns(text, runs) : text)
  }
}

/** `text` with `secrets` (keys, tokens) and the credential shapes cut out: a redactor used once. */
export function redact(text: string, secrets: readonly string[] = []): string {
  return redactor({ secret: secrets })(text)
}

function secretForms(secret: string): Form[] {
  const bare = secret.trim()
  if (bare.length < MIN_LENGTH) return []
  const form = (text: string, perChar = 1): Form => ({ text, window: Math.ceil(SECRET_WINDOW * perChar) })
  const forms = [
    form(bare),
    form(encodeURIComponent(bare)),
    form(JSON.stringify(bare).slice(1, -1).replaceAll('/', '\\/')),
    form(Buffer.from(bare).toString('hex'), 2),
    form([...bare].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`).join(''), 6),
  ]
  // base64 (and base64url) after 0, 1 or 2 bytes of something else: the characters that depend on
  // the secret's bytes alone, which is what any base64 text containing the secret shows.
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.from(`${'\0'.repeat(offset)}${bare}`).toString('base64')
    const middle = encoded.slice(offset ? 4 : 0, -4)
    const partialGroups = { before: offset > 0 }
    forms.push({ ...form(middle, 4 / 3), partialGroups }, { ...form(middle.replaceAll('+', '-').replaceAll('/', '_'), 4 / 3), partialGroups })
  }
  return forms
}

const HASH_BASE = 31

/** A character code as lowerAscii leaves it. */
function folded(code: number): number {
  return code >= 65 && code <= 90 ? code + 32 : code
}

/** The hash mayHold rolls, of a whole (folded) piece. */
function hashOf(piece: string): number {
  let h = 0
  for (let j = 0; j < piece.length; j++) h = (Math.imul(h, HASH_BASE) + folded(piece.charCodeAt(j))) | 0
  return h
}

/** HASH_BASE to the power `n`, in 32 bits: what the character leaving a window of `n` weighs. */
function powerOf(n: number): number {
  let p = 1
  for (let i = 0; i < n; i++) p = Math.imul(p, HASH_BASE)
  return p
}

/** Letters in lower case, only ASCII ones: every other character keeps its place and length. */
function lowerAscii(text: string): string {
  return text.replace(/[A-Z]+/g, (run) => run.toLowerCase())
}

/** Where each of `texts` occurs in `text`, as sent. */
function wholeRuns(text: string, texts: readonly string[]): Run[] {
  const runs: Run[] = []
  for (const form of texts) {
    for (let at = text.indexOf(form); at !== -1; at = text.indexOf(form, at + form.length)) runs.push([at, at + form.length])
  }
  return runs
}

/** The run of `text` around [at, at + length) that it shares with `form` around [formAt, …), both folded. */
function grow(text: string, at: number, form: string, formAt: number, length: number): Run {
  let start = at
  for (let f = formAt; start > 0 && f > 0 && text[start - 1] === form[f - 1]; f--) start--
  let end = at + length
  for (let f = formAt + length; end < text.length && f < form.length && text[end] === form[f]; f++) end++
  return [start, end]
}

const BASE64_CHAR = /[a-z0-9+/=_-]/

/**
 * A run of a base64 form (`formAt`: where in the form the run begins) that reaches the form's end
 * (or its start, for one after other bytes) is widened over the characters there, up to a group's
 * worth, that encode the secret's last (or first) bytes with what is beside it.
 */
function widenToGroups(text: string, run: Run, form: string, formAt: number, before: boolean): void {
  if (formAt + (run[1] - run[0]) >= form.length) {
    for (let n = 0; n < 4 && run[1] < text.length && BASE64_CHAR.test(text[run[1]]!); n++) run[1]++
  }
  if (before && formAt <= 0) {
    for (let n = 0; n < 4 && run[0] > 0 && BASE64_CHAR.test(text[run[0] - 1]!); n++) run[0]--
  }
}

/** The forms of secrets, every piece of each indexed (they are short). */
class PieceIndex {
  /** Per window length: each piece, with a form it comes from and where. */
  private readonly byWindow = new Map<number, Map<string, [form: string, at: number, partialGroups: Form['partialGroups']]>>()
  /** Forms too short for their window: looked for whole. */
  private readonly whole: { text: string; partialGroups: Form['partialGroups'] }[] = []
  /** Per window length: the rolling hash of each piece, and what a character leaving the window weighs (mayHold). */
  private readonly hashes = new Map<number, { pieces: Set<number>; out: number }>()

  constructor(forms: readonly Form[]) {
    for (const form of forms) {
      const text = lowerAscii(form.text)
      if (text.length < MIN_LENGTH) continue
      if (text.length < form.window) {
        this.whole.push({ text, partialGroups: form.partialGroups })
        continue
      }
      let pieces = this.byWindow.get(form.window)
      if (!pieces) this.byWindow.set(form.window, (pieces = new Map()))
      let rolling = this.hashes.get(form.window)
      if (!rolling) this.hashes.set(form.window, (rolling = { pieces: new Set(), out: powerOf(form.window) }))
      for (let at = 0; at + form.window <= text.length; at++) {
        const piece = text.slice(at, at + form.window)
        if (!pieces.has(piece)) pieces.set(piece, [text, at, form.partialGroups])
        rolling.pieces.add(hashOf(piece))
      }
    }
  }

  /**
   * Whether `text` may hold a piece (a window's rolling hash matching one of a piece's; a collision
   * only costs a runsIn that finds nothing). A quick test before runsIn, for fields read on every
   * call: it makes no substring.
   */
  mayHold(text: string): boolean {
    if (this.byWindow.size === 0 && this.whole.length === 0) return false
    if (this.whole.length) {
      const lower = lowerAscii(text)
      if (this.whole.some((form) => lower.includes(form.text))) return true
    }
    for (const [window, { pieces: hashes, out }] of this.hashes) {
      if (text.length < window) continue
      // A rolling hash of each window of the text, folded as the pieces are: numbers, no substrings.
      let h = 0
      for (let j = 0; j < text.length; j++) {
        h = (Math.imul(h, HASH_BASE) + folded(text.charCodeAt(j))) | 0
        if (j >= window) h = (h - Math.imul(folded(text.charCodeAt(j - window)), out)) | 0
        if (j >= window - 1 && hashes.has(h)) return true
      }
    }
    return false
  }

  runsIn(text: string): Run[] {
    if (this.byWindow.size === 0 && this.whole.length === 0) return []
    const lower = lowerAscii(text)
    const runs: Run[] = []
    for (const { text: form, partialGroups } of this.whole) {
      for (const run of wholeRuns(lower, [form])) {
        if (partialGroups) widenToGroups(lower, run, form, 0, partialGroups.before)
        runs.push(run)
      }
    }
    for (const [window, pieces] of this.byWindow) {
      for (let j = 0; j + window <= lower.length; j++) {
        const found = pieces.get(lower.slice(j, j + window))
        if (!found) continue
        const run = grow(lower, j, found[0], found[1], window)
        if (found[2]) widenToGroups(lower, run, found[0], found[1] - (j - run[0]), found[2].before)
        runs.push(run)
        j = run[1] - 1
      }
    }
    return runs
  }
}

/** The runs of `text` that echo the prompt: its short texts whole, its long ones by runs of either case. */
function promptRuns(text: string, prompt: PromptText): Run[] {
  if (text.length < MIN_LENGTH) return []
  const forms = prompt.forms(isFlat(text))
  const runs = wholeRuns(text, forms.whole)
  const folded = text.includes('\\') ? [...forms.folded, ...forms.escaped] : forms.folded
  if (text.length < PROMPT_WINDOW || folded.length === 0) return runs
  // Every piece of the (small) text, then the prompt read at every PROMPT_STEP-th position: a run of
  // PROMPT_WINDOW + PROMPT_STEP - 1 characters holds a whole piece starting at one of those.
  const lower = lowerAscii(text)
  const pieces = new Map<string, number[]>()
  for (let j = 0; j + PROMPT_WINDOW <= lower.length; j++) {
    const piece = lower.slice(j, j + PROMPT_WINDOW)
    const seen = pieces.get(piece)
    if (seen) seen.push(j)
    else pieces.set(piece, [j])
  }
  // Each piece of the text is grown once (from the first place in the prompt it is found), and a
  // place already inside a run is not grown again: the work stays linear in the prompt and the text
  // however repetitive both are (whitespace, indentation, `====`).
  const covered = new Uint8Array(lower.length)
  for (const [from, to] of runs) covered.fill(1, from, to)
  for (const form of folded) {
    for (let at = 0; at + PROMPT_WINDOW <= form.length && pieces.size; at += PROMPT_STEP) {
      const piece = form.slice(at, at + PROMPT_WINDOW)
      const hits = pieces.get(piece)
      if (!hits) continue
      pieces.delete(piece)
      for (const j of hits) {
        if (covered[j] && covered[j + PROMPT_WINDOW - 1]) continue
        const run = grow(lower, j, form, at, PROMPT_WINDOW)
        covered.fill(1, run[0], run[1])
        runs.push(run)
      }
    }
  }
  return runs
}

/** `text` with each run (merged where they overlap or touch) replaced by REDACTED, never splitting a surrogate pair. */
function cutRuns(text: string, runs: Run[]): string {
  const widened = runs
    .map(([from, to]): Run => [
      from > 0 && isLowSurrogate(text.charCodeAt(from)) && isHighSurrogate(text.charCodeAt(from - 1)) ? from - 1 : from,
      to < text.length && isLowSurrogate(text.charCodeAt(to)) && isHighSurrogate(text.charCodeAt(to - 1)) ? to + 1 : to,
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

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}

/** Credential shapes, whoever's they are. */
function credentialShapes(text: string): string {
  return text
    .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, '$1 [redacted]')
    .replace(/\b(sk|pk|rk|tp|gsk|xai|key)[-_][A-Za-z0-9_-]{12,}/g, '[redacted]')
    .replace(/([?&](?:key|api_key|apikey|token|access_token)=)[^&\s"']+/gi, '$1[redacted]')
    // A key shown masked, its ends kept (OpenAI's "Incorrect API key provided: sk-proj-************3kFZ",
    // `****abcd`, `sk-pr••••3kFZ`): the ends are a run too short to be found as the key's, and still a part of it.
    .replace(/(?:[A-Za-z0-9_-]{2,})?[*•][*•-]{3,}[A-Za-z0-9_]{2,}/g, '[redacted]')
}
