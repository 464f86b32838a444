import { describe, it, expect } from 'vitest';
import { parseConfig } from '../../src/config/parse.js';
import type { Job, Owner } from '../../src/job/job.js';
import { planJob, type Keys } from '../../src/plan/job.js';
import type { NodeFacts } from '../../src/plan/container.js';
import { jobPaths } from '../../src/plan/job-files.js';

const config = parseConfig(
  `
[jobbox]
state_dir = /var/lib/jobbox/jobs

[queue normal]
default_image = deb12
mounts = /scratch /apps:/opt/apps:ro
memory = 1g/slot

[image deb12]
ref = registry.example.org/hpc/deb12:latest
env.OMPI_MCA_btl = ^openib
`,
  'test.ini',
);
const image = config.images.get('deb12')!;

const alice: Owner = { name: 'alice', uid: 1000, gid: 1000, gids: [27], home: '/home/alice', shell: '/bin/bash' };

const job: Job = {
  id: '4711',
  index: 0,
  attempt: 'node1',
  queue: 'normal',
  owner: alice,
  cwd: '/scratch/alice/run',
  hosts: [{ name: 'node1', slots: 2 }, { name: 'node2', slots: 2 }, { name: 'node3', slots: 1 }],
  image: 'deb12',
  env: {
    OMP_NUM_THREADS: '4',
    LD_PRELOAD: '/home/alice/evil.so',
    HOME: '/tmp/fake',
    USER: 'root',
    MULTI: 'a\nb',
    JOBBOX_HOSTFILE: '/home/alice/hosts',
  },
};

const paths = jobPaths(config.stateDir, job);
const DIR = '/var/lib/jobbox/jobs/4711.0.node1';
const keys: Keys = {
  userKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nUSER\n-----END OPENSSH PRIVATE KEY-----\n',
  userKeyPub: 'ssh-ed25519 AAAAUSER jobbox-user',
  hostKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nHOST\n-----END OPENSSH PRIVATE KEY-----\n',
  hostKeyPub: 'ssh-ed25519 AAAAHOST jobbox-host',
};
const facts = new Map<string, NodeFacts>([
  ['node1', { devices: ['rdma_cm', 'umad0', 'uverbs0'] }],
  ['node2', { devices: ['issm0', 'rdma_cm', 'uverbs0', 'uverbs1'] }],
  // node3 probed no devices: absent from the map
]);

const plan = planJob({
  config, job, image, port: 41000, paths, keys, facts,
  accounts: { passwd: 'root:x:0:0:root:/root:/bin/bash\n', group: 'root:x:0:\nsudo:x:27:\n' },
  groupNames: new Map([[1000, 'alice'], [27, 'sudo']]),
  nonce: '0123456789abcdef',
});

const file = (path: string) => plan.files.find((f) => f.path === path)!;

