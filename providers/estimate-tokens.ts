/**
 * An estimate of the input tokens of an Anthropic Messages request, for
 * POST /v1/messages/count_tokens. Claude Code calls it often (its context
 * meter, and when to compact); a chain's providers have no common way to
 * count, and asking one would be an upstream call, so witness counts
 * itself and sends nothing.
 *
 * The count follows the text's shape rather than any one tokenizer: word
 * characters about 4.5 to a token, and a token more where a run changes
 * between letters, capitals and digits (ids, hashes and base64 are dense);
 * numbers three digits to a token; punctuation about two characters to a
 * token, a long run of one (a rule, blank lines, indentation) 32; other
 * scripts by how tokenizers trained mostly on English split them (Cyrillic
 * two characters to a token, Indic one, CJK ideographs more than one, an
 * emoji two or three). Measured against OpenAI's cl100k (js-tiktoken, run
 * by hand: not a dependency), it lands at 0.74-1.35x on English, French, code, JSON,
 * CSV, hex, base64, UUIDs, Chinese, Japanese, Korean, Russian, Arabic, Hindi
 * and emoji; runs of one punctuation character count up to 3.5x (a few
 * tokens either way). Claude's tokenizers count more than cl100k, so the
 * estimate leans neither way by much. Images count as the most an image
 * costs after Anthropic scales it (1,600), PDF pages as 2,500 each.
 * Thinking from earlier turns is left out, as Anthropic leaves it out.
 */
import { inflateSync } from 'node:zlib'
import { isRecord } from './types.ts'

type Json = Record<string, unknown>

/** What one image costs at most: Anthropic scales larger ones down to about 1.15 megapixels (width x height / 750). */
export const IMAGE_TOKENS = 1600
/** A PDF page: its text and its image, both of which Anthropic gives the model. */
export const PDF_PAGE_TOKENS = 2500
/** Anthropic's system prompt for tool use, added once when a request offers tools. */
const TOOLS_PREAMBLE_TOKENS = 350
/** Per message and per block: the role and the framing around each part. */
const MESSAGE_TOKENS = 4
const BLOCK_TOKENS = 3
const TOOL_TOKENS = 10

/** The estimated input tokens of a Messages request (already validated: messages is an array). */
export function estimateInputTokens(body: Json): number {
  inflateBudget = MAX_INFLATED_BYTES // one budget for the whole request, however many PDFs it holds
  let tokens = contentTokens(body.system, true)
  const messages = Array.isArray(body.messages) ? body.messages.filter(isRecord) : []
  const current = currentTurnStart(messages)
  messages.forEach((message, i) => {
    tokens += MESSAGE_TOKENS + contentTokens(message.content, i >= current)
  })
  if (Array.isArray(body.tools) && body.tools.length > 0) {
    tokens += TOOLS_PREAMBLE_TOKENS
    for (const tool of body.tools) tokens += TOOL_TOKENS + textTokens(JSON.stringify(tool) ?? '')
  }
  return Math.max(1, Math.ceil(tokens))
}

/**
 * Where the turn being answered begins: after the last user message that
 * is not only tool results. Thinking before it is from finished turns.
 */
function currentTurnStart(messages: Json[]): number {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i]!
    if (m.role !== 'user') continue
    const blocks = Array.isArray(m.content) ? m.content.filter(isRecord) : []
    if (typeof m.content === 'string' || blocks.some((b) => b.type !== 'tool_result')) return i
  }
  return 0
}

/** A `content` (or `system`): a string, or blocks. */
function contentTokens(content: unknown, withThinking: boolean): number {
  if (typeof content === 'string') return textTokens(content)
  if (!Array.isArray(content)) return 0
  let tokens = 0
  for (const block of content) {
    if (isRecord(block)) tokens += BLOCK_TOKENS + blockTokens(block, withThinking)
  }
  return tokens
}

