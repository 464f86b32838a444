// setupJob or teardownJob of one job, as a process of its own on the host it runs on (gc.test.ts
// runs it on the admin host, bundled by packaging/bundle.mjs). argv: setup|teardown, the
// config, the job as JSON. Prints setupJob's result.
import { loadConfig } from '../../src/config/load.js';
import type { Job } from '../../src/job/job.js';
import { setupJob } from '../../src/lifecycle/setup.js';
import { teardownJob } from '../../src/lifecycle/teardown.js';
import { openLog } from '../../src/log.js';

const [what, file, json] = process.argv.slice(2);
const config = await loadConfig(file!);
const log = await openLog(config.logFile, 'silent');
const job = JSON.parse(json!) as Job;
if (what === 'setup') console.log(JSON.stringify(await setupJob(config, job, log)));
else await teardownJob(config, job, job.hosts.map((h) => h.name), log);
