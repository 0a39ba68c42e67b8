/**
 * A real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core) for the dashboard's browser tests. Tests skip, saying
 * why, where it is not installed (`apt-get install -y chromium`).
 */
import { existsSync } from 'node:fs'
import { type BrowserContext, chromium } from 'playwright-core'
import { tempDir } from './temp.ts'

export const CHROMIUM = '/usr/bin/chromium'
export const chromiumMissing = !existsSync(CHROMIUM)
if (chromiumMissing) console.log(`browser tests skipped: ${CHROMIUM} is missing (apt-get install -y chromium)`)

/**
 * Launches Chromium with a fresh profile. The flags keep it from reaching
 * for the network on its own (updates, sync, QUIC), which fails on a closed
 * machine; tabs of the context do not share sessionStorage.
 */
export function launchChromium(): Promise<BrowserContext> {
  return chromium.launchPersistentContext(tempDir('witness-chromium-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
  })
}
