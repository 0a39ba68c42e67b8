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
 * punctuation, Cyrillic, Greek and other alphabets about two characters to
 * a token; CJK a token or more each. Against OpenAI's cl100k it lands at
 * 0.9-1.3x on English, code, JSON and YAML, and about 1.1x on Chinese and
 * 1.0x on Russian; Claude's tokenizers count more than cl100k, so the
 * estimate leans neither way by much. Images count as the most an image
 * costs after Anthropic scales it (1,600), PDF pages as 2,500 each.
 * Thinking from earlier turns is left out, as Anthropic leaves it out.
 */
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
 * The pages of a base64 PDF: its page objects (`/Type /Page`, not `/Pages`), or the page tree's
 * `/Count`, whichever is more. A PDF that keeps its objects in compressed streams shows neither:
 * then a page for every 60 KB, which a text page is under and a scanned one over. Read with the
 * buffer's own search, not as text: a PDF may be tens of megabytes.
 */
function pdfPages(base64: string): number {
  const bytes = Buffer.from(base64, 'base64')
  let objects = 0
  for (const marker of PAGE_MARKERS) {
    for (let at = bytes.indexOf(marker); at !== -1; at = bytes.indexOf(marker, at + marker.length)) {
      if (!isLetter(bytes[at + marker.length])) objects++
    }
  }
  let counted = 0
  for (let at = bytes.indexOf(COUNT); at !== -1; at = bytes.indexOf(COUNT, at + COUNT.length)) {
    let n = 0
    for (let i = at + COUNT.length; i < at + COUNT.length + 6 && isDigit(bytes[i]); i++) n = n * 10 + bytes[i]! - 0x30
    counted = Math.max(counted, n)
  }
  const seen = Math.max(objects, counted)
  return Math.min(MAX_PDF_PAGES, Math.max(1, seen || Math.ceil(bytes.length / 60_000)))
}

const PAGE_MARKERS = [Buffer.from('/Type /Page'), Buffer.from('/Type/Page')]
const COUNT = Buffer.from('/Count ')
const isDigit = (byte: number | undefined) => byte !== undefined && byte >= 0x30 && byte <= 0x39
const isLetter = (byte: number | undefined) => byte !== undefined && ((byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a))

/** The estimated tokens of one string (see the top of this file). */
export function textTokens(value: unknown): number {
  if (typeof value !== 'string') return 0
  let tokens = 0
  let run = 0
  let changes = 0
  let previous = 0
  const endRun = () => {
    if (run > 0) tokens += Math.ceil(run / 4.5) + changes * 0.55
    run = 0
    changes = 0
    previous = 0
  }
  for (const char of value) {
    const code = char.codePointAt(0)!
    const kind = wordKind(code)
    if (kind !== 0) {
      // A capital followed by small letters is one word (Hello); any other change is a new piece.
      if (run > 0 && kind !== previous && !(previous === UPPER && kind === LOWER)) changes++
      run++
      previous = kind
      continue
    }
    endRun()
    if (code === 0x20) tokens += 0.05
    else if (code < 0x80) tokens += 0.6
    else if (code < 0x2e80) tokens += 0.5
    else tokens += 1.2
  }
  endRun()
  return tokens
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