function blockTokens(block: Json, withThinking: boolean): number {
  switch (block.type) {
    case 'text':
      return textTokens(block.text)
    case 'image':
      return IMAGE_TOKENS
    case 'document':
      return documentTokens(block.source)
    case 'tool_use':
    case 'server_tool_use':
      return textTokens(block.name) + textTokens(JSON.stringify(block.input ?? {}) ?? '')
    case 'tool_result':
      return contentTokens(block.content, withThinking)
    case 'thinking':
      return withThinking ? textTokens(block.thinking) : 0
    case 'redacted_thinking':
      return withThinking ? textTokens(block.data) : 0
    default:
      // A block witness does not know (a search result, a container upload): its JSON, whatever it holds.
      return textTokens(JSON.stringify(block) ?? '')
  }
}

function documentTokens(source: unknown): number {
  if (!isRecord(source)) return PDF_PAGE_TOKENS
  if (source.type === 'text') return textTokens(source.data)
  if (source.type === 'content') return contentTokens(source.content, false)
  if (source.type === 'base64' && typeof source.data === 'string') return pdfPages(source.data) * PDF_PAGE_TOKENS
  return PDF_PAGE_TOKENS // a URL or a file id: its pages are not known here
}

/** The most pages Anthropic takes in one PDF. */
const MAX_PDF_PAGES = 100

/**
 * How much of the compressed object streams of a request's PDFs is inflated to find their pages:
 * one budget per request (estimateInputTokens sets it; the estimate is synchronous), so PDFs that
 * inflate to the budget each (zip bombs) cost no more than one.
 */
const MAX_INFLATED_BYTES = 16 * 1024 * 1024
let inflateBudget = MAX_INFLATED_BYTES

/**
 * The pages of a base64 PDF: its page objects (`/Type /Page`, not `/Pages`), in the file and in its
 * compressed object streams (PDF 1.5 on: pdfTeX, most producers), which are inflated to look. An
 * incremental update writes changed pages again, so when the page tree's `/Count` is seen too (its
 * root's is the largest) the smaller of the two is taken. Neither seen (encrypted): a page for
 * every 60 KB. Read with the buffer's own search, not as text: a PDF may be tens of MB.
 */
function pdfPages(base64: string): number {
  const bytes = Buffer.from(base64, 'base64')
  let objects = 0
  let counted = 0
  for (const part of [bytes, ...objectStreams(bytes)]) {
    objects += pageObjects(part)
    counted = Math.max(counted, largestCount(part))
  }
  const seen = objects && counted ? Math.min(objects, counted) : objects || counted
  return Math.min(MAX_PDF_PAGES, Math.max(1, seen || Math.ceil(bytes.length / 60_000)))
}

/** `/Type /Page` objects: `/Type`, any PDF white space, `/Page` not followed by a letter (`/Pages`). */
function pageObjects(bytes: Uint8Array): number {
  let n = 0
  eachAfter(bytes, TYPE, (buffer, i) => {
    if (buffer.compare(PAGE, 0, PAGE.length, i, i + PAGE.length) === 0 && !isLetter(buffer[i + PAGE.length])) n++
  })
  return n
}

function largestCount(bytes: Uint8Array): number {
  let largest = 0
  eachAfter(bytes, COUNT, (buffer, i) => {
    let n = 0
    for (const end = i + 6; i < end && isDigit(buffer[i]); i++) n = n * 10 + buffer[i]! - 0x30
    largest = Math.max(largest, n)
  })
  return largest
}

/** Calls `found` with the position after each `marker` in `bytes` and the PDF white space that follows it. */
function eachAfter(bytes: Uint8Array, marker: Buffer, found: (buffer: Buffer, i: number) => void): void {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  for (let at = buffer.indexOf(marker); at !== -1; at = buffer.indexOf(marker, at + marker.length)) {
    let i = at + marker.length
    while (isWhite(buffer[i])) i++
    found(buffer, i)
  }
}

