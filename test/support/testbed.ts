import { readFile, stat } from 'node:fs/promises';
import { execa, type Options } from 'execa';
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout, found upwards from this module, so the helpers also work when bundled (the demo). */
/** Where the testbed installs jobbox's package (testbed.sh install): the suites run these files. */
export const INSTALL = '/usr/lib/jobbox';

export const REPO = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(`${dir}/test/testbed/testbed.sh`)) {
    if (dir === '/') throw new Error('testbed: cannot find the jobbox checkout');
    dir = dirname(dir);
  }
  return dir;
})();
const script = `${REPO}/test/testbed/testbed.sh`;

/**
 * The engine the suites run on (`JOBBOX_TEST_ENGINE`, docker by default): the testbed config
 * names it (global-setup.ts), and the suites ask the nodes' engine of that name what it holds.
 */
export const ENGINE: 'docker' | 'podman' = process.env.JOBBOX_TEST_ENGINE === 'podman' ? 'podman' : 'docker';

/**
 * Takes an image off a node, by id, with every name it has: Podman keeps an image that one of
 * its names (a digest's) still holds when a tag goes. A node without it is left as it is.
 */
export async function dropImage(node: string, ref: string): Promise<void> {
  const id = await onNode(node, [ENGINE, 'image', 'inspect', '--format', '{{.Id}}', ref]).catch(() => '');
  if (id) await onNode(node, [ENGINE, 'rmi', '--force', id]);
}

/** What a container's PID 1 is called (its /proc/1/comm): the engine's --init. */
export const INIT = ENGINE === 'podman' ? 'podman-init' : 'docker-init';

/**
 * The host pids of a container's processes on a node, each with its command line when `args`:
 * `docker top` takes ps(1)'s options, `podman top` its own descriptors (hpid: the host's pid).
 */
export async function containerTop(node: string, name: string, args = false): Promise<string[]> {
  const argv = ENGINE === 'podman' ? ['podman', 'top', name, 'hpid', ...(args ? ['args'] : [])] : ['docker', 'top', name, '-eo', args ? 'pid,args' : 'pid'];
  return (await onNode(node, argv)).split('\n').slice(1).map((l) => l.trim()).filter(Boolean);
}

export interface TestbedStatus {
  up: boolean;
  dir: string;
  config: string;
  registry: string;
  registryUp: boolean;
  slurm: boolean;
  slurmConf: string;
  bridgeIp: string;
  nodes: { name: string; ip: string; pid: number; sshd: boolean; dockerd: boolean }[];
}

export function testbed(args: string[], options: Options = {}) {
  return execa('bash', [script, ...args], options);
}

export async function testbedStatus(): Promise<TestbedStatus> {
  const { stdout } = await testbed(['status', '--json']);
  return JSON.parse(String(stdout)) as TestbedStatus;
}

/**
 * The lines about one job that the jobbox log at `file` gets from now on. The testbed's log
 * outlives suites and runs, and job ids come back (Slurm's restart at 1 with every testbed, the
 * LSF harness draws them at random), so an older line can name a job of this run.
 */
export async function jobLogFrom(file: string): Promise<(id: number | string) => Promise<string[]>> {
  const start = (await stat(file).catch(() => ({ size: 0 }))).size;
  return async (id) => (await readFile(file)).subarray(start).toString('utf8').split('\n').filter((l) => l.includes(`"job":"${id}"`));
}

/** Polls `test` every 200 ms until it holds; throws after `seconds`. */
export async function waitFor(what: string, test: () => Promise<boolean>, seconds = 120): Promise<void> {
  for (let i = 0; i < seconds * 5; i++) {
    if (await test()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Slurm client commands as root against the testbed's cluster; `conf` is read at each call (the testbed comes up after import). */
export function slurmClient(conf: () => string) {
  // SLURM_CONF always: without it a client looks the controller up in DNS.
  const slurm = (argv: string[]) => execa(argv[0]!, argv.slice(1), { env: { SLURM_CONF: conf() }, reject: false });
  /** One field of `scontrol show job -o`. */
  const jobField = async (id: string, field: string) => new RegExp(`\\b${field}=(\\S*)`).exec((await slurm(['scontrol', 'show', 'job', '-o', id])).stdout)?.[1] ?? '';
  return { slurm, jobField };
}

/** Runs argv as root on a node, as a root process there would; rejects on non-zero exit. */
export async function onNode(node: string, argv: string[], options: Options = {}): Promise<string> {
  const { stdout } = await testbed(['exec', node, '--', ...argv], options);
  return String(stdout).trim();
}

/**
 * The testbed registry's access log (Debian's docker-registry writes one Apache-style line per
 * request): its length now, and the requests logged from that offset on, with the client's address.
 */
export const registryLog = {
  size: async (tb: Pick<TestbedStatus, 'dir'>): Promise<number> => (await readFile(`${tb.dir}/log/registry.log`, 'utf8')).length,
  since: async (tb: Pick<TestbedStatus, 'dir'>, offset: number): Promise<{ ip: string; method: string; path: string }[]> => {
    const text = (await readFile(`${tb.dir}/log/registry.log`, 'utf8')).slice(offset);
    return [...text.matchAll(/^(\S+) - - \[[^\]]*\] "(HEAD|GET) (\/v2\/\S+) HTTP/gm)].map((m) => ({ ip: m[1]!, method: m[2]!, path: m[3]! }));
  },
};
