// reapOrphans against the simulated cluster, with bjobs and squeue stand-ins on PATH: an orphan
// is a real attempt (setupJob: containers, claim, job dir) whose job the scheduler then reports.
// Only a positive "over" from the scheduler, past the grace period, reclaims anything.
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { reapOrphans, type GcOptions } from '../../src/lifecycle/gc.js';
import { setupJob } from '../../src/lifecycle/setup.js';
import type { Job } from '../../src/job/job.js';
import { simFixture, type SimFixture } from './sim-fixture.js';

let f: SimFixture;
let bin: string;
beforeAll(async () => {
  f = await simFixture(121);
  bin = await mkdtemp(join(tmpdir(), 'jobbox-gc-bin-'));
});
afterAll(async () => {
  await f.close();
  await rm(bin, { recursive: true, force: true });
});
beforeEach(async () => {
  await f.fresh();
  await rm(join(bin, 'client'), { recursive: true, force: true });
});

/**
 * Puts `name` on the PATH gc gets, printing `stdout` and `stderr` and exiting `code`; each call's
 * arguments are appended to `<name>.args`.
 */
async function client(name: 'bjobs' | 'squeue', answer: { stdout?: string; stderr?: string; code?: number }): Promise<void> {
  const dir = join(bin, 'client');
  await mkdir(dir, { recursive: true });
  const path = join(dir, name);
  await writeFile(`${path}.out`, answer.stdout ?? '');
  await writeFile(`${path}.err`, answer.stderr ?? '');
  await writeFile(path, `#!/bin/sh\necho "$*" >> "$0.args"\ncat "$0.out"\ncat "$0.err" >&2\nexit ${answer.code ?? 0}\n`);
  await chmod(path, 0o755);
}

const argsOf = (name: string) => readFile(join(bin, 'client', `${name}.args`), 'utf8');

/** Runs gc as `jobbox gc` would, collecting what it says; returns its exit code and lines. */
async function gc(options: Partial<GcOptions> = {}): Promise<{ code: number; said: string[] }> {
  const said: string[] = [];
  const env = { PATH: `${join(bin, 'client')}:/usr/bin:/bin` };
  const code = await reapOrphans(f.config, { scheduler: 'lsf', dryRun: false, graceMs: 0, sweepNodes: [], ...options }, env, f.log, (l) => said.push(l));
  return { code, said };
}

/** A real attempt left behind as a crashed post-exec leaves it. */
async function orphan(job: Job): Promise<{ key: string; port: number }> {
  const { port } = await setupJob(f.config, job, f.log);
  return { key: `${job.id}.${job.index}.${job.attempt}`, port };
}

function intact(key: string, port: number): void {
  expect(f.sim.containers()).toHaveLength(3);
  expect(f.claims()).toEqual([`claim.${key}.${port}`]);
  expect(f.jobDirs()).toEqual([key]);
}

function gone(): void {
  expect(f.sim.containers()).toEqual([]);
  expect(f.claims()).toEqual([]);
  expect(f.jobDirs()).toEqual([]);
}

