// The demo behind `npm run demo`: one MPI job as LSF would run it, through the contract
// harness and jobbox's real hooks, on the testbed that demo.sh brought up.
import { chown, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { jobDirs, lsfFixture } from '../../support/lsf-fixture.js';
import { ENGINE, onNode } from '../../support/testbed.js';
import { submitLsf, type LsfJobSpec } from './harness.js';

const NODES = ['node1', 'node2', 'node3'];
const show = (title: string, text = '') => process.stdout.write(`\n== ${title}\n${text.trimEnd()}${text ? '\n' : ''}`);

const { config, hooks } = await lsfFixture();
await writeFile('/home/jbuser1/rank.sh', '#!/bin/sh\necho "rank on $(hostname): $(id)"\n', { mode: 0o755 });
await chown('/home/jbuser1/rank.sh', 2001, 2001);

let during = '';
const job: LsfJobSpec = {
  user: 'jbuser1',
  queue: 'normal',
  app: 'docker-deb12',
  command: 'mpirun -np 5 ./rank.sh',
  hosts: [{ name: 'node1', slots: 2 }, { name: 'node2', slots: 2 }, { name: 'node3', slots: 1 }],
  beforePostExec: async (jobId) => {
    const ps = await Promise.all(
      NODES.map((n) => onNode(n, [ENGINE, 'ps', '--filter', `label=org.jobbox.job=${jobId}`, '--format', `${n}: {{.Names}} {{.Image}} {{.Status}}`])),
    );
    const inside = await onNode('node2', [ENGINE, 'exec', `jobbox-${jobId}`, 'ps', '-o', 'user,pid,args']);
    during = `${ps.join('\n')}\n\nprocesses in node2's container:\n${inside}`;
  },
};
show(`as jbuser1: bsub -q normal -a docker-deb12 -n 5 ${job.command}   (allocation: node1*2 node2*2 node3*1)`);
const run = await submitLsf(hooks, job);
show(`esub.docker-deb12 (as jbuser1): exit ${run.esub.code}, LSB_SUB_MODIFY_ENVFILE`, run.esub.envfile);
for (const p of run.preExec) show(`PRE_EXEC (root on ${p.hosts[0]}): exit ${p.code}`, p.stderr);
show(`JOB_STARTER (as jbuser1): exit ${run.starter?.code}`, run.starter?.stdout);
show(`before POST_EXEC: ${ENGINE} ps on each node`, during);
show(`POST_EXEC (root): exit ${run.postExec?.code}`, run.postExec?.stderr);
const left = await Promise.all(NODES.map((n) => onNode(n, [ENGINE, 'ps', '-aq', '--filter', 'label=org.jobbox.job'])));
const claims = await readdir(join(config.portDir, 'claims'));
show('after POST_EXEC', `jobbox containers on node1..3: ${left.map((l) => (l ? l.split('\n').length : 0)).join(' ')}; port claims: ${claims.length}; job dirs: ${(await jobDirs(config, run.jobId)).length}`);

const { beforePostExec: _look, ...plain } = job;
const rejected = await submitLsf(hooks, { ...plain, queue: 'short' });
show(`as jbuser1: bsub -q short -a docker-deb12 …  → ${rejected.state}, esub exit ${rejected.esub.code}`, rejected.esub.stderr);
show(`job state: ${run.state}`);
