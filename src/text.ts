/**
 * Text as witness stores and hashes it. SQLite keeps text as UTF-8, where
 * a lone UTF-16 surrogate (half an emoji) cannot be written: it comes back
 * as U+FFFD. A row hashed into the chain with the lone half would then
 * never match itself again, and `witness verify` would report it changed.
 * So text is cut only between characters, and anything written is made
 * well-formed first, the same way SQLite would.
 */

/** Whitespace collapsed to single spaces, trimmed: how an error message is stored (providers/call.ts clip). */
export function collapseWhitespace(text: string): string {
  return text.replace(/\s+/g, ' ').trim()
}

/**
 * Control characters (C0 other than whitespace, DEL, C1) as U+FFFD: an upstream's text stored as it
 * came could drive the terminal of whoever reads an export or a CSV with `cat` (ESC sequences that
 * clear the screen, set its title, or write the clipboard with OSC 52).
 */
export function withoutControls(text: string): string {
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/g, '\ufffd')
}

/** At most `max` UTF-16 units of `text`, never ending inside a surrogate pair. */
export function cutText(text: string, max: number): string {
  if (text.length <= max) return text
  const last = text.charCodeAt(max - 1)
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max)
}

/** Whether every string inside `value` (plain data: objects, arrays, scalars) is well-formed. */
function allWellFormed(value: unknown): boolean {
  if (typeof value === 'string') return value.isWellFormed()
  if (value === null || typeof value !== 'object') return true
  if (Array.isArray(value)) return value.every(allWellFormed)
  for (const key in value) if (!key.isWellFormed() || !allWellFormed((value as Record<string, unknown>)[key])) return false
  return true
}

/** A copy of `value` (plain data: objects, arrays, scalars) with `change` applied to every string in it, keys included. */
export function mapStrings(value: unknown, change: (text: string) => string): unknown {
  if (typeof value === 'string') return change(value)
  if (value === null || typeof value !== 'object') return value
  if (Array.isArray(value)) return value.map((v) => mapStrings(v, change))
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [change(k), mapStrings(v, change)]))
}

/** `value` with every lone surrogate in its strings replaced by U+FFFD (as SQLite stores it); itself when there is none. */
export function wellFormed<T>(value: T): T {
  return allWellFormed(value) ? value : (mapStrings(value, (text) => text.toWellFormed()) as T)
}

/**
 * Names for a message, at most `max` of them: `a, b, c`, or `a, b, … t and 4980 more`; `(none)` when
 * there are none. A message listing every name, repeated for each of thousands of problems, grew
 * with the square of the config's size.
 */
export function listNames(names: readonly string[], max = 20): string {
  if (names.length === 0) return '(none)'
  if (names.length <= max) return names.join(', ')
  return `${names.slice(0, max).join(', ')} and ${names.length - max} more`
}
