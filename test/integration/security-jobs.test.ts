// Promises 2 and 5 of docs/security.md, on the testbed through the LSF harness with the real
// second user: a job's variables stay private to its owner, and a job id that comes back
// (ids wrap; a post-exec missed a node) never hands one owner's keys or containers to another.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { lsfJobEnv, submitLsf } from '../harness/lsf/harness.js';
import { ALLOC, NODES, claims, containers, hook, jobDirs, lsfFixture, spec, type LsfFixture } from '../support/lsf-fixture.js';
import { onNode, testbed, waitFor } from '../support/testbed.js';

let fx: LsfFixture;
beforeAll(async () => {
  fx = await lsfFixture();
});

const newJobId = () => 60_000 + Math.floor(Math.random() * 9_000);

/** Runs argv as jbuser2 on a node; resolves to its exit code and output, never rejects. */
async function asOther(node: string, argv: string[], input?: string) {
  const r = await testbed(['exec', node, '--', 'runuser', '-u', 'jbuser2', '--', ...argv], { reject: false, ...(input !== undefined ? { input } : { stdin: 'ignore' }) });
  return { code: r.exitCode, stdout: String(r.stdout), stderr: String(r.stderr) };
}

describe("a job's variables are private to its owner", () => {
  it('another user finds none of them in the state dir, /run, /tmp or any command line, on any node, while the job sees them', async () => {
    const secret = `s3cr3t-${randomBytes(12).toString('hex')}`;
    const found: string[] = [];
    let searched = 0;
    const run = submitLsf(fx.hooks, spec({
      app: 'docker-deb12',
      env: { JOB_SECRET: secret },
      // The job prints the variable, then stays up while the other user looks around.
      command: 'printenv JOB_SECRET; sleep 6',
    }));
    // Once the command runs: the starter's ssh client on node1 and the session in the container exist.
    await waitFor('the job command', async () => (await onNode('node1', ['pgrep', '-u', 'jbuser1', '-f', 'sleep 6']).catch(() => '')) !== '', 60);
    for (const node of NODES) {
      // The secret is read from stdin, so the searching grep's own command line does not hold it.
      const files = await asOther(node, ['grep', '-rlsF', '-f', '/dev/stdin', fx.config.stateDir, '/run', '/tmp'], `${secret}\n`);
      searched += 1;
      if (files.stdout.trim()) found.push(`${node}: ${files.stdout.trim()}`);
      expect(files.code, `grep on ${node}: ${files.stderr}`).not.toBe(0);
      const ps = await asOther(node, ['ps', '-eo', 'args']);
      expect(ps.code).toBe(0);
      // The harness plays sbatchd by `env -i VAR=…` on its own command line (job-starter.mjs);
      // sbatchd does not. Everything else, jobbox's starter and ssh included, is checked.
      for (const line of ps.stdout.split('\n')) if (line.includes(secret) && !line.includes('harness/lsf/job-starter.mjs')) found.push(`${node}: ps: ${line}`);
    }
    const r = await run;
    expect(r.state).toBe('DONE');
    expect(r.starter?.stdout).toBe(`${secret}\n`);
    expect(searched).toBe(3);
    expect(found).toEqual([]);
  });

  it('the files that hold what the user chose are the owner\'s alone; the container\'s env file is root\'s', async () => {
    const run = await submitLsf(fx.hooks, spec({ app: 'docker-deb12', env: { JOB_SECRET: 'x' }, command: 'true', skipPostExec: true }));
    expect(run.preExec.at(-1)?.code).toBe(0);
    const dir = `${fx.config.stateDir}/${run.jobId}.0.node1`;
    try {
      const mode = (f: string) => {
        const st = statSync(`${dir}/${f}`);
        return `${(st.mode & 0o777).toString(8)} ${st.uid}`;
      };
      expect({ userenv: mode('userenv'), cwd: mode('cwd'), env: mode('env'), attempt: mode('attempt') })
        .toEqual({ userenv: '600 2001', cwd: '600 2001', env: '600 0', attempt: '600 0' });
      expect(readFileSync(`${dir}/userenv`, 'utf8')).toContain("export JOB_SECRET=x\n");
      expect(readFileSync(`${dir}/env`, 'utf8')).not.toContain('JOB_SECRET');
      // Nothing of the user's is in the container's own environment (its sshd runs with it).
      const inspect = await onNode('node2', ['docker', 'inspect', '--format', '{{json .Config.Env}}', `jobbox-${run.jobId}`]);
      expect(inspect).not.toContain('JOB_SECRET');
      expect((await asOther('node1', ['cat', `${dir}/userenv`])).code).not.toBe(0);
    } finally {
      const env = lsfJobEnv(spec({}), run.jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' });
      expect((await hook(fx.hooks.postExec, env)).code).toBe(0);
    }
  });
});

describe('a recycled job id', () => {
  it("never hands another owner's keys, port or containers to the new job: all is made anew", async () => {
    const jobId = newJobId();
    // jbuser2's job leaves everything behind (its post-exec never ran), as a lost node would.
    const old = await submitLsf(fx.hooks, spec({ user: 'jbuser2', app: 'docker-deb12', jobId, command: 'true', skipPostExec: true }));
    expect(old.preExec.at(-1)?.code).toBe(0);
    const dir = `${fx.config.stateDir}/${jobId}.0.node1`;
    const oldIds = await containerIds(jobId);
    expect(oldIds).toHaveLength(3);
    const oldPub = readFileSync(`${dir}/userkey.pub`, 'utf8');
    // jbuser2 keeps a copy of the job key it was given.
    const stolen = `/tmp/jobbox-stolen-${jobId}`;
    await onNode('node1', ['runuser', '-u', 'jbuser2', '--', 'cp', `${dir}/userkey`, stolen]);
    try {
      let during: { ids: string[]; pub: string; keyOwner: number; port: string } | undefined;
      let tries: { code: number | undefined }[] = [];
      const now = await submitLsf(fx.hooks, spec({
        user: 'jbuser1', app: 'docker-deb12', jobId, command: 'id -un',
        beforePostExec: async () => {
          const port = (await claims(fx.config, jobId))[0]!.split('.').pop()!;
          during = { ids: await containerIds(jobId), pub: readFileSync(`${dir}/userkey.pub`, 'utf8'), keyOwner: statSync(`${dir}/userkey`).uid, port };
          // The old key, as the new owner and as itself, on every node of the new job.
          const ssh = (user: string, node: string) => asOther('node1', [
            'ssh', '-i', stolen, '-p', port, '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'IdentitiesOnly=yes', `${user}@${node}`, 'true',
          ]);
          tries = await Promise.all(NODES.flatMap((n) => [ssh('jbuser1', n), ssh('jbuser2', n)]));
        },
      }));
      expect(now.preExec.at(-1)?.code).toBe(0);
      expect(now.starter?.stdout).toBe('jbuser1\n');
      expect(during!.ids).toHaveLength(3);
      expect(during!.ids.filter((id) => oldIds.includes(id))).toEqual([]);
      expect(during!.pub).not.toBe(oldPub);
      expect(during!.keyOwner).toBe(2001);
      expect(tries.map((t) => t.code)).toEqual(Array(6).fill(255));
      expect(now.state).toBe('DONE');
      expect(await containers(jobId)).toEqual([]);
      expect(await claims(fx.config, jobId)).toEqual([]);
      expect(await jobDirs(fx.config, jobId)).toEqual([]);
    } finally {
      execFileSync('rm', ['-f', stolen]);
    }
  });

  it('a re-run of the same owner\'s attempt still adopts its own containers and keys', async () => {
    const jobId = newJobId();
    const first = await submitLsf(fx.hooks, spec({ app: 'docker-deb12', jobId, command: 'true', skipPostExec: true }));
    expect(first.preExec.at(-1)?.code).toBe(0);
    const ids = await containerIds(jobId);
    const pub = readFileSync(`${fx.config.stateDir}/${jobId}.0.node1/userkey.pub`, 'utf8');
    const env = lsfJobEnv(spec({}), jobId, ALLOC, { JOBBOX_IMAGE: 'deb12' });
    try {
      expect((await hook(fx.hooks.preExec, env)).code).toBe(0);
      expect(await containerIds(jobId)).toEqual(ids);
      expect(readFileSync(`${fx.config.stateDir}/${jobId}.0.node1/userkey.pub`, 'utf8')).toBe(pub);
    } finally {
      expect((await hook(fx.hooks.postExec, env)).code).toBe(0);
    }
  });
});

async function containerIds(jobId: number): Promise<string[]> {
  const all = await Promise.all(NODES.map((n) => onNode(n, ['docker', 'ps', '-aq', '--no-trunc', '--filter', `label=org.jobbox.job=${jobId}`])));
  return all.flatMap((s) => s.split('\n').filter(Boolean)).sort();
}
