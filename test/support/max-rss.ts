/**
 * Preloaded into a witness subprocess (`bun --preload test/support/max-rss.ts src/cli.ts …`): as it
 * exits, it writes its peak resident memory to stderr as `max-rss-kb N`. On Linux that is the
 * kernel's VmHWM for this program: getrusage's maxrss would count the parent's peak too, which a
 * spawned child carries across exec.
 */
import { readFileSync } from 'node:fs'

function peakKb(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))
    if (hwm) return Number(hwm[1])
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS
}

process.on('exit', () => console.error(`max-rss-kb ${peakKb()}`))
