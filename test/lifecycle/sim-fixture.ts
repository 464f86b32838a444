// What the *.sim.test.ts files share: a simulated cluster (test/support/sim-cluster.ts) and a
// jobbox config that reaches it, as the user running the tests (no root). Each test gets fresh
// port and state dirs and a fresh cluster; the nodes, keys and listeners last for the file.
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { pino, type Logger } from 'pino';
import { parseConfig } from '../../src/config/parse.js';
import type { Config } from '../../src/config/types.js';
import type { Job, Owner } from '../../src/job/job.js';
import { ed25519KeyPair } from '../../src/lifecycle/keys.js';
import { nodeIp, startSimCluster, type SimCluster, type SimOptions } from '../support/sim-cluster.js';

/** An address in 127/8 where nothing listens: a node that is off. */
export const UNREACHABLE = '127.77.9.9';
export const IMAGE_REF = 'registry.sim.example:5000/hpc/deb12:r1';
/** Two ports: few enough that a test knows which one a retry must take. */
export const PORTS = { first: 30100, last: 30101 };
/**
 * The admin port of every simulated node. Fixed, so that it also locks the block of addresses:
 * a second run of the suite at the same time (another user, CI) finds its first node taken and
 * moves to the next block, instead of sharing the nodes and the job ports.
 */
const ADMIN_PORT = 2222;
/** Blocks a file may move on to, from its own. */
const BLOCKS = 10;

export interface SimFixture {
  sim: SimCluster;
  hosts: string[];
  owner: Owner;
  log: Logger;
  /** This test's config; its port_dir and state_dir are fresh for every test. */
  config: Config;
  /** A job on `hosts` (all the nodes unless given), its attempt the first host as LSF makes it. */
  job(id: string, hosts?: string[]): Job;
  /** Names under port_dir/claims. */
  claims(): string[];
  /** Job dirs under state_dir (the image cache and the start records left out). */
  jobDirs(): string[];
  /** A fresh cluster and fresh dirs for the next test. */
  fresh(): Promise<void>;
  close(): Promise<void>;
}

/** `block`: the first of the file's own ten blocks of node addresses (nodeIp), so files can run side by side. */
export async function simFixture(block: number, nodes = 3): Promise<SimFixture> {
  const me = userInfo();
  const owner: Owner = { name: me.username, uid: me.uid, gid: me.gid, gids: [], home: me.homedir, shell: me.shell ?? '/bin/sh' };
  const base = await mkdtemp(join(tmpdir(), 'jobbox-sim-'));
  const [admin, host] = await Promise.all([ed25519KeyPair('jobbox-admin'), ed25519KeyPair('sim-node')]);
  const { sim, hosts } = await freeBlock(block, nodes, { adminPort: ADMIN_PORT, hostKey: host.private, adminPub: admin.public, adminUser: owner.name });
  await writeFile(join(base, 'admin_key'), admin.private, { mode: 0o600 });
  // The unreachable address is pinned too: what fails there is the connection, not the lookup.
  const blob = host.public.split(/\s+/).slice(0, 2).join(' ');
  await writeFile(join(base, 'known_hosts'), [...hosts, UNREACHABLE].map((h) => `[${h}]:${sim.adminPort} ${blob}\n`).join(''));

  let root = '';
  let config: Config | undefined;
  const fixture: SimFixture = {
    sim,
    hosts,
    owner,
    log: pino({ level: 'silent' }),
    get config() {
      if (!config) throw new Error('sim fixture: no config before fresh()');
      return config;
    },
    job: (id, on = hosts) => ({
      id,
      index: 0,
      attempt: on[0]!,
      queue: 'normal',
      owner,
      cwd: owner.home,
      hosts: on.map((name) => ({ name, slots: 2 })),
      image: 'deb12',
      env: { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8' },
    }),
    claims: () => list(join(fixture.config.portDir, 'claims')),
    jobDirs: () => list(fixture.config.stateDir).filter((n) => n !== '.images' && n !== '.status'),
    async fresh() {
      await sim.reset();
      if (root) await rm(root, { recursive: true, force: true });
      root = await mkdtemp(join(base, 'test-'));
      config = parseConfig(configText(base, root, sim.adminPort, owner.name), join(root, 'jobbox.ini'));
    },
    async close() {
      await sim.stop();
      await rm(base, { recursive: true, force: true });
    },
  };
  await fixture.fresh();
  return fixture;
}

async function freeBlock(block: number, nodes: number, options: Omit<SimOptions, 'nodes'>): Promise<{ sim: SimCluster; hosts: string[] }> {
  for (let b = block; ; b++) {
    const hosts = Array.from({ length: nodes }, (_, i) => nodeIp(i, b));
    try {
      return { sim: await startSimCluster({ ...options, nodes: hosts }), hosts };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || b + 1 >= block + BLOCKS) throw err;
    }
  }
}

function configText(base: string, root: string, adminPort: number, user: string): string {
  return `[jobbox]
registry = registry.sim.example:5000
port_range = ${PORTS.first}-${PORTS.last}
port_dir = ${root}/ports
state_dir = ${root}/jobs
log_file = ${root}/jobbox.log
ssh_user = ${user}
ssh_key = ${base}/admin_key
ssh_known_hosts = ${base}/known_hosts
ssh_port = ${adminPort}
connect_timeout = 2
start_timeout = 5

[image deb12]
ref = hpc/deb12:r1

[queue normal]
default_image = deb12
`;
}

function list(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}
