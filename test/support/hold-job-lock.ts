/**
 * Run as a separate process: takes a job's lock file (as a running archive
 * or sync would) and holds it until stdin closes or the process is killed.
 * Prints "locked" once it holds it.
 */
import { takeJobLock } from '../../src/jobs/job-lock.ts'

const [job, path] = process.argv.slice(2)
if (!job || !path) throw new Error('usage: hold-job-lock.ts JOB LOCKPATH')
const lock = takeJobLock(job, path)
console.log('locked')
for await (const _ of Bun.stdin.stream()) {
  // wait for stdin to close
}
lock.release()
