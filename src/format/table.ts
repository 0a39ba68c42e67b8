/** Plain-text tables for the terminal: left-aligned columns, NULL shown as "-". */

export function formatTable(rows: Record<string, unknown>[], columns: string[]): string {
  const cells = rows.map((row) => columns.map((c) => show(row[c])))
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((r) => r[i]!.length)))
  const line = (values: string[]) => values.map((v, i) => v.padEnd(widths[i]!)).join('  ').trimEnd()
  return [line(columns), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n')
}

function show(value: unknown): string {
  if (value === null || value === undefined) return '-'
  // Six decimals, or four significant digits where that is more: a cost of $0.00000046 is not "0".
  if (typeof value === 'number' && !Number.isInteger(value)) return String(Math.abs(value) >= 1e-3 ? Number(value.toFixed(6)) : Number(value.toPrecision(4)))
  // Control characters (an ESC sequence in a provider's error message) never reach the terminal raw.
  return String(value)
    .replace(/\s+/g, ' ')
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
}
