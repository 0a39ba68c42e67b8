/** What the CSV export and the command line's tables make of hostile text from a provider or a row. */
import { describe, expect, test } from 'bun:test'
import { csvLine } from '../src/format/csv.ts'
import { formatTable } from '../src/format/table.ts'

describe('csvLine', () => {
  test('quotes what RFC 4180 says, and defuses text a spreadsheet would run as a formula; numbers stay numbers', () => {
    expect(csvLine(['plain', 'a,b', 'say "hi"', 'two\nlines', null])).toBe('plain,"a,b","say ""hi""","two\nlines",\r\n')
    expect(csvLine(['=HYPERLINK("http://x")', '+1+1', '-cmd', '@SUM(A1)', '\tx', -5, 3.5])).toBe(`"'=HYPERLINK(""http://x"")",'+1+1,'-cmd,'@SUM(A1),'\tx,-5,3.5\r\n`)
  })
})

describe('formatTable', () => {
  test('control characters (an ESC sequence in an error message) are shown escaped, never sent to the terminal', () => {
    const table = formatTable([{ id: 1, error_message: 'HTTP 500: \u001b[31mred\u001b[0m \u0007bell' }], ['id', 'error_message'])
    expect(table).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/)
    expect(table).toContain('HTTP 500: \\x1b[31mred\\x1b[0m \\x07bell')
  })

  test('a small fraction (a cost under a tenth of a cent) keeps its significant digits, never shown as 0', () => {
    const table = formatTable([{ cost_usd: 4.6e-7 }, { cost_usd: 0.0123456789 }, { cost_usd: 0.0004321987 }], ['cost_usd'])
    expect(table.split('\n').slice(2)).toEqual(['4.6e-7', '0.012346', '0.0004322'])
  })
})