describe('reapOrphans on the simulated cluster', () => {
  it.each([
    ['DONE', { stdout: '3001 0 DONE\n' }, 'job is DONE'],
    ['EXIT', { stdout: '3001 0 EXIT\n' }, 'job is EXIT'],
    ['not found (purged)', { stderr: 'Job <3001> is not found\n', code: 255 }, 'LSF does not know the job (finished and purged)'],
  ])('reclaims an attempt LSF calls %s: containers on every node, claim and job dir', async (_case, answer, why) => {
    const { key, port } = await orphan(f.job('3001'));
    await client('bjobs', answer);

    const { code, said } = await gc();

    expect(code).toBe(0);
    expect(said).toEqual([
      `jobbox: gc: reclaimed ${key} (port ${port}, job dir, containers on ${f.hosts.join(' ')}): ${why}`,
      'jobbox: gc: reclaimed 1, kept 0, failed 0',
    ]);
    gone();
    expect(await argsOf('bjobs')).toBe('-noheader -a -o jobid jobindex stat 3001\n');
  });

  it('reclaims a Slurm attempt whose job is COMPLETED', async () => {
    const { key, port } = await orphan({ ...f.job('3002'), attempt: '0' });
    await client('squeue', { stdout: '3002|N/A|COMPLETED|0|\n' });

    const { code, said } = await gc({ scheduler: 'slurm' });

    expect(code).toBe(0);
    expect(said[0]).toBe(`jobbox: gc: reclaimed ${key} (port ${port}, job dir, containers on ${f.hosts.join(' ')}): job is COMPLETED`);
    gone();
  });

  it('keeps an attempt whose job is still RUN', async () => {
    const { key, port } = await orphan(f.job('3003'));
    await client('bjobs', { stdout: '3003 0 RUN\n' });

    const { code, said } = await gc();

    expect(code).toBe(0);
    expect(said).toEqual([`jobbox: gc: keep ${key}: job is RUN`, 'jobbox: gc: reclaimed 0, kept 1, failed 0']);
    intact(key, port);
  });

  it('keeps everything and exits 1 when the scheduler cannot be asked', async () => {
    const { key, port } = await orphan(f.job('3004'));
    await client('bjobs', { stderr: 'LSF is down. Please wait...\n', code: 255 });

    const { code, said } = await gc();

    expect(code).toBe(1);
    expect(said).toEqual([
      `jobbox: gc: keep ${key}: LSF could not be asked (bjobs: exit 255: LSF is down. Please wait...); nothing done`,
      'jobbox: gc: reclaimed 0, kept 1, failed 0',
    ]);
    intact(key, port);
  });

  it('keeps an attempt that is over but changed within the grace period', async () => {
    const { key, port } = await orphan(f.job('3005'));
    await client('bjobs', { stdout: '3005 0 DONE\n' });

    const { code, said } = await gc({ graceMs: 3_600_000 });

    expect(code).toBe(0);
    expect(said[0]).toBe(`jobbox: gc: keep ${key}: job is DONE, but changed 0 s ago (grace 3600 s)`);
    intact(key, port);
  });

  it('a dry run says what it would reclaim and changes nothing', async () => {
    const { key, port } = await orphan(f.job('3006'));
    await client('bjobs', { stdout: '3006 0 DONE\n' });

    const { code, said } = await gc({ dryRun: true });

    expect(code).toBe(0);
    expect(said).toEqual([
      `jobbox: gc: would reclaim ${key} (port ${port}, job dir, containers on ${f.hosts.join(' ')}): job is DONE`,
      'jobbox: gc: dry run: would reclaim 1, keep 0; nothing changed',
    ]);
    intact(key, port);
    expect(f.sim.nodes.map((n) => n.count('rm'))).toEqual([0, 0, 0]);
  });

  it('a reclaim that cannot reach a node keeps the claim and the job dir for the next run, and exits 1', async () => {
    const { key, port } = await orphan(f.job('3007'));
    await client('bjobs', { stdout: '3007 0 DONE\n' });
    const third = f.sim.node(f.hosts[2]!);
    await third.setDown(true);

    const { code, said } = await gc();

    const target = `${third.ip}:${f.sim.adminPort}`;
    expect(code).toBe(1);
    expect(said).toEqual([
      `jobbox: gc: could not reclaim ${key}, kept for the next run: nodes: failed on 1 of 3: ssh ${target}: connect ECONNREFUSED ${target}: ${f.owner.name}`,
      'jobbox: gc: reclaimed 0, kept 0, failed 1',
    ]);
    intact(key, port);

    // The node is back: the next run finishes the job.
    await third.setDown(false);
    expect((await gc()).code).toBe(0);
    gone();
  });
});
