/**
 * witness.yaml as a file: where it is (--config, WITNESS_CONFIG), its bytes
 * (what its hash is taken of), UTF-8 only, YAML with every duplicate key and
 * syntax error placed by line, then parseConfig (config.ts).
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { LineCounter, isMap, isNode, isScalar, isSeq, parseAllDocuments, parseDocument } from 'yaml'
import { ConfigError, type Issue } from './errors.ts'
import { type Config, parseConfig } from './config.ts'
import { sha256 } from './hash.ts'
import { pathText } from './validation.ts'

/** The path of the config file: --config, then WITNESS_CONFIG, then ./witness.yaml. */
export function configPathFrom(flag: string | undefined): string {
  return flag ?? process.env.WITNESS_CONFIG ?? 'witness.yaml'
}

/** Reads, parses and validates a YAML config file. */
export function loadConfig(path: string): Config {
  const absolute = resolve(path)
  return parseConfigText(readConfigBytes(absolute), absolute)
}

/** A config file's bytes (what its hash is taken of); a ConfigError when it cannot be read. */
export function readConfigBytes(path: string): Uint8Array {
  try {
    return readFileSync(path)
  } catch (error) {
    throw new ConfigError(path, [{ path: '', message: `cannot read file: ${(error as Error).message}` }])
  }
}

/** Parses config file bytes as if they were at `path` (used for reloads and validation). */
export function parseConfigText(bytes: Uint8Array, path: string): Config {
  const text = utf8Text(bytes, path)
  let doc: unknown
  try {
    doc = Bun.YAML.parse(text)
  } catch (error) {
    throw new ConfigError(path, yamlProblems(text, error as Error))
  }
  // The `yaml` package reads the file again, for what Bun's parser does not say: several
  // documents (`---`, which Bun reads as a list of them) and keys given twice (duplicateKeys).
  const lines = new LineCounter()
  const documents = parseAllDocuments(text, { uniqueKeys: false, lineCounter: lines })
  if (documents.length > 1) throw new ConfigError(path, [{ path: '', message: `holds ${documents.length} YAML documents (separated by ---); a config is one mapping (providers:, chains:, …)` }])
  if (Array.isArray(doc)) throw new ConfigError(path, [{ path: '', message: 'is a list; a config is one mapping (providers:, chains:, …)' }])
  // Nothing but blank lines and comments: YAML reads that as null, which valibot words as a wrong type.
  if (documents.length === 0 || documents[0]!.contents === null) {
    throw new ConfigError(path, [{ path: '', message: 'is empty (nothing but blank lines or comments): a config needs at least providers: and chains: (see the README\'s Config section)' }])
  }
  if (doc === null || typeof doc !== 'object') throw new ConfigError(path, [{ path: '', message: 'holds a single value, not a mapping; a config is one mapping (providers:, chains:, …)' }])
  const options = { baseDir: dirname(path), hash: sha256(bytes), path }
  const duplicates = documents[0] ? duplicateKeys(documents[0].contents, lines) : []
  if (!duplicates.length) return parseConfig(doc, options)
  // Listed with whatever else is wrong: the later key would silently have replaced the earlier.
  let others: Issue[] = []
  try {
    parseConfig(doc, options)
  } catch (error) {
    if (error instanceof ConfigError) others = error.issues
  }
  throw new ConfigError(path, [...duplicates, ...others])
}

/** The file's text; a ConfigError naming the line of the first byte that is not UTF-8 (a decoder would have put U+FFFD in its place unsaid). */
function utf8Text(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    // not UTF-8: where, below
  }
  const decodes = (end: number, whole: boolean) => {
    try {
      new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, end), { stream: !whole })
      return true
    } catch {
      return false
    }
  }
  // The shortest prefix that fails holds the bad byte last (a prefix cut inside a character does not fail).
  let good = 0
  let bad = decodes(bytes.length, false) ? bytes.length + 1 : bytes.length
  while (bad - good > 1) {
    const mid = (good + bad) >> 1
    if (decodes(mid, false)) good = mid
    else bad = mid
  }
  let at = Math.min(bad, bytes.length) - 1
  // A character's first byte whose sequence the failing byte broke is the one to name (not one whose
  // sequence ended before it).
  for (let i = at - 1; i >= Math.max(0, at - 3) && bytes[i]! >= 0x80; i--) {
    const lead = bytes[i]!
    if (lead < 0xc0) continue
    if (i + (lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2) > at) at = i
    break
  }
  const line = bytes.subarray(0, at).filter((b) => b === 0x0a).length + 1
  const where = bad > bytes.length ? `a character cut short at the end (line ${line})` : `byte 0x${bytes[at]!.toString(16).toUpperCase().padStart(2, '0')} at line ${line}`
  throw new ConfigError(path, [{ path: '', message: `is not UTF-8: ${where}; save the file as UTF-8` }])
}

/** Where a file Bun cannot parse is wrong: the `yaml` package's errors say the line and column (Bun's do not). */
function yamlProblems(text: string, error: Error): Issue[] {
  // Their first line names the place ("… at line 8, column 1:"); the lines after it draw it.
  const found = parseDocument(text).errors.map((e) => ({ path: '', message: `not valid YAML: ${e.message.split('\n')[0]!.replace(/:$/, '')}` }))
  return found.length ? found : [{ path: '', message: `not valid YAML: ${error.message}` }]
}

/**
 * Keys given twice in one mapping, each named by its path (`providers.kimi`) and the line of its
 * second appearance. YAML parsers keep the last one without a word, so a second `auth:` block (a
 * pasted `token new`) would drop every agent of the first, a second `policy:` its banned
 * providers. Bun's parser reads the values; the `yaml` package's syntax tree finds these.
 */
function duplicateKeys(contents: unknown, lines: LineCounter): Issue[] {
  const out: Issue[] = []
  const walk = (node: unknown, path: (string | number)[]) => {
    if (isMap(node)) {
      const seen = new Set<string>()
      for (const pair of node.items) {
        const key = isScalar(pair.key) ? String(pair.key.value) : String(pair.key)
        const at = isNode(pair.key) && pair.key.range ? lines.linePos(pair.key.range[0]).line : null
        if (seen.has(key)) {
          out.push({ path: pathText([...path, key]), message: `given twice in one mapping${at ? ` (again at line ${at})` : ''}: the later would silently replace the earlier; merge them` })
        }
        seen.add(key)
        walk(pair.value, [...path, key])
      }
    } else if (isSeq(node)) node.items.forEach((item, i) => walk(item, [...path, i]))
  }
  walk(contents, [])
  return out
}
