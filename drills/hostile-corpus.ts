/**
 * The hostile input corpus: malformed requests (bad JSON, wrong types, huge
 * strings, deep nesting, invalid UTF-8, header injection, path traversal
 * in parameters, slow bodies) and the endpoints they are sent to. Every one
 * must be refused with a 4xx. Data-driven: an endpoint is added by listing
 * it with what it reads; an input says which endpoints it applies to.
 */
import { type RawRequest, bytesOf, rawRequest } from '../test/support/raw-http.ts'

/** What a JSON field holds, which decides the wrong values tried in it. */
export type FieldKind = 'agent' | 'chain' | 'messages' | 'boolean' | 'count' | 'int' | 'hash' | 'reason' | 'object' | 'system' | 'short'

export interface EndpointSpec {
  method: 'GET' | 'POST'
  /** The path; `:id` marks a path parameter. */
  path: string
  /** `json`: a JSON body; `query`: query parameters; `none`: nothing but the request itself. */
  takes: 'json' | 'query' | 'none'
  /** A valid body the field mutations start from (never sent as it is). */
  base?: Record<string, unknown>
  fields?: Record<string, FieldKind>
  /** How it reads X-Agent-Name: the header wins, or must agree with the body. Absent: not read. */
  agentHeader?: 'wins' | 'must-agree'
  /** Query strings (or path parameters for `:id`) that must be refused. */
  bad?: string[]
  /** Not every build has it yet: skipped when it answers 404 for an unknown route. */
  optional?: boolean
}

const MESSAGES = [{ role: 'user', content: 'hello' }]
const TRAVERSAL = '../../../../etc/passwd'

export const ENDPOINTS: EndpointSpec[] = [
  {
    method: 'POST',
    path: '/v1/infer',
    takes: 'json',
    base: { agent: 'hostile', chain: 'default', messages: MESSAGES },
    fields: { agent: 'agent', chain: 'chain', messages: 'messages', stream: 'boolean' },
    agentHeader: 'must-agree',
  },
  {
    method: 'POST',
    path: '/v1/chat/completions',
    takes: 'json',
    base: { model: 'default', messages: MESSAGES, user: 'hostile' },
    fields: { model: 'chain', messages: 'messages', stream: 'boolean', user: 'agent' },
    agentHeader: 'wins',
  },
  {
    method: 'POST',
    path: '/v1/messages',
    takes: 'json',
    base: { model: 'default', max_tokens: 16, messages: MESSAGES, metadata: { user_id: 'hostile' } },
    fields: { model: 'chain', max_tokens: 'count', messages: 'messages', stream: 'boolean', system: 'system', metadata: 'object' },
    agentHeader: 'wins',
  },
  {
    method: 'POST',
    path: '/v1/messages/count_tokens',
    takes: 'json',
    base: { model: 'default', messages: MESSAGES },
    fields: { model: 'chain', messages: 'messages', system: 'system' },
  },
  { method: 'GET', path: '/v1/models', takes: 'none' },
  { method: 'GET', path: '/v1/models/:id', takes: 'query', bad: ['..%2F..%2F..%2Fetc%2Fpasswd', '%00', '%ff%fe', 'x'.repeat(300), '..'] },
  { method: 'GET', path: '/heartbeat', takes: 'none' },
  {
    method: 'POST',
    path: '/heartbeat',
    takes: 'json',
    base: { agent: 'hostile', config_hash: 'abc123' },
    fields: { agent: 'agent', config_hash: 'hash' },
    agentHeader: 'must-agree',
  },
  { method: 'GET', path: '/deadman', takes: 'none' },
  {
    method: 'POST',
    path: '/deadman/rollback',
    takes: 'json',
    base: { agent: 'hostile', old_config_hash: 'aaa', new_config_hash: 'bbb', reason: 'drill' },
    fields: { agent: 'agent', old_config_hash: 'hash', new_config_hash: 'hash', reason: 'reason', exit_status: 'int', timed_out: 'boolean', command: 'short' },
  },
  { method: 'POST', path: '/admin/reload', takes: 'none' },
  // The operators' endpoints (being added): values no reading of their parameters can accept.
  {
    method: 'GET',
    path: '/requests',
    takes: 'query',
    optional: true,
    bad: ['limit=abc', 'limit=-1', 'limit=1e999', `limit=${TRAVERSAL}`, 'since=yesterday-ish', `since=${TRAVERSAL}`, 'until=99999999999999d', `format=${TRAVERSAL}`, 'format=xml', `cursor=${TRAVERSAL}`, 'cursor=%00%ff'],
  },
  { method: 'GET', path: '/requests/:id', takes: 'query', optional: true, bad: ['..%2F..%2F..%2Fetc%2Fpasswd', 'abc', '-1', '1e999', '%00', '%ff%fe'] },
  { method: 'GET', path: '/requests/did-call', takes: 'query', optional: true, bad: ['agent=a&provider=b&since=yesterday-ish', `agent=a&provider=b&since=${TRAVERSAL}`, 'agent=a&provider=b&since=-5m'] },
  { method: 'GET', path: '/stats', takes: 'query', optional: true, bad: ['since=yesterday-ish', `since=${TRAVERSAL}`, 'by=nothing', `by=${TRAVERSAL}`] },
  { method: 'GET', path: '/metrics', takes: 'none', optional: true },
  { method: 'GET', path: '/stats/series', takes: 'query', bad: ['since=yesterday-ish', `since=${TRAVERSAL}`, 'bucket=7m', 'bucket=-1', `bucket=${TRAVERSAL}`, 'until=%00', 'junk=1'] },
  { method: 'GET', path: '/stats/fallbacks', takes: 'query', bad: ['since=yesterday-ish', `until=${TRAVERSAL}`, 'since=%ff', 'junk=1'] },
  // The dashboard: its page and files take nothing; its fragments check their parameters like the read API.
  { method: 'GET', path: '/', takes: 'none' },
  { method: 'GET', path: '/dashboard/app.js', takes: 'none' },
  { method: 'GET', path: '/dashboard/style.css', takes: 'none' },
  { method: 'GET', path: '/dashboard/comparison', takes: 'query', bad: ['window=2h', `window=${TRAVERSAL}`, 'window=%00', 'junk=1'] },
  { method: 'GET', path: '/dashboard/series', takes: 'query', bad: ['window=2h', 'bucket=1m', `window=${TRAVERSAL}`] },
  { method: 'GET', path: '/dashboard/log', takes: 'query', bad: ['status=fine', `agent=${TRAVERSAL}`, 'agent=%ff%fe', 'format=csv', 'limit=5'] },
  { method: 'GET', path: '/dashboard/story/:id', takes: 'query', bad: ['..%2F..%2F..%2Fetc%2Fpasswd', 'abc', '01', '-1', '%00', '1e999'] },
  { method: 'GET', path: '/dashboard/did-call', takes: 'query', bad: ['agent=a', `agent=a&provider=b&since=${TRAVERSAL}`, 'agent=a&provider=%00', 'agent=a&provider=b&since=-5m'] },
  { method: 'GET', path: '/dashboard/deadman', takes: 'none' },
  { method: 'GET', path: '/dashboard/names', takes: 'none' },
]