/** The inflated contents of a PDF's object streams (`/Type /ObjStm`, Flate), as far as the request's budget goes. */
function objectStreams(pdf: Buffer): Uint8Array[] {
  const out: Uint8Array[] = []
  for (let at = pdf.indexOf(OBJSTM); at !== -1 && inflateBudget > 0; at = pdf.indexOf(OBJSTM, at + OBJSTM.length)) {
    const start = pdf.indexOf(STREAM, at)
    if (start === -1) break
    let from = start + STREAM.length
    if (pdf[from] === 0x0d) from++
    if (pdf[from] === 0x0a) from++
    const end = pdf.indexOf(ENDSTREAM, from)
    if (end === -1) break
    try {
      const inflated = inflateSync(pdf.subarray(from, end), { maxOutputLength: inflateBudget })
      inflateBudget -= inflated.byteLength
      out.push(inflated)
    } catch (error) {
      // Past the budget (a zip bomb): no more inflating. Not Flate, or cut short: its pages stay unseen.
      if ((error as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') inflateBudget = 0
    }
    at = end
  }
  return out
}

const OBJSTM = Buffer.from('/ObjStm')
const STREAM = Buffer.from('stream')
const ENDSTREAM = Buffer.from('endstream')
const TYPE = Buffer.from('/Type')
const PAGE = Buffer.from('/Page')
const COUNT = Buffer.from('/Count')
/** PDF white space: NUL, tab, line feed, form feed, carriage return, space. */
const isWhite = (byte: number | undefined) => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09 || byte === 0x0c || byte === 0x00
const isDigit = (byte: number | undefined) => byte !== undefined && byte >= 0x30 && byte <= 0x39
const isLetter = (byte: number | undefined) => byte !== undefined && ((byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a))

/** The estimated tokens of one string (see the top of this file). */
export function textTokens(value: unknown): number {
  if (typeof value !== 'string') return 0
  let tokens = 0
  let run = 0 // word characters in a row
  let digitsOnly = true
  let changes = 0
  let previous = 0 // the last character's code unit (0 at a run's start)
  let repeats = 0 // the same non-word character again (a rule of dashes, blank lines, indentation)
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i)
    const kind = wordKind(code)
    if (kind !== 0) {
      // A capital followed by small letters is one word (Hello); any other change is a new piece.
      if (run > 0 && kind !== wordKind(previous) && !(wordKind(previous) === UPPER && kind === LOWER)) changes++
      if (kind !== DIGIT) digitsOnly = false
      run++
      previous = code
      continue
    }
    if (run > 0) {
      tokens += (digitsOnly ? Math.ceil(run / 3) + 0.3 : Math.ceil(run / 4.5)) + changes * 0.7
      run = 0
      changes = 0
      digitsOnly = true
    }
    if (code === previous && code < 0x80) {
      repeats++
      if (repeats % 32 === 0) tokens += 1
      continue
    }
    repeats = 0
    previous = code
    if (code === 0x20) tokens += 0.05
    else if (code < 0x80) tokens += 0.45
    else if (code >= 0xd800 && code <= 0xdbff) {
      tokens += 2.5 // an emoji or another character past the first plane (its two halves are one)
      previous = -1 // two of them may share a first half
      i++
    } else tokens += perCharacter(code)
  }
  if (run > 0) tokens += (digitsOnly ? Math.ceil(run / 3) + 0.3 : Math.ceil(run / 4.5)) + changes * 0.7
  return tokens
}

/** Tokens per character of the other scripts, as tokenizers trained mostly on English split them. */
function perCharacter(code: number): number {
  if (code < 0x0600) return 0.5 // accented Latin, Greek, Cyrillic, Hebrew
  if (code < 0x0900) return 0.8 // Arabic and its neighbours
  if (code < 0x1100) return 1.0 // the Indic scripts, Thai
  if (code < 0x2e80) return 0.6 // punctuation, symbols, other alphabets
  if (code >= 0xac00 && code < 0xd7b0) return 0.8 // Hangul syllables
  if (code >= 0x3400 && code < 0xa000) return 1.1 // CJK ideographs
  return 0.65 // kana, full-width forms
}

const DIGIT = 1
const UPPER = 2
const LOWER = 3

function wordKind(code: number): number {
  if (code >= 0x30 && code <= 0x39) return DIGIT
  if (code >= 0x41 && code <= 0x5a) return UPPER
  if (code >= 0x61 && code <= 0x7a) return LOWER
  return 0
}