describe('planJob', () => {
  it('keeps the image and port', () => {
    expect(plan.image).toBe(image);
    expect(plan.port).toBe(41000);
  });

  it('writes every job file once, private keys owned by the owner and the rest by root', () => {
    expect(plan.files.map(({ path, mode, owner }) => ({ path, mode: mode.toString(8), owner }))).toEqual([
      { path: `${DIR}/userkey`, mode: '600', owner: { uid: 1000, gid: 1000 } },
      { path: `${DIR}/userkey.pub`, mode: '644', owner: undefined },
      { path: `${DIR}/hostkey`, mode: '600', owner: { uid: 1000, gid: 1000 } },
      { path: `${DIR}/hostkey.pub`, mode: '644', owner: undefined },
      { path: `${DIR}/authorized_keys`, mode: '644', owner: undefined },
      { path: `${DIR}/known_hosts`, mode: '600', owner: { uid: 1000, gid: 1000 } },
      { path: `${DIR}/sshd_config`, mode: '600', owner: { uid: 1000, gid: 1000 } },
      { path: `${DIR}/ssh_config`, mode: '600', owner: { uid: 1000, gid: 1000 } },
      { path: `${DIR}/hostfile`, mode: '644', owner: undefined },
      { path: `${DIR}/hostfile.mpich`, mode: '644', owner: undefined },
      { path: `${DIR}/passwd`, mode: '644', owner: undefined },
      { path: `${DIR}/group`, mode: '644', owner: undefined },
      { path: `${DIR}/attempt`, mode: '600', owner: undefined },
      { path: `${DIR}/env`, mode: '600', owner: undefined },
      { path: `${DIR}/userenv`, mode: '600', owner: { uid: 1000, gid: 1000 } },
      { path: `${DIR}/cwd`, mode: '600', owner: { uid: 1000, gid: 1000 } },
    ]);
  });

  it('records whose attempt the dir is: owner, image and the nonce its containers carry', () => {
    expect(JSON.parse(file(`${DIR}/attempt`).content)).toEqual({ uid: 1000, image: image.ref, nonce: '0123456789abcdef' });
    for (const run of plan.runs) expect(run.argv).toContain('org.jobbox.nonce=0123456789abcdef');
  });

  it('records LSF\'s job cgroup the first host\'s container nests in, for the teardown', () => {
    const nest = { path: '/lsf/c1/job.4711.0.1700000000', controllers: ['memory', 'freezer'] };
    const nested = planJob({
      config, job: { ...job, containment: { scheduler: 'lsf', nest } }, image, port: 41000, paths, keys, facts,
      accounts: { passwd: '', group: '' }, groupNames: new Map(), nonce: '0123456789abcdef',
    });
    expect(JSON.parse(nested.files.find((f) => f.path === `${DIR}/attempt`)!.content)).toEqual({ uid: 1000, image: image.ref, nonce: '0123456789abcdef', nest });
  });

  it('writes the keys as given and pins them', () => {
    expect(file(`${DIR}/userkey`).content).toBe(keys.userKey);
    expect(file(`${DIR}/hostkey`).content).toBe(keys.hostKey);
    expect(file(`${DIR}/authorized_keys`).content).toBe('restrict,pty ssh-ed25519 AAAAUSER jobbox-job\n');
    expect(file(`${DIR}/known_hosts`).content).toBe('[node1]:41000,[node2]:41000,[node3]:41000 ssh-ed25519 AAAAHOST\n');
  });

  it('records where the starter runs the command: the job cwd when mounted, else $HOME', () => {
    expect(file(`${DIR}/cwd`).content).toBe(`${job.cwd}\n`);
  });

  it('writes hostfiles with every host and its slots', () => {
    expect(file(`${DIR}/hostfile`).content).toBe('node1 slots=2\nnode2 slots=2\nnode3 slots=1\n');
    expect(file(`${DIR}/hostfile.mpich`).content).toBe('node1:2\nnode2:2\nnode3:1\n');
  });

  it('adds the owner to the image accounts', () => {
    expect(file(`${DIR}/passwd`).content).toBe('root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n');
    expect(file(`${DIR}/group`).content).toBe('root:x:0:\nsudo:x:27:alice\nalice:x:1000:alice\n');
  });

  it('gives the container\'s own environment jobbox\'s and the image\'s variables only, none of the user\'s', () => {
    const lines = file(`${DIR}/env`).content.split('\n').filter(Boolean);
    const env = new Map(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    expect(env.size).toBe(lines.length);
    expect(Object.fromEntries(env)).toEqual({
      OMPI_MCA_btl: '^openib',
      HOME: '/home/alice',
      USER: 'alice',
      LOGNAME: 'alice',
      JOBBOX_HOSTFILE: `${DIR}/hostfile`,
      OMPI_MCA_orte_default_hostfile: `${DIR}/hostfile`,
      HYDRA_HOST_FILE: `${DIR}/hostfile.mpich`,
    });
    expect(file(`${DIR}/env`).content).not.toContain('evil.so');
  });

  it('hands the user\'s allowed variables to the starter\'s session as quoted exports, owner-only', () => {
    expect(file(`${DIR}/userenv`).content).toBe("export OMP_NUM_THREADS=4\n");
  });

  it('reports the user variables it kept out', () => {
    expect(plan.dropped).toEqual(['LD_PRELOAD', 'HOME', 'USER', 'MULTI', 'JOBBOX_HOSTFILE']);
  });

  it('runs one container per host, in job order', () => {
    expect(plan.runs.map((r) => r.host)).toEqual(['node1', 'node2', 'node3']);
  });

  it('gives every host the same argv but for --cpus, --memory, memlock and devices', () => {
    const PER_HOST = new Set(['--cpus', '--memory', '--ulimit', '--device']);
    const perHost = (argv: string[]) => argv.flatMap((a, i) => (PER_HOST.has(a) ? [`${a} ${argv[i + 1]}`] : []));
    const common = (argv: string[]) => argv.filter((a, i) => !PER_HOST.has(a) && !PER_HOST.has(argv[i - 1] ?? ''));
    const [first, ...rest] = plan.runs.map((r) => r.argv);
    for (const argv of rest) expect(common(argv)).toEqual(common(first!));
    const dev = (d: string) => `--device /dev/infiniband/${d}:/dev/infiniband/${d}`;
    expect(plan.runs.map((r) => perHost(r.argv))).toEqual([
      [dev('rdma_cm'), dev('uverbs0'), '--cpus 2', `--memory ${2 * 1024 ** 3}`, `--ulimit memlock=${2 * 1024 ** 3}:${2 * 1024 ** 3}`],
      [dev('rdma_cm'), dev('uverbs0'), dev('uverbs1'), '--cpus 2', `--memory ${2 * 1024 ** 3}`, `--ulimit memlock=${2 * 1024 ** 3}:${2 * 1024 ** 3}`],
      ['--cpus 1', `--memory ${1024 ** 3}`, `--ulimit memlock=${1024 ** 3}:${1024 ** 3}`],
    ]);
  });

  it('plans these docker runs', () => {
    expect(plan.runs).toMatchSnapshot();
  });
});
