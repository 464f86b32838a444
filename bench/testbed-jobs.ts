// What P1, P3 and P4 share: jobs on the testbed through the real LSF hooks, and the floor
// they are measured against — plain OpenSSH running the same `docker run` that jobbox's plan
// holds for each node, from node1 as the pre-exec would.
import { readFile } from 'node:fs/promises';
import { resolveImage } from '../src/config/image.js';
import { lookupAccount } from '../src/exec/accounts.js';
import { quote } from '../src/quote.js';
import type { Job } from '../src/job/job.js';
import { lsfJob } from '../src/scheduler/lsf.js';
import { claimedPort } from '../src/ports/allocator.js';
import { containerName, runArgv } from '../src/plan/container.js';
import { jobKey, jobPaths, parseAttemptRecord } from '../src/plan/job-files.js';
import { lsfJobEnv } from '../test/harness/lsf/harness.js';
import { hook, spec, type LsfFixture } from '../test/support/lsf-fixture.js';
import { onNode } from '../test/support/testbed.js';

export const nodes = (n: number) => Array.from({ length: n }, (_, i) => `node${i + 1}`);
export const jobEnv = (jobId: number, hosts: string[]) =>
  lsfJobEnv(spec({}), jobId, hosts.map((name) => ({ name, slots: 1 })), { JOBBOX_IMAGE: 'deb12' });

/** Runs a root hook line on node1 as LSF would; throws unless it exits 0. */
export async function mustHook(line: string, env: Record<string, string>): Promise<void> {
  const r = await hook(line, env);
  if (r.code !== 0) throw new Error(`bench: hook failed (${r.code}): ${line}: ${r.stderr}`);
}

export interface Floor {
  job: Job;
  port: number;
  /** `docker run …` for each node, as one remote command line each. */
  commands: [string, string][];
  name: string;
}

/**
 * A job that jobbox started once (its dir, keys and claim stay), whose containers the floor
 * removes and starts again itself: the same image, flags and files, minus jobbox.
 */
export async function floorJob(b: LsfFixture, jobId: number, hosts: string[]): Promise<Floor> {
  const env = jobEnv(jobId, hosts);
  await mustHook(b.hooks.preExec, env);
  const job = await lsfJob(env, 'node1', lookupAccount);
  const paths = jobPaths(b.config.stateDir, job);
  // The digest jobbox pinned the job to, as every node runs it (`--pull never`: by digest).
  const digest = parseAttemptRecord(await readFile(paths.attempt, 'utf8'))?.digest;
  if (digest === undefined) throw new Error(`bench: floor job ${jobId} has no pinned digest`);
  const image = { ...resolveImage(b.config, job.queue, job.image), digest };
  const port = await claimedPort(b.config.portDir, jobKey(job));
  if (port === undefined) throw new Error(`bench: floor job ${jobId} holds no port`);
  const commands = await Promise.all(job.hosts.map(async (host): Promise<[string, string]> => {
    const found = await onNode(host.name, ['find', b.config.deviceDir, '-maxdepth', '1', '-type', 'c', '-printf', '%f\\n']);
    // The floor starts containers of its own, with a nonce of its own.
    const argv = runArgv(b.config, job, host, image, paths, { devices: found.split('\n').filter(Boolean) }, '0000000000000000');
    return [host.name, quote([b.config.engine, ...argv])];
  }));
  return { job, port, commands, name: containerName(job) };
}

const SSH = (b: LsfFixture) => ['ssh', '-i', b.config.sshKey, '-o', `UserKnownHostsFile=${b.config.sshKnownHosts}`, '-o', 'BatchMode=yes', '-l', b.config.sshUser];

/**
 * The floor of a start, from node1: OpenSSH runs each node's `docker run -d` (all at once, or
 * one node after another as the seed's loop did), then waits until every job sshd accepts.
 */
export async function floorStart(b: LsfFixture, f: Floor, serial = false): Promise<void> {
  const script = `
    port=$1; shift
    ${serial ? '' : 'pids=()'}
    for pair in "$@"; do
      node=\${pair%%=*} cmd=\${pair#*=}
      ${serial
        ? '"${SSH[@]}" "$node" "$cmd" >/dev/null || exit 1'
        : '( "${SSH[@]}" "$node" "$cmd" >/dev/null && until (exec 3<>"/dev/tcp/$node/$port") 2>/dev/null; do sleep 0.01; done ) & pids+=($!)'}
    done
    ${serial
      ? 'for pair in "$@"; do node=${pair%%=*}; until (exec 3<>"/dev/tcp/$node/$port") 2>/dev/null; do sleep 0.01; done; done'
      : 'for p in "${pids[@]}"; do wait "$p" || exit 1; done'}`;
  await onNode('node1', ['bash', '-c', `SSH=(${quote(SSH(b))}); ${script}`, '_', String(f.port), ...f.commands.map(([n, c]) => `${n}=${c}`)]);
}

/** The floor of a teardown: OpenSSH runs `docker rm -f` of the job's container on every node at once. */
export async function floorRemove(b: LsfFixture, f: Floor): Promise<void> {
  const rm = quote([b.config.engine, 'rm', '--force', f.name]);
  const script = 'pids=(); for node in "$@"; do "${SSH[@]}" "$node" "$RM" >/dev/null & pids+=($!); done; for p in "${pids[@]}"; do wait "$p" || exit 1; done';
  await onNode('node1', ['bash', '-c', `SSH=(${quote(SSH(b))}); RM=${quote([rm])}; ${script}`, '_', ...f.commands.map(([n]) => n)]);
}

/** Untimed: the floor job's containers gone from every node (so the next floor start is a fresh one). */
export async function floorClear(b: LsfFixture, f: Floor): Promise<void> {
  await Promise.all(f.commands.map(([n]) => onNode(n, [b.config.engine, 'rm', '--force', f.name]).catch(() => '')));
}

/** The floor job's own teardown through jobbox, at the end. */
export async function floorEnd(b: LsfFixture, jobId: number, hosts: string[]): Promise<void> {
  await mustHook(b.hooks.postExec, jobEnv(jobId, hosts));
}

/** None of the bench's jobs (ids in [from, to]) may leave a container behind on any node. */
export async function expectClean(n: number, from: number, to: number): Promise<void> {
  const ids = await Promise.all(nodes(n).map((node) => onNode(node, ['docker', 'ps', '-a', '--format', '{{.Label "org.jobbox.job"}}'])));
  const ours = ids.join('\n').split('\n').filter((id) => Number(id) >= from && Number(id) <= to);
  if (ours.length > 0) throw new Error(`bench: containers left behind by jobs ${ours.join(' ')}`);
}
