/** Plain-text tables for the terminal: left-aligned columns, NULL shown as "-". */

export function formatTable(rows: Record<string, unknown>[], columns: string[]): string {
  const cells = rows.map((row) => columns.map((c) => show(row[c])))
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)))
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n')
}

function show(value: unknown): string {
  if (value === null || value === undefined) return '-'
  if (typeof value === 'number' && !Number.isInteger(value)) return String(Number(value.toFixed(6)))
  // Control characters (an ESC sequence in a provider's error message) never reach the terminal raw.
  return String(value)
    .replace(/\s+/g, ' ')
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}
