/**
 * The process environment witness sets up for Bun (src/runtime-env.ts): the
 * loopback names kept off an HTTP proxy without hiding the operator's own
 * NO_PROXY, and the start-up check of what Bun reads only when it starts.
 */
import { describe, expect, test } from 'bun:test'
import { keepLoopbackOffProxy, runtimeEnvProblems } from '../src/runtime-env.ts'

describe('loopback off the proxy', () => {
  test("the operator's entries stay, in both spellings (Bun reads no_proxy first), and the loopback names join them", () => {
    const env: Record<string, string | undefined> = { HTTPS_PROXY: 'http://proxy:3128', NO_PROXY: 'internal.example, 10.0.0.5' }
    keepLoopbackOffProxy(env)
    expect(env.no_proxy).toBe('internal.example,10.0.0.5,127.0.0.1,localhost,::1')
    expect(env.NO_PROXY).toBe(env.no_proxy)
    const lower: Record<string, string | undefined> = { http_proxy: 'http://proxy:3128', no_proxy: 'localhost,.corp' }
    keepLoopbackOffProxy(lower)
    expect(lower.NO_PROXY).toBe('localhost,.corp,127.0.0.1,::1')
  })

  test('no proxy, or a NO_PROXY of * (nothing proxied): nothing changes', () => {
    const none: Record<string, string | undefined> = { NO_PROXY: 'a.example' }
    keepLoopbackOffProxy(none)
    expect(none).toEqual({ NO_PROXY: 'a.example' })
    const star: Record<string, string | undefined> = { HTTP_PROXY: 'http://proxy:3128', NO_PROXY: '*' }
    keepLoopbackOffProxy(star)
    expect(star).toEqual({ HTTP_PROXY: 'http://proxy:3128', NO_PROXY: '*' })
  })
})

describe('the start-up check', () => {
  test('BUN_CONFIG_MAX_HTTP_REQUESTS: 65535 passes; missing, lower, or a value Bun refuses (over 65535, not an integer) is reported', () => {
    expect(runtimeEnvProblems({ BUN_CONFIG_MAX_HTTP_REQUESTS: '65535' })).toEqual([])
    for (const value of [undefined, '1024', '65536', '70000', '1e5', 'lots']) {
      const [problem] = runtimeEnvProblems({ BUN_CONFIG_MAX_HTTP_REQUESTS: value })
      expect(problem).toContain(`BUN_CONFIG_MAX_HTTP_REQUESTS is ${value ?? 'not set'}: Bun will run at most ${value === '1024' ? 1024 : 256} upstream calls at once`)
    }
  })
})
