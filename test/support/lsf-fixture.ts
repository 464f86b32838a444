// What the LSF suites share: the queue's hook lines as an admin writes them in lsb.queues,
// and views of what a job left on the testbed.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import type { LsfJobSpec, LsfQueueHooks } from '../harness/lsf/harness.js';
import { ENGINE, INSTALL, onNode, testbedStatus } from './testbed.js';

export const NODES = ['node1', 'node2', 'node3'];
export const ALLOC = [{ name: 'node1', slots: 2 }, { name: 'node2', slots: 2 }, { name: 'node3', slots: 1 }];

export interface LsfFixture {
  config: Config;
  configPath: string;
  hooks: LsfQueueHooks;
}

export async function lsfFixture(): Promise<LsfFixture> {
  const configPath = (await testbedStatus()).config;
  return {
    config: await loadConfig(configPath),
    configPath,
    hooks: {
      preExec: `${INSTALL}/hooks/lsf/pre-exec --config ${configPath}`,
      postExec: `${INSTALL}/hooks/lsf/post-exec --config ${configPath}`,
      // As the admin writes it in lsb.queues (`\#` there), after LSF's parser has read it.
      jobStarter: `exec ${INSTALL}/hooks/lsf/starter --config ${configPath} --job-file #%USRCMD`,
    },
  };
}

export const spec = (over: Partial<LsfJobSpec>): LsfJobSpec => ({ user: 'jbuser1', command: 'true', hosts: ALLOC, ...over });

/** `node name image` of every container labelled with the job, on every node. */
export async function containers(jobId: number): Promise<string[]> {
  const all = await Promise.all(
    NODES.map((n) => onNode(n, [ENGINE, 'ps', '-a', '--filter', `label=org.jobbox.job=${jobId}`, '--format', `${n} {{.Names}} {{.Image}}`])),
  );
  // docker names an image run by digest by its repository alone, Podman by the ref it was run by.
  return all.filter(Boolean).flatMap((s) => s.split('\n')).map((l) => l.replace(/@sha256:[0-9a-f]{64}$/, ''));
}

/** Port claims (names in port_dir/claims) of a job id, or of a job key `<id>.<index>.<attempt>`; read directly, not through the allocator. */
export async function claims(config: Config, job: number | string): Promise<string[]> {
  const names = await readdir(join(config.portDir, 'claims')).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
  return names.filter((f) => f.startsWith(`claim.${job}.`));
}

export async function jobDirs(config: Config, jobId: number): Promise<string[]> {
  return (await readdir(config.stateDir)).filter((f) => f.startsWith(`${jobId}.`));
}

/** A root hook line run again by hand on a node, as LSF would on a requeue or a late post-exec. */
export async function hook(line: string, env: Record<string, string>, node = 'node1'): Promise<{ code: number; stderr: string }> {
  const { HOME: _h, ...rest } = env;
  const vars = Object.entries({ ...rest, PATH: '/bin:/usr/bin:/sbin:/usr/sbin' }).map(([k, v]) => `${k}=${v}`);
  try {
    await onNode(node, ['env', '-i', ...vars, '/bin/sh', '-c', `cd /tmp && ${line} </dev/null`]);
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { exitCode: number; stderr: string };
    return { code: e.exitCode, stderr: String(e.stderr) };
  }
}