export interface HostileInput {
  /** Short and unique within the corpus. */
  name: string
  category: 'bad JSON' | 'wrong type' | 'huge' | 'deep nesting' | 'invalid UTF-8' | 'header injection' | 'request line' | 'path traversal' | 'slow body' | 'method'
  /** Builds the request for an endpoint, or null when the input does not apply to it. */
  build(endpoint: EndpointSpec, limits: Limits): RawRequest | null
  /**
   * Refused by Bun's HTTP parser before witness sees it, in Bun's own way:
   * 505 for an HTTP version it does not speak, the connection closed for a
   * method it does not know. Counted apart; still nothing may be written.
   */
  parserRefuses?: true
}

export interface Limits {
  maxBodyBytes: number
}

const json = (value: unknown) => bytesOf(JSON.stringify(value))
const post = (ep: EndpointSpec, body: Uint8Array | null, headers: [string | Uint8Array, string | Uint8Array][] = [], options = {}) =>
  rawRequest(ep.method, ep.path, [['Content-Type', 'application/json'], ...headers], body, options)
/** A JSON-body input: the bytes of the body. */
const body = (name: string, category: HostileInput['category'], make: (ep: EndpointSpec, limits: Limits) => Uint8Array): HostileInput => ({
  name,
  category,
  build: (ep, limits) => (ep.takes === 'json' ? post(ep, make(ep, limits)) : null),
})
/** The endpoint's valid body with a raw JSON fragment spliced in as one more field. */
const withField = (ep: EndpointSpec, key: string, rawValue: string | Uint8Array) =>
  bytesOf(JSON.stringify(ep.base).slice(0, -1), `,"${key}":`, rawValue, '}')
