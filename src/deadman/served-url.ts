/**
 * `<file>.serve.url`: where a running server listens, written beside the
 * database it holds and (the router's) beside its config, so a watchdog
 * probes the server itself, not a `listen` changed in the file since (that
 * waits for a restart). Removed at a clean stop, unless another server on
 * the same config has written its own since.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs'

export function servedUrlPath(beside: string): string {
  return `${beside}.serve.url`
}

/** The URL written beside `beside`, or null when none is (no server wrote one, or it stopped). */
export function readServedUrl(beside: string): string | null {
  try {
    return readFileSync(servedUrlPath(beside), 'utf8').trim() || null
  } catch {
    return null
  }
}

/** Writes `url` beside `beside`. */
export function writeServedUrl(beside: string, url: string): void {
  writeFileSync(servedUrlPath(beside), `${url}\n`)
}

/** Removes the URL beside `beside` if it still is `url` (another server may have written its own since). */
export function removeServedUrl(beside: string, url: string): void {
  if (readServedUrl(beside) === url) rmSync(servedUrlPath(beside), { force: true })
}
