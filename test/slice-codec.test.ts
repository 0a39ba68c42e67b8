/**
 * The stored form of a slice's partial: what goes in comes back exactly
 * (names, null chains, whole and fractional numbers, latency histograms),
 * compactly, and a damaged blob is refused rather than misread.
 */
import { describe, expect, test } from 'bun:test'
import { decodeCombos, encodeCombos } from '../src/telemetry/slice-codec.ts'
import { type ComboPartial, comboKey } from '../src/telemetry/stats.ts'

function combo(fields: Partial<ComboPartial>): ComboPartial {
  return {
    agent: 'ezra', chain: 'default', provider: 'kimi', model: 'kimi-k2.5',
    success: 0, error: 0, timeout: 0, tokensIn: 0, tokensOut: 0, reportedCount: 0, reportedUsd: 0,
    unreportedCount: 0, unreportedTokensIn: 0, unreportedTokensOut: 0, halfUsage: 0, requests: 0, requestSuccesses: 0,
    latencies: new Int32Array(0),
    ...fields,
  }
}

const byKey = (combos: ComboPartial[]) => new Map(combos.map((c) => [comboKey(c.agent, c.chain, c.provider, c.model), c]))

describe('slice codec', () => {
  test('every sum and every latency comes back exactly', () => {
    const combos = [
      combo({
        success: 5, error: 2, timeout: 1, tokensIn: 9_007_199_254_740_000, tokensOut: 12, reportedCount: 2, reportedUsd: 0.1 + 0.2,
        unreportedCount: 3, unreportedTokensIn: 300, unreportedTokensOut: 40, halfUsage: 1, requests: 6, requestSuccesses: 5,
        latencies: Int32Array.from([3, 3, 3, 41, 41, 2_000_000_000]),
      }),
      // No chain (a row without meta), names outside ASCII, a cost below zero, fractional and negative latencies.
      combo({ agent: 'bezalël', chain: null, provider: 'openrouter', model: 'google/gemini-2.5-pro', reportedUsd: -1e-9, tokensIn: -5, latencies: Float64Array.from([-2, 0.5, 0.5, 7]) }),
      // The same names as the first with an empty chain: a different combo.
      combo({ chain: '', success: 1, latencies: Int32Array.from([0]) }),
    ]
    const decoded = decodeCombos(encodeCombos(combos))
    expect(decoded).toEqual(byKey(combos))
    expect(decoded.get(comboKey('bezalël', null, 'openrouter', 'google/gemini-2.5-pro'))!.chain).toBeNull()
    expect(decodeCombos(encodeCombos([]))).toEqual(new Map())
  })

  test('a latency costs a byte or two: a run of equal ones, a byte or two for the run', () => {
    const size = (latencies: Int32Array | Float64Array) => encodeCombos([combo({ latencies })]).length
    const base = size(new Int32Array(0))
    // Mostly distinct, steps under 64 ms: one byte each (beyond the three varints of the histogram's head).
    const distinct = Int32Array.from({ length: 5000 }, (_, i) => 400 + Math.floor(i * 1.7))
    expect(size(distinct) - base).toBeLessThanOrEqual(5000 + 4)
    // 5000 latencies of 50 values: two bytes a value.
    const repeated = Int32Array.from({ length: 5000 }, (_, i) => 100 * Math.floor(i / 100)).sort()
    expect(size(repeated) - base).toBeLessThanOrEqual(50 * 3 + 4)
    for (const latencies of [distinct, repeated, Int32Array.from([0, 2_147_483_647]), Float64Array.from([5, 3e9])]) {
      const back = decodeCombos(encodeCombos([combo({ latencies })])).values().next().value!.latencies
      expect(back).toEqual(latencies)
    }
  })

  test('latencies out of order are refused on the way in; a damaged blob on the way out', () => {
    expect(() => encodeCombos([combo({ latencies: Int32Array.from([5, 3]) })])).toThrow(/ascending/)
    const bytes = encodeCombos([combo({ success: 1, latencies: Int32Array.from([10]) })])
    expect(() => decodeCombos(bytes.subarray(0, bytes.length - 1))).toThrow(/truncated/)
    expect(() => decodeCombos(Uint8Array.from([...bytes, 0]))).toThrow(/trailing/)
    expect(() => decodeCombos(Uint8Array.from([9, ...bytes.subarray(1)]))).toThrow(/unknown format/)
    // The histogram's kind (four bytes from the end here: kind, latencies, distinct, one step).
    const badKind = Uint8Array.from(bytes)
    badKind[bytes.length - 4] = 3
    expect(() => decodeCombos(badKind)).toThrow(/unknown histogram kind 3/)
    const badCount = Uint8Array.from(bytes)
    badCount[bytes.length - 3] = 2
    expect(() => decodeCombos(badCount)).toThrow(/does not add up/)
  })
})
