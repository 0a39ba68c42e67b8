/**
 * CSV (RFC 4180): fields with a comma, quote or line break are quoted; NULL is an empty field. A
 * text that a spreadsheet would run as a formula (it starts with =, +, -, @, a tab or a carriage
 * return: an upstream's error message, a rollback's endpoint) gets a leading `'` (OWASP's advice);
 * numbers are written as they are.
 */

export function csvLine(values: readonly unknown[]): string {
  return `${values.map(csvField).join(',')}\r\n`
}

function csvField(value: unknown): string {
  if (value === null || value === undefined) return ''
  const text = typeof value === 'string' && /^[=+\-@\t\r]/.test(value) ? `'${value}` : String(value)
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}
