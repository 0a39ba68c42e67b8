/**
 * One colour per provider, the same in every panel: configured providers
 * take the colours in config order, any other (an old row's provider) one
 * picked from its name among those no configured provider has (while there
 * are such), so it is never drawn in a configured provider's colour. Two
 * such others may still share one. The colours themselves live in style.css
 * (`.c0`…).
 */
export const COLOURS = 8

export function colourOf(configured: readonly string[], provider: string): string {
  const at = configured.indexOf(provider)
  if (at >= 0) return `c${at % COLOURS}`
  let hash = 0
  for (const ch of provider) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0
  const taken = Math.min(configured.length, COLOURS)
  if (taken === COLOURS) return `c${hash % COLOURS}`
  // The colours past the configured ones, in a fixed order.
  return `c${taken + (hash % (COLOURS - taken))}`
}
