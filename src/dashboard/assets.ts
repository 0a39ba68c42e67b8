/**
 * The dashboard's two static files, read from beside this module: the
 * script (client.ts with its types stripped by Bun's transpiler, once, on
 * first request; nothing is fetched from anywhere) and the stylesheet.
 */
import type { Context } from 'hono'

const SCRIPT = new URL('./client.ts', import.meta.url)
const STYLE = new URL('./style.css', import.meta.url)

let script: Promise<string> | null = null
let style: Promise<string> | null = null

function transpile(source: string): string {
  return new Bun.Transpiler({ loader: 'ts', target: 'browser' }).transformSync(source)
}

const headers = (type: string) => ({ 'content-type': type, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' })

export function scriptRoute() {
  return async (c: Context) => {
    script ??= Bun.file(SCRIPT).text().then(transpile)
    return c.body(await script, 200, headers('text/javascript; charset=utf-8'))
  }
}

export function styleRoute() {
  return async (c: Context) => {
    style ??= Bun.file(STYLE).text()
    return c.body(await style, 200, headers('text/css; charset=utf-8'))
  }
}
