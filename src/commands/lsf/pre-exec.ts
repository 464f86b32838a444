import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolveImage } from '../../config/image.js';
import type { Config } from '../../config/types.js';
import { lookupGroupNames } from '../../exec/accounts.js';
import { quote } from '../../quote.js';
import type { Job } from '../../job/job.js';
import { planJob } from '../../plan/job.js';
import { jobLog, openLog } from '../../log.js';
import { claimedPort } from '../../ports/allocator.js';
import { jobKey, jobPaths } from '../../plan/job-files.js';
import { nodeSteps } from '../../plan/node.js';
import { lsfContext } from './context.js';

// LSF's queue-level PRE_EXEC, as root on the first execution host: the setup phase. Exit 0
// only when every node's container answers; 99 for what will never work; 1 (requeue) for
// what may heal.
export async function preExec(cli: string | undefined, dryRun: boolean, env: NodeJS.ProcessEnv): Promise<void> {
  // Loaded only for a real run (setup pulls in ssh2, which --dry-run never uses), and while
  // the owner lookups run: module loading is on every job's start.
  const setup = dryRun ? undefined : import('../../lifecycle/setup.js');
  setup?.catch(() => {});
  const { config, job } = await lsfContext(cli, env, true);
  if (!setup) {
    await printPlan(config, job);
    return;
  }
  const { setupJob } = await setup;
  const log = jobLog(await openLog(config.logFile, config.logLevel), job, hostname());
  const { port } = await setupJob(config, job, log);
  process.stderr.write(`jobbox: job ${job.id}: started on ${job.hosts.length} nodes, port ${port}\n`);
}

// Runs nothing: keys, the image's accounts and the port are shown as placeholders, and devices
// are the ones this host has (other nodes are probed at run time).
async function printPlan(config: Config, job: Job): Promise<void> {
  const image = resolveImage(config, job.queue, job.image);
  const paths = jobPaths(config.stateDir, job);
  const port = (await claimedPort(config.portDir, jobKey(job)).catch(() => undefined)) ?? config.portRange.first;
  const devices = await readdir(config.deviceDir).catch(() => [] as string[]);
  const placeholder = 'ssh-ed25519 <generated-at-run-time>';
  const plan = planJob({
    config, job, image, port, paths,
    keys: { userKey: '', userKeyPub: placeholder, hostKey: '', hostKeyPub: placeholder },
    accounts: { passwd: '', group: '' },
    groupNames: await lookupGroupNames([job.owner.gid, ...job.owner.gids]),
    facts: new Map(job.hosts.map((h) => [h.name, { devices }])),
    nonce: '<nonce>',
  });
  const out: string[] = [
    `# job ${job.id}[${job.index}] attempt ${job.attempt}, queue ${job.queue}, owner ${job.owner.name} (${job.owner.uid}:${job.owner.gid})`,
    `# image ${image.alias} = ${image.ref}; port ${port} (allocated at run time from ${config.portRange.first}-${config.portRange.last})`,
    `# devices: this host's under ${config.deviceDir}; each node's own are found at run time`,
  ];
  out.push('\n# on every node, over its admin ssh session, besides docker run:');
  for (const step of nodeSteps(config, job, image)) out.push(`# ${step.when}`, quote(step.argv));
  for (const run of plan.runs) out.push(`\n# ${run.host}`, quote([config.engine, ...run.argv]));
  for (const path of [paths.sshConfig, paths.hostfile, paths.mpichHostfile]) {
    out.push(`\n# ${path}`, plan.files.find((f) => f.path === path)!.content.trimEnd());
  }
  if (plan.dropped.length > 0) out.push(`\n# user variables kept out: ${plan.dropped.join(' ')}`);
  process.stdout.write(`${out.join('\n')}\n`);
}