const nested = (depth: number, open: string, close: string) => `${open.repeat(depth)}${close.repeat(depth)}`
/** A string value holding raw bytes that are not UTF-8. */
const badUtf8In = (ep: EndpointSpec, bytes: number[]) => bytesOf(JSON.stringify(ep.base).slice(0, -1), ',"note":"x', bytes, 'y"}')
/** Applies to every endpoint: the request itself is broken, whatever it carries. */
const any = (name: string, category: HostileInput['category'], make: (ep: EndpointSpec) => RawRequest): HostileInput => ({ name, category, build: make })
/** The headers a JSON endpoint's body needs to be read at all (open mode refuses any other type with 415). */
const jsonType = (ep: EndpointSpec): [string, string][] => (ep.takes === 'json' ? [['Content-Type', 'application/json']] : [])
const withHeader = (ep: EndpointSpec, name: string | Uint8Array, value: string | Uint8Array) =>
  rawRequest(ep.method, concrete(ep.path), [...jsonType(ep), [name, value]], ep.takes === 'json' ? json(ep.base) : null)

/** A request that is only a request line (and Host, Connection: close). */
const requestLine = (line: string): RawRequest => ({ head: bytesOf(`${line}\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`), pieces: [], pieceDelayMs: 0 })

/** The path with a harmless value for a path parameter. */
export function concrete(path: string): string {
  return path.replace(':id', '1')
}

