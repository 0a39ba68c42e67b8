/** `witness fleet --repo <clone> --out fleet.db`: one database from every machine's export (see src/sync/fleet.ts). */
import { parseArgs } from 'node:util'
import { existsSync } from 'node:fs'
import { FleetError, buildFleet } from '../sync/fleet.ts'
import { isSparseCheckout } from '../sync/own-folder.ts'
import { type Command, UsageError, parsed } from './args.ts'

export const fleetCommand: Command = {
  summary: 'fleet --repo CLONE --out FILE                  build one database from every machine\'s export in a clone of the sync remote',
  async run(args) {
    const { values } = parsed(() => parseArgs({ args, options: { repo: { type: 'string' }, out: { type: 'string' } } }))
    if (!values.repo || !values.out) throw new UsageError('fleet needs --repo CLONE and --out FILE')
    if (!existsSync(values.repo)) throw new UsageError(`--repo ${values.repo} does not exist`)
    if (isSparseCheckout(values.repo)) {
      throw new UsageError(`${values.repo} is a sparse checkout, holding only some machines' folders (a sync.work_dir holds its own machine's alone): clone the sync remote and give fleet that clone (git clone -b <sync.branch> <sync.remote> DIR)`, { showUsage: false })
    }
    let report: ReturnType<typeof buildFleet>
    try {
      report = buildFleet(values.repo, values.out)
    } catch (error) {
      if (error instanceof FleetError) throw new UsageError(error.message)
      throw error
    }
    const machines = Object.entries(report.machines).map(([m, n]) => `${m}: ${n}`)
    if (machines.length === 0) {
      // Most likely a clone that checked nothing out (a bare remote whose HEAD names another branch).
      const kept = existsSync(values.out) ? `; ${values.out} is left as it was` : ''
      console.error(`witness fleet: ${values.repo} holds no machine folders; a clone of the sync remote that checked nothing out? clone it with git clone -b <sync.branch>${kept}`)
      return 1
    }
    console.log(`witness fleet: ${report.rows} rows from ${machines.length} machine(s) (${machines.join(', ')}) -> ${values.out}`)
    if (report.skipped.length) console.error(`witness fleet: skipped ${report.skipped.length} line(s) that are not export lines: ${report.skipped.slice(0, 5).join(', ')}${report.skipped.length > 5 ? ', …' : ''}`)
    if (report.conflicting.length) {
      console.error(`witness fleet: left out ${report.conflicting.length} row(s) whose id is on two lines that differ (check them with verify --repo): ${report.conflicting.slice(0, 5).join(', ')}${report.conflicting.length > 5 ? ', …' : ''}`)
    }
    return 0
  },
}
