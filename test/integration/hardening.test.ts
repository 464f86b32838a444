import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/types.js';
import { lsfJobEnv, submitLsf, type LsfQueueHooks } from '../harness/lsf/harness.js';
import { ALLOC, containers, hook, lsfFixture, spec } from '../support/lsf-fixture.js';
import * as fixture from '../support/lsf-fixture.js';
import { onNode, testbed } from '../support/testbed.js';

// What a job's containers may do, seen from the node (docker top, /proc, docker inspect) and
// from inside (ps), while a session of the owner runs in one: nothing runs as root, no
// capability is left, no process can gain privileges, and nobody but the owner gets in.
let config: Config;
let hooks: LsfQueueHooks;
let jobId: number;
let dir: string;
let session: ReturnType<typeof testbed> | undefined;
const OWNER = { uid: '2001', name: 'jbuser1' };

beforeAll(async () => {
  ({ config, hooks } = await lsfFixture());
  const run = await submitLsf(hooks, spec({ app: 'docker-deb12', command: 'true', skipPostExec: true }));
  expect(run.preExec.at(-1)?.code).toBe(0);
  jobId = run.jobId;
  dir = `${config.stateDir}/${jobId}.0.node1`;
  // A session of the owner on node2, through the job's sshd, as mpirun's would be.
  session = testbed(['exec', 'node1', '--', 'runuser', '-u', OWNER.name, '--', 'ssh', '-F', `${dir}/ssh_config`, 'node2', 'exec sleep 120'], { reject: false });
  const end = Date.now() + 60_000;
  while (!(await top('node2')).some((p) => p.args === 'sleep 120')) {
    if (Date.now() > end) throw new Error('no owner session on node2');
    await new Promise((r) => setTimeout(r, 200));
  }
});

afterAll(async () => {
  const env = lsfJobEnv(spec({}), jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' });
  expect((await hook(hooks.postExec, env)).code).toBe(0);
  await session; // ends when its container is removed
  expect(await containers(jobId)).toEqual([]);
  expect(await fixture.claims(config, jobId)).toEqual([]);
});

interface Proc { pid: string; uid: string; args: string }
/** Every process of the job's container on a node, as the node sees it (host pids). */
async function top(node: string): Promise<Proc[]> {
  const out = await onNode(node, ['docker', 'top', `jobbox-${jobId}`, '-o', 'pid,uid,args']).catch(() => '');
  return out.split('\n').slice(1).filter(Boolean).map((l) => {
    const [pid = '', uid = '', ...args] = l.trim().split(/\s+/);
    return { pid, uid, args: args.join(' ') };
  });
}

describe('hardening', () => {
  it('every process in the containers runs as the owner, never as root: docker top on each node, and ps inside', async () => {
    for (const node of fixture.NODES) {
      const procs = await top(node);
      expect(procs.map((p) => p.args)).toEqual(expect.arrayContaining([expect.stringMatching(/^\/sbin\/docker-init -- \/usr\/sbin\/sshd /), expect.stringMatching(/^sshd: /)]));
      expect(procs.filter((p) => p.uid !== OWNER.uid)).toEqual([]);
    }
    // ps inside sees the owner's session too, and only the owner's processes.
    const inside = await onNode('node2', ['docker', 'exec', `jobbox-${jobId}`, 'ps', '-eo', 'user,uid,args']);
    const rows = inside.split('\n').slice(1).map((l) => l.trim().split(/\s+/));
    expect(rows.map((r) => r.slice(2).join(' '))).toContain('sleep 120');
    expect(rows.filter((r) => r[0] !== OWNER.name || r[1] !== OWNER.uid)).toEqual([]);
  });

  it('no capability is left to any process, and none can gain privileges (no_new_privs)', async () => {
    for (const node of fixture.NODES) {
      const inspect = JSON.parse(await onNode(node, ['docker', 'inspect', '--format', '{{json .HostConfig}}', `jobbox-${jobId}`])) as {
        CapDrop: string[]; CapAdd: string[] | null; SecurityOpt: string[]; Privileged: boolean; PidMode: string; IpcMode: string;
      };
      expect(inspect).toMatchObject({ CapDrop: ['ALL'], CapAdd: null, SecurityOpt: ['no-new-privileges'], Privileged: false });
      for (const p of await top(node)) {
        const status = await onNode(node, ['cat', `/proc/${p.pid}/status`]);
        const fields = Object.fromEntries(status.split('\n').map((l) => l.split(/:\s+/)).filter(([k]) => /^(Cap\w+|NoNewPrivs)$/.test(k!)));
        expect({ node, args: p.args, ...fields }).toEqual({
          node, args: p.args,
          CapInh: '0000000000000000', CapPrm: '0000000000000000', CapEff: '0000000000000000',
          CapBnd: '0000000000000000', CapAmb: '0000000000000000', NoNewPrivs: '1',
        });
      }
    }
    // A set-uid-root program on a site mount (home is one; docker binds are not nosuid) runs,
    // but does not make the owner root: no_new_privs ignores the bit.
    const suid = `/home/${OWNER.name}/.jobbox-hardening-suid-id`;
    await onNode('node1', ['install', '-o', 'root', '-g', 'root', '-m', '4755', '/usr/bin/id', suid]);
    try {
      expect(await onNode('node1', ['stat', '-c', '%A %U', suid])).toBe('-rwsr-xr-x root');
      expect(await onNode('node1', ['docker', 'exec', `jobbox-${jobId}`, suid, '-u'])).toBe(OWNER.uid);
    } finally {
      await onNode('node1', ['rm', '-f', suid]);
    }
  });

  it('refuses a second user on the same node, with or without the job ssh_config', async () => {
    const port = (await fixture.claims(config, jobId))[0]!.split('.').pop()!;
    const attempts = [
      ['ssh', '-F', `${dir}/ssh_config`, 'node2', 'id'],
      ['ssh', '-p', port, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', 'jbuser1@node2', 'id'],
      ['ssh', '-p', port, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', 'jbuser2@node2', 'id'],
      ['ssh', '-p', port, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', 'root@node2', 'id'],
    ];
    for (const argv of attempts) {
      await expect(onNode('node1', ['runuser', '-u', 'jbuser2', '--', ...argv])).rejects.toMatchObject({ exitCode: 255 });
    }
    // The job's keys are the owner's alone: jbuser2 cannot even read them.
    await expect(onNode('node1', ['runuser', '-u', 'jbuser2', '--', 'cat', `${dir}/userkey`])).rejects.toMatchObject({ exitCode: 1 });
    // The owner does get in with the same file: the refusals above are about who, not a broken sshd.
    expect(await onNode('node1', ['runuser', '-u', OWNER.name, '--', 'ssh', '-F', `${dir}/ssh_config`, 'node2', 'id -un'])).toBe(OWNER.name);
  });
});