const GENERIC: HostileInput[] = [
  // Bad JSON
  body('empty body', 'bad JSON', () => bytesOf('')),
  body('lone brace', 'bad JSON', () => bytesOf('{')),
  body('truncated document', 'bad JSON', (ep) => json(ep.base).subarray(0, 20)),
  body('value missing', 'bad JSON', () => bytesOf('{"messages":}')),
  body('trailing garbage', 'bad JSON', (ep) => bytesOf(JSON.stringify(ep.base), 'garbage')),
  body('two documents', 'bad JSON', (ep) => bytesOf(JSON.stringify(ep.base), JSON.stringify(ep.base))),
  body('single quotes', 'bad JSON', () => bytesOf("{'agent': 'a'}")),
  body('trailing comma', 'bad JSON', (ep) => bytesOf(JSON.stringify(ep.base).slice(0, -1), ',}')),
  body('comment', 'bad JSON', (ep) => bytesOf('/* hi */', JSON.stringify(ep.base))),
  body('unterminated string', 'bad JSON', () => bytesOf('{"agent":"abc')),
  body('raw control character in a string', 'bad JSON', (ep) => badUtf8In(ep, [0x01])),
  body('NaN', 'bad JSON', () => bytesOf('NaN')),
  body('null', 'bad JSON', () => bytesOf('null')),
  body('array', 'bad JSON', (ep) => bytesOf(`[${JSON.stringify(ep.base)}]`)),
  body('string', 'bad JSON', () => bytesOf('"hello"')),
  body('number', 'bad JSON', () => bytesOf('12345')),
  body('byte order mark', 'bad JSON', () => bytesOf([0xef, 0xbb, 0xbf], '{}')),
  body('number out of range', 'bad JSON', () => bytesOf('{"x": 1e999999}')),
  body('XML', 'bad JSON', () => bytesOf('<?xml version="1.0"?><agent>a</agent>')),
  body('form encoded', 'bad JSON', () => bytesOf('agent=a&messages=hi')),
  // Deep nesting
  body('arrays nested 100000 deep', 'deep nesting', () => bytesOf(nested(100_000, '[', ']'))),
  body('objects nested 50000 deep', 'deep nesting', () => bytesOf(nested(50_000, '{"a":', '}').replace(/\{"a":\}/, '{"a":1}'))),
  body('a field nested 1000 deep', 'deep nesting', (ep) => withField(ep, 'extra', nested(1_000, '[', ']'))),
  body('a field nested 100000 deep', 'deep nesting', (ep) => withField(ep, 'extra', nested(100_000, '[', ']'))),
  // Invalid UTF-8
  body('0xff byte in a string', 'invalid UTF-8', (ep) => badUtf8In(ep, [0xff])),
  body('overlong encoding of "/"', 'invalid UTF-8', (ep) => badUtf8In(ep, [0xc0, 0xaf])),
  body('truncated sequence', 'invalid UTF-8', (ep) => badUtf8In(ep, [0xe2, 0x82])),
  body('encoded surrogate', 'invalid UTF-8', (ep) => badUtf8In(ep, [0xed, 0xa0, 0x80])),
  body('Latin-1 byte', 'invalid UTF-8', (ep) => badUtf8In(ep, [0xe9])),
  body('invalid byte in a key', 'invalid UTF-8', (ep) => bytesOf(JSON.stringify(ep.base).slice(0, -1), ',"k', [0xfe], '":1}')),
  body('UTF-16 body', 'invalid UTF-8', (ep) => new Uint8Array(Buffer.from(JSON.stringify(ep.base), 'utf16le'))),
  // Huge
  body('body over max_body_mb', 'huge', (ep, limits) => withField(ep, 'pad', JSON.stringify('x'.repeat(limits.maxBodyBytes + 1)))),
  {
    name: 'body over max_body_mb without a length (chunked)',
    category: 'huge',
    build: (ep, limits) => (ep.takes === 'json' ? post(ep, chunked(withField(ep, 'pad', JSON.stringify('x'.repeat(limits.maxBodyBytes + 1)))), [['Transfer-Encoding', 'chunked']]) : null),
  },
  {
    name: 'Content-Length of 10 GB',
    category: 'huge',
    build: (ep) => (ep.takes === 'json' ? post(ep, json(ep.base).subarray(0, 10), [['Content-Length', '10737418240']]) : null),
  },
  body('a 900 kB string as the body', 'huge', (_ep, limits) => json('x'.repeat(Math.floor(limits.maxBodyBytes * 0.9)))),
  any('header of 200 kB', 'huge', (ep) => withHeader(ep, 'X-Padding', 'x'.repeat(200_000))),
  any('500 headers', 'huge', (ep) =>
    rawRequest(ep.method, concrete(ep.path), Array.from({ length: 500 }, (_, i): [string, string] => [`X-H${i}`, 'x']), ep.takes === 'json' ? json(ep.base) : null),
  ),
  // Header injection
  any('bare CR in a header value', 'header injection', (ep) => withHeader(ep, 'X-Agent-Name', 'hostile\rX-Witness-Log-Id: 1')),
  any('bare LF in a header value', 'header injection', (ep) => withHeader(ep, 'X-Agent-Name', 'hostile\nX-Witness-Log-Id: 1')),
  any('NUL in a header value', 'header injection', (ep) => withHeader(ep, 'X-Agent-Name', 'host\0ile')),
  any('folded header line', 'header injection', (ep) => withHeader(ep, 'X-Agent-Name', 'hostile\r\n X-Witness-Log-Id: 1')),
  any('space in a header name', 'header injection', (ep) => withHeader(ep, 'X Agent', 'hostile')),
  any('header line without a colon', 'header injection', (ep) => withHeader(ep, 'X-Agent-Name hostile', bytesOf(''))),
  any('invalid byte in a header name', 'header injection', (ep) => withHeader(ep, bytesOf('X-Ag', [0xff], 'ent'), 'hostile')),
  any('two different Content-Lengths', 'header injection', (ep) =>
    rawRequest(ep.method, concrete(ep.path), [['Content-Length', '2'], ['Content-Length', '3']], bytesOf('{}')),
  ),
  any('Content-Length and Transfer-Encoding together', 'header injection', (ep) =>
    rawRequest(ep.method, concrete(ep.path), [['Content-Length', '5'], ['Transfer-Encoding', 'chunked']], bytesOf('0\r\n\r\n')),
  ),
  any('Content-Length not a number', 'header injection', (ep) => rawRequest(ep.method, concrete(ep.path), [['Content-Length', 'abc']], bytesOf('{}'))),
  any('negative Content-Length', 'header injection', (ep) => rawRequest(ep.method, concrete(ep.path), [['Content-Length', '-1']], bytesOf('{}'))),
  any('two spaces in the request line', 'request line', (ep) => requestLine(`${ep.method}  ${concrete(ep.path)} HTTP/1.1`)),
  any('target without a leading slash', 'request line', (ep) => requestLine(`${ep.method} ${concrete(ep.path).slice(1)} HTTP/1.1`)),
  any('invalid character in the method', 'request line', (ep) => requestLine(`${ep.method.slice(0, 1)}(${ep.method.slice(2)} ${concrete(ep.path)} HTTP/1.1`)),
  { ...any('unknown HTTP version', 'request line', (ep) => requestLine(`${ep.method} ${concrete(ep.path)} HTTP/9.9`)), parserRefuses: true },
  // Path traversal in the path itself
  any('../ in the path', 'path traversal', (ep) => rawRequest(ep.method, `${concrete(ep.path)}/${TRAVERSAL}`, jsonType(ep), ep.takes === 'json' ? json(ep.base) : null)),
  any('encoded ../ in the path', 'path traversal', (ep) => rawRequest(ep.method, `${concrete(ep.path)}%2f..%2f..%2fetc%2fpasswd`, jsonType(ep), ep.takes === 'json' ? json(ep.base) : null)),
  any('invalid UTF-8 in the path', 'invalid UTF-8', (ep) => rawRequest(ep.method, bytesOf(concrete(ep.path), [0xff, 0xfe]), jsonType(ep), ep.takes === 'json' ? json(ep.base) : null)),
  // Wrong methods
  any('PUT', 'method', (ep) => rawRequest('PUT', concrete(ep.path), [], null)),
  any('DELETE', 'method', (ep) => rawRequest('DELETE', concrete(ep.path), [], null)),
  any('PATCH', 'method', (ep) => rawRequest('PATCH', concrete(ep.path), [], null)),
  any('TRACE', 'method', (ep) => rawRequest('TRACE', concrete(ep.path), [], null)),
  any('OPTIONS', 'method', (ep) => rawRequest('OPTIONS', concrete(ep.path), [], null)),
  { ...any('made-up method', 'method', (ep) => rawRequest('BREW', concrete(ep.path), [], null)), parserRefuses: true },
  // Slow bodies
  {
    name: 'slow body that ends malformed',
    category: 'slow body',
    build: (ep) => (ep.takes === 'json' ? post(ep, bytesOf(JSON.stringify(ep.base), ']'), [], { pieceBytes: 16, pieceDelayMs: 25 }) : null),
  },
  {
    name: 'body shorter than its Content-Length',
    category: 'slow body',
    build: (ep) => (ep.takes === 'json' ? post(ep, json(ep.base).subarray(0, 12), [['Content-Length', '4096']]) : null),
  },
  {
    name: 'chunked body that never ends',
    category: 'slow body',
    build: (ep) => (ep.takes === 'json' ? post(ep, bytesOf('c\r\n{"agent":"a"\r\n'), [['Transfer-Encoding', 'chunked']]) : null),
  },
  {
    name: 'a byte every 100 ms',
    category: 'slow body',
    build: (ep) => (ep.takes === 'json' ? post(ep, json(ep.base).subarray(0, 40), [['Content-Length', '4096']], { pieceBytes: 1, pieceDelayMs: 100 }) : null),
  },
]

