/**
 * Binding a server's address: never shared, and a failure says which
 * address and why. Bun turns SO_REUSEPORT on for `development: false`, so
 * a second router started on a port in use would bind it too, and the
 * kernel would split the calls between two processes (and two databases)
 * without a word; `reusePort: false` makes it fail instead.
 */
import { ListenError } from './errors.ts'

type ServeOptions = Parameters<typeof Bun.serve>[0]

export function listen(hostname: string, port: number, options: Omit<ServeOptions, 'hostname' | 'port' | 'reusePort'>): ReturnType<typeof Bun.serve> {
  try {
    return Bun.serve({ ...options, hostname, port, reusePort: false } as ServeOptions)
  } catch (error) {
    throw new ListenError(hostname, port, error)
  }
}
