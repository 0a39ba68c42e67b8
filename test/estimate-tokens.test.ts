/**
 * The token estimate behind POST /v1/messages/count_tokens
 * (providers/estimate-tokens.ts): how each part of a request counts.
 */
import { describe, expect, test } from 'bun:test'
import { deflateSync } from 'node:zlib'
import { IMAGE_TOKENS, PDF_PAGE_TOKENS, estimateInputTokens, textTokens } from '../providers/estimate-tokens.ts'

const user = (content: unknown) => ({ role: 'user', content })
const estimate = (messages: unknown[], extra: Record<string, unknown> = {}) => estimateInputTokens({ model: 'm', messages, ...extra })

describe('the token estimate', () => {
  test('prose runs three to five characters a token; dense ids and other scripts count more per character', () => {
    const prose = 'The quick brown fox jumps over the lazy dog while the router writes its rows. '.repeat(50)
    expect(textTokens(prose) / prose.length).toBeGreaterThan(1 / 5)
    expect(textTokens(prose) / prose.length).toBeLessThan(1 / 3)
    const hash = 'aZ3kQ9x0Lm7Pq2Rt8Vw1Ys4Bn6Cd5Ef'.repeat(20)
    expect(textTokens(hash) / hash.length).toBeGreaterThan(1 / 2.5)
    expect(textTokens('人工智能是计算机科学的一个分支')).toBeGreaterThanOrEqual(15)
    expect(textTokens('')).toBe(0)
    expect(textTokens(42)).toBe(0)
  })

  test('more text counts more, the system prompt and tools included', () => {
    const base = estimate([user('hello')])
    expect(estimate([user('hello '.repeat(100))])).toBeGreaterThan(base + 60)
    expect(estimate([user('hello')], { system: 'You are terse. '.repeat(40) })).toBeGreaterThan(base + 80)
    const tool = { name: 'get_weather', description: 'Weather for a city', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }
    expect(estimate([user('hello')], { tools: [tool] })).toBeGreaterThan(base + 350)
  })

  test('an image counts as the most an image costs; a PDF by its pages; a text document by its text', () => {
    const image = { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }
    expect(estimate([user([image])]) - estimate([user([])])).toBeGreaterThanOrEqual(IMAGE_TOKENS)
    const pdf = (pages: number) => {
      const objects = Array.from({ length: pages }, (_, i) => `${i + 3} 0 obj << /Type /Page /Parent 2 0 R >> endobj`).join('\n')
      const data = Buffer.from(`%PDF-1.4\n2 0 obj << /Type /Pages /Count ${pages} >> endobj\n${objects}`).toString('base64')
      return { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data } }
    }
    expect(estimate([user([pdf(3)])]) - estimate([user([pdf(1)])])).toBe(2 * PDF_PAGE_TOKENS)
    // Page objects in a compressed object stream (PDF 1.5 on: pdfTeX) are found by inflating it.
    const packed = deflateSync(Buffer.from('<< /Type /Page /Parent 2 0 R >> '.repeat(7)))
    const objStm = Buffer.concat([Buffer.from('%PDF-1.5\n5 0 obj << /Type /ObjStm /N 7 /Filter /FlateDecode >>\nstream\r\n'), packed, Buffer.from('\nendstream\nendobj\n')])
    const streamed = { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: objStm.toString('base64') } }
    expect(estimate([user([streamed])]) - estimate([user([])])).toBe(7 * PDF_PAGE_TOKENS + 3)
    // Spelled with other white space; and written again by an incremental update (the page tree's /Count says 3).
    const doc = (text: string) => ({ type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: Buffer.from(text).toString('base64') } })
    expect(estimate([user([doc('%PDF-1.4 << /Type\n/Page >> << /Type  /Page >> << /Type/Page >>')])]) - estimate([user([])])).toBe(3 * PDF_PAGE_TOKENS + 3)
    const pages = '<< /Type /Pages /Count 3 >> << /Type /Page >> << /Type /Page >> << /Type /Page >>'
    expect(estimate([user([doc(`%PDF-1.4 ${pages} %%EOF ${pages.slice(pages.indexOf('>>') + 2)} %%EOF`)])]) - estimate([user([])])).toBe(3 * PDF_PAGE_TOKENS + 3)
    // Objects hidden another way (encrypted): then a page for every 60 KB.
    const hidden = { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: Buffer.alloc(300_000, 7).toString('base64') } }
    expect(estimate([user([hidden])]) - estimate([user([])])).toBe(5 * PDF_PAGE_TOKENS + 3)
    const text = { type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'word '.repeat(300) } }
    expect(estimate([user([text])]) - estimate([user([])])).toBeGreaterThan(250)
    expect(estimate([user([text])]) - estimate([user([])])).toBeLessThan(400)
  })

  test('tool calls and their results count; thinking counts only in the turn being answered', () => {
    const thinking = { type: 'thinking', thinking: 'Let me think about the weather. '.repeat(60), signature: 'sig' }
    const call = { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Paris' } }
    const result = { type: 'tool_result', tool_use_id: 'toolu_1', content: 'Sunny and 24 degrees. '.repeat(30) }
    const loop = [user('Weather in Paris?'), { role: 'assistant', content: [thinking, call] }, user([result])]
    const withoutThinking = [user('Weather in Paris?'), { role: 'assistant', content: [call] }, user([result])]
    // Still the same turn (the user only returned a tool result): its thinking counts.
    expect(estimate(loop) - estimate(withoutThinking)).toBeGreaterThan(300)
    expect(estimate(withoutThinking)).toBeGreaterThan(estimate([user('Weather in Paris?')]) + 100)
    // A new question: the earlier turn's thinking no longer counts.
    const later = [...loop, { role: 'assistant', content: 'Sunny.' }, user('And Rome?')]
    const laterWithout = [...withoutThinking, { role: 'assistant', content: 'Sunny.' }, user('And Rome?')]
    expect(estimate(later)).toBe(estimate(laterWithout) + 3) // the empty block's framing only
  })
})