/** A wrong value for a field; its category when it is more than a wrong type. */
interface WrongValue {
  name: string
  value: unknown
  category?: HostileInput['category']
}

/** Wrong values for each kind of field (each must be refused wherever that kind appears). */
const WRONG: Record<FieldKind, WrongValue[]> = {
  agent: [
    { name: 'a number', value: 5 },
    { name: 'null', value: null },
    { name: 'empty', value: '' },
    { name: 'a space', value: 'a b' },
    { name: 'a newline', value: 'a\nb', category: 'header injection' },
    { name: 'path traversal', value: TRAVERSAL, category: 'path traversal' },
    { name: '200 kB', value: 'x'.repeat(200_000), category: 'huge' },
    { name: 'NUL', value: 'a\u0000b' },
    { name: 'a lone surrogate', value: 'a\ud800b' },
    { name: 'an array', value: ['a'] },
  ],
  chain: [
    { name: 'a number', value: 5 },
    { name: 'null', value: null },
    { name: 'empty', value: '' },
    { name: 'an object', value: { name: 'default' } },
    { name: 'path traversal', value: TRAVERSAL, category: 'path traversal' },
    { name: '200 kB', value: 'x'.repeat(200_000), category: 'huge' },
    { name: 'NUL', value: 'default\u0000' },
  ],
  messages: [
    { name: 'a string', value: 'hello' },
    { name: 'null', value: null },
    { name: 'an object', value: { role: 'user', content: 'hi' } },
    { name: 'empty', value: [] },
    { name: 'numbers', value: [1, 2] },
    { name: 'an empty message', value: [{}] },
    { name: 'a numeric role', value: [{ role: 5, content: 'hi' }] },
    { name: 'an empty role', value: [{ role: '', content: 'hi' }] },
  ],
  boolean: [
    { name: 'a string', value: 'yes' },
    { name: 'a number', value: 1 },
    { name: 'an array', value: [true] },
  ],
  count: [
    { name: 'a string', value: '16' },
    { name: 'negative', value: -1 },
    { name: 'zero', value: 0 },
    { name: 'a fraction', value: 1.5 },
    { name: 'null', value: null },
  ],
  int: [
    { name: 'a string', value: '1' },
    { name: 'a fraction', value: 1.5 },
    { name: 'an object', value: {} },
  ],
  hash: [
    { name: 'a number', value: 5 },
    { name: 'empty', value: '' },
    { name: 'a space', value: 'a b' },
    { name: '200 characters', value: 'x'.repeat(200) },
    { name: 'NUL', value: 'a\u0000' },
  ],
  reason: [
    { name: 'empty', value: '' },
    { name: 'a number', value: 5 },
    { name: 'null', value: null },
    { name: '2000 characters', value: 'x'.repeat(2_000) },
  ],
  object: [
    { name: 'a string', value: 'x' },
    { name: 'an array', value: [] },
    { name: 'a number', value: 5 },
  ],
  system: [
    { name: 'a number', value: 5 },
    { name: 'an object', value: {} },
    { name: 'a block without type', value: [{ text: 'x' }] },
  ],
  short: [
    { name: 'a number', value: 5 },
    { name: '100 characters', value: 'x'.repeat(100) },
  ],
}

