// What a setup would do, printed and not run: `jobbox lsf pre-exec --dry-run` and
// `jobbox slurm prolog --dry-run --job ID`.
import { readdir } from 'node:fs/promises';
import { resolveImage } from '../config/image.js';
import type { Config } from '../config/types.js';
import { lookupGroupNames } from '../exec/accounts.js';
import type { Job } from '../job/job.js';
import { cgroupParent } from '../plan/container.js';
import { jobKey, jobPaths } from '../plan/job-files.js';
import { planJob } from '../plan/job.js';
import { nodeSteps } from '../plan/node.js';
import { claimedPort } from '../ports/allocator.js';
import { quote } from '../quote.js';

// Runs nothing: keys, the image's accounts and the port are shown as placeholders, and devices
// are the ones this host has (other nodes are probed at run time).
export async function printPlan(config: Config, job: Job): Promise<void> {
  const image = resolveImage(config, job.queue, job.image);
  const paths = jobPaths(config.stateDir, job);
  const port = (await claimedPort(config.portDir, jobKey(job)).catch(() => undefined)) ?? config.portRange.first;
  const devices = await readdir(config.deviceDir).catch(() => [] as string[]);
  const placeholder = 'ssh-ed25519 <generated-at-run-time>';
  const plan = planJob({
    // Every node runs the digest the start pins (or the submit pinned).
    config, job, image: { ...image, digest: image.digest ?? 'sha256:<digest>' }, port, paths,
    keys: { userKey: '', userKeyPub: placeholder, hostKey: '', hostKeyPub: placeholder },
    accounts: { passwd: '', group: '' },
    groupNames: await lookupGroupNames([job.owner.gid, ...job.owner.gids]),
    facts: new Map(job.hosts.map((h) => [h.name, { devices }])),
    nonce: '<nonce>',
  });
  const out: string[] = [
    `# job ${job.id}[${job.index}] attempt ${job.attempt}, queue ${job.queue}, owner ${job.owner.name} (${job.owner.uid}:${job.owner.gid})`,
    `# image ${image.alias} = ${image.ref}, ${image.digest ? `pinned at submit to ${image.digest}` : "pinned at run time to the digest the registry names for the tag (else the first node's pull prints)"}, which every node then runs; port ${port} (allocated at run time from ${config.portRange.first}-${config.portRange.last})`,
    `# devices: this host's under ${config.deviceDir}; each node's own are found at run time`,
    `# cgroup parent per node: ${job.hosts.map((h, i) => `${h.name} ${cgroupParent(job, i) ?? '(the engine\'s own)'}`).join(', ')}`,
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
