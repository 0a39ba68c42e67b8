/**
 * The limit of this stack: a Hono-on-Bun proxy with no logging that forwards
 * the chat-completions body to the upstream and returns its answer.
 * `bun bench/bare-proxy.ts PORT UPSTREAM_URL`
 */
import { Hono } from 'hono'

const [portArg, upstream] = process.argv.slice(2)
if (!portArg || !upstream) throw new Error('usage: bare-proxy.ts PORT UPSTREAM_URL')
const app = new Hono()
app.post('/v1/chat/completions', async (c) => {
  const body = await c.req.json()
  const res = await fetch(`${upstream}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return c.json(await res.json(), res.status as 200)
})
const server = Bun.serve({ port: Number(portArg), hostname: '127.0.0.1', fetch: app.fetch })
console.log(`bare proxy on http://127.0.0.1:${server.port}`)