/** Values of X-Agent-Name that name no valid agent (for endpoints that read it). */
const BAD_AGENT_HEADERS: { name: string; value: string | Uint8Array; category?: HostileInput['category'] }[] = [
  { name: 'a space', value: 'a b' },
  { name: 'path traversal', value: TRAVERSAL, category: 'path traversal' },
  { name: '10 kB', value: 'x'.repeat(10_000), category: 'huge' },
  { name: 'a raw 0xe9 byte', value: bytesOf('ren', [0xe9]), category: 'invalid UTF-8' },
  { name: 'an encoded CRLF and header', value: 'a%0d%0aX-Witness-Log-Id:%201' },
  { name: 'a different agent than the body', value: 'someone-else' },
]

/** Every input: the generic ones, then wrong values for each field kind, then bad X-Agent-Name values. */
export function corpus(): HostileInput[] {
  const fields: HostileInput[] = Object.entries(WRONG).flatMap(([kind, values]) =>
    values.map(({ name, value, category }) => ({
      name: `${kind} field: ${name}`,
      category: category ?? 'wrong type',
      build: (ep: EndpointSpec) => {
        const keys = Object.entries(ep.fields ?? {}).filter(([, k]) => k === kind).map(([key]) => key)
        if (ep.takes !== 'json' || keys.length === 0) return null
        return post(ep, json({ ...ep.base, ...Object.fromEntries(keys.map((key) => [key, value])) }))
      },
    })),
  )
  const headers: HostileInput[] = BAD_AGENT_HEADERS.map(({ name, value, category }) => ({
    name: `X-Agent-Name: ${name}`,
    category: category ?? 'header injection',
    build: (ep: EndpointSpec) => {
      if (ep.takes !== 'json' || !ep.agentHeader) return null
      // Where the header wins, drop the body's own agent so the header is what is read.
      const base = ep.agentHeader === 'wins' ? withoutAgent(ep) : ep.base
      if (ep.agentHeader === 'wins' && name === 'a different agent than the body') return null
      return post({ ...ep, base }, json(base), [['X-Agent-Name', value]])
    },
  }))
  return [...GENERIC, ...fields, ...headers]
}

/** The requests for an endpoint that reads query or path parameters: one per bad value. */
export function parameterRequests(ep: EndpointSpec): { name: string; request: RawRequest }[] {
  if (ep.takes !== 'query') return []
  return (ep.bad ?? []).map((bad) => ({
    name: `parameter ${bad.length > 40 ? `${bad.slice(0, 40)}…` : bad}`,
    request: rawRequest(ep.method, ep.path.includes(':id') ? ep.path.replace(':id', bad) : `${ep.path}?${bad}`, [], null),
  }))
}

function withoutAgent(ep: EndpointSpec): Record<string, unknown> {
  const { user: _user, metadata: _metadata, ...rest } = ep.base ?? {}
  return rest
}

/** The bytes as one chunk of chunked encoding, properly terminated. */
function chunked(bytes: Uint8Array): Uint8Array {
  return bytesOf(`${bytes.length.toString(16)}\r\n`, bytes, '\r\n0\r\n\r\n')
}
