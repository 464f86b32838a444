import { describe, expect, it } from 'vitest';
import { runEsub, submitLsf, type LsfJobSpec } from '../harness/lsf/harness.js';

// bsub's esub stage, played by the harness on node1 as the real user, through the real
// shims installed by `jobbox lsf install-esubs`. Queue short allows deb12-mpich only.
const job = (over: Partial<LsfJobSpec>): LsfJobSpec => ({ user: 'jbuser1', command: 'hostname', hosts: [{ name: 'node1', slots: 1 }], ...over });
const notAllowed = 'jobbox: image: not allowed in queue short (allowed: deb12-mpich); use -q normal or -q gpu, or -a docker-deb12-mpich: deb12\n';
// Blanked over the user's values: the loader would read them in LSF's root /bin/sh -c.
const BLANKS = 'LD_PRELOAD=\nLD_AUDIT=\nLD_LIBRARY_PATH=\nLD_DEBUG=\nLD_DEBUG_OUTPUT=\nLD_PROFILE=\nLD_PROFILE_OUTPUT=\nGLIBC_TUNABLES=\n';

describe('LSF 10: bsub -a docker-<alias> runs esub.docker-<alias>', () => {
  it('rejects deb12 on queue short with 97 and the reason, writing no envfile', async () => {
    expect(await runEsub(job({ queue: 'short', app: 'docker-deb12' }))).toEqual({ code: 97, stderr: notAllowed, envfile: '', rejected: true });
  });

  it('accepts deb12-mpich on queue short and passes the alias to the job', async () => {
    expect(await runEsub(job({ queue: 'short', app: 'docker-deb12-mpich' }))).toEqual({ code: 0, stderr: '', envfile: `JOBBOX_IMAGE=deb12-mpich\n${BLANKS}`, rejected: false });
  });

  it('judges a job without -q by the default queue (normal allows deb12)', async () => {
    expect(await runEsub(job({ user: 'jbuser2', app: 'docker-deb12' }))).toMatchObject({ code: 0, envfile: `JOBBOX_IMAGE=deb12\n${BLANKS}` });
  });

  it('fails the submit for an alias with no esub installed', async () => {
    expect(await runEsub(job({ queue: 'normal', app: 'docker-centos7' }))).toMatchObject({ code: 127, envfile: '', rejected: true });
  });

  it('runs nothing else for a rejected job', async () => {
    const hooks = { preExec: 'exit 0', postExec: 'exit 0', jobStarter: '/bin/sh -c "%USRCMD"' };
    const run = await submitLsf(hooks, job({ queue: 'short', app: 'docker-deb12' }));
    expect(run).toMatchObject({ state: 'REJECTED', preExec: [], esub: { code: 97, stderr: notAllowed } });
    expect(run.starter).toBeUndefined();
    expect(run.postExec).toBeUndefined();
  });
});

describe('openlava: only the master esub runs, reading LSB_SUB_ADDITIONAL', () => {
  it.each([
    ['short', 'docker-deb12', { code: 97, stderr: notAllowed, envfile: '', rejected: true }],
    ['short', 'docker-deb12-mpich', { code: 0, stderr: '', envfile: `JOBBOX_IMAGE=deb12-mpich\n${BLANKS}`, rejected: false }],
    ['short', undefined, { code: 0, stderr: '', envfile: BLANKS, rejected: false }],
  ])('queue %s, -a %s', async (queue, app, result) => {
    expect(await runEsub(job({ queue, ...(app && { app }), flavour: 'openlava' }))).toEqual(result);
  });
});
