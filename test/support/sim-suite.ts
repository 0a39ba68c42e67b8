/**
 * The set-up most behaviour tests share: one simulator per file (reset
 * before each test), and witnesses started through `start` are stopped
 * when the file is done.
 */
import { afterAll, beforeAll, beforeEach } from 'bun:test'
import { type Simulator, startSimulator } from '../../src/sim/server.ts'
import { type StartOptions, startWitness, type TestWitness } from './witness.ts'

export interface SimSuite {
  readonly sim: Simulator
  start(config: Record<string, unknown>, options?: StartOptions): Promise<TestWitness>
}

export function useSimulator(): SimSuite {
  let sim: Simulator | undefined
  const running: TestWitness[] = []
  beforeAll(() => {
    sim = startSimulator()
  })
  beforeEach(() => sim!.reset())
  afterAll(async () => {
    for (const w of running) await w.stop(0)
    await sim!.stop()
  })
  return {
    get sim() {
      return sim!
    },
    async start(config, options) {
      const w = await startWitness(config, options)
      running.push(w)
      return w
    },
  }
}
