import { describe, it, expect } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig, type Config } from '../../src/config/parse.js';
import type { Host, Job, Owner } from '../../src/job/job.js';
import {
  attemptFilters, cgroupClear, containerCwd, containerName, gresDevices, imageAccountsArgv, matchDevices, memoryLimit, missingGpus, nameArgv, psArgv, runningArgv,
  removeArgv, runArgv, splitHeadOutput, type NodeFacts,
} from '../../src/plan/container.js';
import { jobPaths } from '../../src/plan/job-files.js';
import { dialect } from '../../src/plan/engine.js';
import { EXIT, JobboxError } from '../../src/errors.js';

const REF = 'registry.example.org/hpc/deb12:latest';

/** A config with one queue "normal" and one image "deb12"; extra lines go into each section. */
function config(queue = '', image = '', jobbox = ''): Config {
  return parseConfig(
    `[jobbox]\nstate_dir = /var/lib/jobbox/jobs\n${jobbox}\n` +
      `[queue normal]\ndefault_image = deb12\n${queue}\n` +
      `[image deb12]\nref = ${REF}\n${image}\n`,
    'test.ini',
  );
}

const alice: Owner = { name: 'alice', uid: 1000, gid: 1000, gids: [27, 44], home: '/home/alice', shell: '/bin/bash' };

const JOB: Job = {
  id: '4711',
  index: 0,
  attempt: 'node1',
  queue: 'normal',
  owner: alice,
  cwd: '/home/alice/run',
  hosts: [{ name: 'node1', slots: 2 }, { name: 'node2', slots: 2 }, { name: 'node3', slots: 1 }],
  image: 'deb12',
  env: { OMP_NUM_THREADS: '4' },
};

const PATHS = jobPaths('/var/lib/jobbox/jobs', JOB);
const DIR = '/var/lib/jobbox/jobs/4711.0.node1';
const IB = ['issm0', 'rdma_cm', 'umad0', 'uverbs0', 'uverbs1'];

function argvFor(c: Config, opts: { job?: Partial<Job>; host?: Host; facts?: NodeFacts } = {}): string[] {
  return runArgv(c, { ...JOB, ...opts.job }, opts.host ?? { name: 'node1', slots: 2 }, c.images.get('deb12')!, PATHS, opts.facts ?? { devices: IB }, '0123456789abcdef');
}

/** Every value that follows `flag` in argv, in order. */
function values(argv: string[], flag: string): string[] {
  return argv.flatMap((a, i) => (a === flag ? [argv[i + 1]!] : []));
}

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const memlock = (bytes: number) => `memlock=${bytes}:${bytes}`;

const mount = (source: string, target: string, ro: boolean) => `type=bind,source=${source},target=${target}${ro ? ',readonly' : ''}`;
const JOB_MOUNTS = [
  mount(DIR, DIR, true),
  mount(`${DIR}/passwd`, '/etc/passwd', true),
  mount(`${DIR}/group`, '/etc/group', true),
  mount(`${DIR}/ssh_config`, '/etc/ssh/ssh_config', true),
];
const dev = (name: string, dir = '/dev/infiniband') => `${dir}/${name}:/dev/infiniband/${name}`;

interface Row {
  queue?: string;
  image?: string;
  jobbox?: string;
  job?: Partial<Job>;
  host?: Host;
  facts?: NodeFacts;
  /** flag → every value expected after it ([] = the flag is absent). */
  expect: Record<string, string[]>;
}

const ROWS: [string, Row][] = [
  ['cpus = slots limits to the host slots', { host: { name: 'node1', slots: 4 }, expect: { '--cpus': ['4'] } }],
  ['cpus = none sets no CPU limit', { queue: 'cpus = none', host: { name: 'node1', slots: 4 }, expect: { '--cpus': [] } }],
  ['memory = none sets no limit', { queue: 'memory = none\nmemlock = 64m', expect: { '--memory': [] } }],
  ['memory as a total ignores slots', { queue: 'memory = 4g', host: { name: 'node1', slots: 3 }, expect: { '--memory': [String(4 * GiB)] } }],
  ['memory per slot times the host slots', { queue: 'memory = 3g/slot', host: { name: 'node1', slots: 3 }, expect: { '--memory': [String(9 * GiB)] } }],
  ['memory 2g per slot by default', { host: { name: 'node1', slots: 3 }, expect: { '--memory': [String(6 * GiB)] } }],
  // memlock never above the container's memory limit on the node.
  ['memlock by default: the memory limit', { host: { name: 'node1', slots: 3 }, expect: { '--ulimit': [memlock(6 * GiB)] } }],
  ['memlock unlimited, one slot: the memory of one slot', { queue: 'memory = 1g/slot\nmemlock = unlimited', host: { name: 'node3', slots: 1 }, expect: { '--ulimit': [memlock(GiB)] } }],
  ['memlock unlimited, total memory', { queue: 'memory = 5g', expect: { '--ulimit': [memlock(5 * GiB)] } }],
  ['memlock a size below the memory limit', { queue: 'memlock = 64m', expect: { '--ulimit': [memlock(64 * MiB)] } }],
  ['memlock a size above the memory limit: the memory limit', { queue: 'memory = 6m/slot\nmemlock = 8192k', host: { name: 'node3', slots: 1 }, expect: { '--ulimit': [memlock(6 * MiB)] } }],
  ['memlock a size equal to the memory limit', { queue: 'memory = 4m/slot\nmemlock = 8m', expect: { '--ulimit': [memlock(8 * MiB)] } }],
  ['memlock a size, memory none', { queue: 'memory = none\nmemlock = 64m', expect: { '--ulimit': [memlock(64 * MiB)], '--memory': [] } }],
  ['pids limit 4096 by default', { expect: { '--pids-limit': ['4096'] } }],
  ['pids limit from the queue', { queue: 'pids_limit = 200', expect: { '--pids-limit': ['200'] } }],
  ['shm_size', { queue: 'shm_size = 1g', expect: { '--shm-size': [String(1024 ** 3)] } }],
  ['each supplementary gid is added', { expect: { '--group-add': ['27', '44'] } }],
  ['no supplementary gids', { job: { owner: { ...alice, gids: [] } }, expect: { '--group-add': [] } }],
  ['default devices: uverbs* and rdma_cm, never umad/issm', { expect: { '--device': [dev('rdma_cm'), dev('uverbs0'), dev('uverbs1')] } }],
  ['devices narrowed by the queue', { queue: 'devices = uverbs0', expect: { '--device': [dev('uverbs0')] } }],
  ['node without InfiniBand', { facts: { devices: [] }, expect: { '--device': [] } }],
  ['node with only management devices', { facts: { devices: ['umad0', 'issm0', 'umad1'] }, expect: { '--device': [] } }],
  ['device_dir elsewhere on the host, same path inside', { jobbox: 'device_dir = /dev/ib', facts: { devices: ['uverbs0'] }, expect: { '--device': [dev('uverbs0', '/dev/ib')] } }],
  ['only the job files are mounted by default', { expect: { '--mount': JOB_MOUNTS } }],
  [
    'queue then image mounts, readonly only where asked',
    {
      queue: 'mounts = /scratch /apps:/opt/apps:ro /data:rw',
      image: 'mounts = /etc/hosts.equiv:ro',
      expect: {
        '--mount': [
          ...JOB_MOUNTS,
          mount('/scratch', '/scratch', false),
          mount('/apps', '/opt/apps', true),
          mount('/data', '/data', false),
          mount('/etc/hosts.equiv', '/etc/hosts.equiv', true),
        ],
      },
    },
  ],
  ['the account, never root', { expect: { '--user': ['1000:1000'], '--workdir': ['/home/alice'] } }],
  ['the job files', { expect: { '--env-file': [`${DIR}/env`], '--name': ['jobbox-4711'] } }],
  [
    'labels name the job attempt and owner',
    { job: { index: 3, attempt: 'node7' }, expect: { '--label': ['org.jobbox.job=4711', 'org.jobbox.index=3', 'org.jobbox.attempt=node7', 'org.jobbox.nonce=0123456789abcdef', 'org.jobbox.owner=alice'], '--name': ['jobbox-4711-3'] } },
  ],
  [
    'user data never becomes a flag',
    { job: { image: '--privileged', cwd: '--privileged', env: { X: '--privileged', '--privileged': 'x' } }, expect: { '--privileged': [] } },
  ],
];

const FORBIDDEN = ['--privileged', '--cap-add', '--pid', '--ipc', '--userns', '--entrypoint', '--runtime', '-v', '--volume', '--network', '--uts', '--device-cgroup-rule', '--rm'];

describe('runArgv', () => {
  it.each(ROWS)('%s', (_name, row) => {
    const argv = argvFor(config(row.queue, row.image, row.jobbox), row);
    for (const [flag, expected] of Object.entries(row.expect)) expect(values(argv, flag)).toEqual(expected);
  });

  it.each(ROWS)('keeps the fixed security flags: %s', (_name, row) => {
    const argv = argvFor(config(row.queue, row.image, row.jobbox), row);
    expect(argv.slice(0, 3)).toEqual(['run', '--detach', '--init']);
    expect(argv.filter((a) => a === '--net=host')).toHaveLength(1);
    expect(values(argv, '--cap-drop')).toEqual(['ALL']);
    expect(values(argv, '--security-opt')).toEqual(['no-new-privileges']);
    expect(values(argv, '--user')).toEqual([`${row.job?.owner?.uid ?? 1000}:${row.job?.owner?.gid ?? 1000}`]);
    // The entrypoint is sshd, whatever the image says, and the image ref is the first
    // positional: sshd's arguments follow, nothing else.
    expect(argv.slice(-7)).toEqual(['/usr/sbin/sshd', REF, '-D', '-e', '-f', `${DIR}/sshd_config`].reduce<string[]>((a, w, i) => (i === 0 ? ['--entrypoint', w] : [...a, w]), []));
    expect(values(argv, '--entrypoint')).toEqual(['/usr/sbin/sshd']);
    expect(argv.indexOf(REF)).toBe(argv.length - 5);
    // A run never pulls: pulls go through the node's lock (lifecycle/node.ts).
    expect(values(argv, '--pull')).toEqual(['never']);
  });

  it.each(ROWS)('always limits pids, and memlock to at most the memory limit: %s', (_name, row) => {
    const argv = argvFor(config(row.queue, row.image, row.jobbox), row);
    expect(values(argv, '--pids-limit')).toHaveLength(1);
    expect(Number(values(argv, '--pids-limit')[0])).toBeGreaterThanOrEqual(64);
    const [ulimit, ...more] = values(argv, '--ulimit');
    expect(more).toEqual([]);
    expect(ulimit).toMatch(/^memlock=\d+:\d+$/);
    const [, soft, hard] = /^memlock=(\d+):(\d+)$/.exec(ulimit ?? '') ?? [];
    expect(soft).toBe(hard);
    for (const memory of values(argv, '--memory')) expect(Number(soft)).toBeLessThanOrEqual(Number(memory));
  });

  it('Podman: the node\'s hard nofile and nproc besides memlock (its own defaults may exceed them), conmon outside the job\'s cgroup; Docker: memlock only', () => {
    const limits = { nofile: 20000, nproc: 96367, pidMax: 32768 };
    const podman = argvFor(config('', '', 'engine = /usr/bin/podman'), { facts: { devices: IB, limits } });
    expect(values(podman, '--ulimit')).toEqual([expect.stringMatching(/^memlock=/), 'nofile=20000:20000', 'nproc=32768:32768']);
    // Its monitor stays out of the job's cgroup, as Docker's shim does; no proxy variables of
    // root's, no healthcheck timers of root's.
    expect(podman).toEqual(expect.arrayContaining(['--cgroups=no-conmon', '--http-proxy=false', '--no-healthcheck']));
    // Everything else is the same run line.
    const docker = argvFor(config(), { facts: { devices: IB, limits } });
    expect(values(docker, '--ulimit')).toEqual([expect.stringMatching(/^memlock=/)]);
    expect(podman.filter((a) => !/^(?:nofile|nproc)=|^--(?:cgroups=|http-proxy=|no-healthcheck)/.test(a)).join(' ').replace(/ --ulimit --ulimit/, '')).toBe(docker.join(' '));
  });

  it.each(ROWS)('never carries a forbidden flag: %s', (_name, row) => {
    const argv = argvFor(config(row.queue, row.image, row.jobbox), row);
    for (const arg of argv.slice(0, -7)) {
      for (const flag of FORBIDDEN) {
        expect(arg === flag || arg.startsWith(`${flag}=`), `${arg} is ${flag}`).toBe(false);
      }
    }
  });

  it('takes nothing from what the user controls: image name, cwd, environment', () => {
    const image = 'evil.example.org/x:1';
    const cwd = '/home/alice/--privileged';
    const flag = '--volume=/:/host';
    const argv = argvFor(config(), { job: { image, cwd, env: { A: flag, LD_PRELOAD: '/tmp/x.so', [flag]: 'x' } } });
    for (const value of [image, cwd, flag, '/tmp/x.so']) expect(argv.some((a) => a.includes(value))).toBe(false);
  });
});

describe('containerName', () => {
  it.each([
    [0, 'jobbox-4711'],
    [1, 'jobbox-4711-1'],
    [250, 'jobbox-4711-250'],
  ])('index %i → %s', (index, name) => {
    expect(containerName({ id: '4711', index })).toBe(name);
  });
});

describe('attemptFilters', () => {
  it('selects job, index and attempt', () => {
    expect(attemptFilters({ id: '4711', index: 2, attempt: 'node1' })).toEqual([
      '--filter', 'label=org.jobbox.job=4711',
      '--filter', 'label=org.jobbox.index=2',
      '--filter', 'label=org.jobbox.attempt=node1',
    ]);
  });
});

describe('matchDevices', () => {
  it.each([
    ['default globs', ['uverbs*', 'rdma_cm'], IB, ['rdma_cm', 'uverbs0', 'uverbs1']],
    ['sorted whatever the node order', ['uverbs*', 'rdma_cm'], ['uverbs1', 'rdma_cm', 'uverbs0'], ['rdma_cm', 'uverbs0', 'uverbs1']],
    ['exact name', ['uverbs1'], IB, ['uverbs1']],
    ['? is one character', ['uverbs?'], ['uverbs1', 'uverbs10', 'uverbs'], ['uverbs1']],
    ['* may be empty', ['uverbs*'], ['uverbs', 'uverbs12'], ['uverbs', 'uverbs12']],
    ['anchored at both ends', ['rdma_cm'], ['rdma_cm0', 'xrdma_cm', 'rdma_cm'], ['rdma_cm']],
    ['regex characters are literal', ['rdma.cm'], ['rdma_cm', 'rdmaXcm'], []],
    ['no globs', [], IB, []],
    ['no devices', ['uverbs*', 'rdma_cm'], [], []],
    ['management devices never', ['uverbs*', 'rdma_cm'], ['umad0', 'umad1', 'issm0', 'issm1'], []],
  ])('%s', (_name, globs, available, expected) => {
    expect(matchDevices(available, globs)).toEqual(expected);
  });

  it.each(['umad*', 'issm*', '*', 'umad0', '?mad0', 'uverbs0/../umad0'])('the config refuses the glob %s', (glob) => {
    expect(() => config(`devices = ${glob}`)).toThrow('jobbox: config [queue normal] devices: each must be "rdma_cm" or a glob');
  });
});

describe('memoryLimit', () => {
  it.each([
    ['none', 'memory = none\nmemlock = 64m', 4, undefined],
    ['default: 2g per slot', '', 4, 8 * 1024 ** 3],
    ['total', 'memory = 3g', 4, 3 * 1024 ** 3],
    ['total, one slot', 'memory = 3g', 1, 3 * 1024 ** 3],
    ['per slot', 'memory = 512m/slot', 4, 2 * 1024 ** 3],
    ['per slot, one slot', 'memory = 512m/slot', 1, 512 * 1024 ** 2],
  ])('%s', (_name, line, slots, bytes) => {
    expect(memoryLimit(config(line).queues.get('normal')!, slots)).toBe(bytes);
  });
});

describe('containerCwd', () => {
  const mounts = [
    { source: '/scratch', target: '/scratch', readOnly: false },
    { source: '/apps', target: '/opt/apps', readOnly: true },
    { source: '/home', target: '/home', readOnly: false },
  ];
  it.each([
    ['under a same-path mount', '/scratch/alice/run', mounts, '/scratch/alice/run'],
    ['the mount point itself', '/scratch', mounts, '/scratch'],
    ['home mounted', '/home/alice/run', mounts, '/home/alice/run'],
    ['home not mounted', '/home/alice/run', mounts.slice(0, 2), '/home/alice'],
    ['a sibling with the same prefix', '/scratchy/run', mounts, '/home/alice'],
    ['mounted elsewhere inside (source)', '/apps/bin', mounts, '/home/alice'],
    ['mounted elsewhere inside (target)', '/opt/apps/bin', mounts, '/home/alice'],
    ['no mounts', '/scratch/alice', [], '/home/alice'],
    ['not mounted at all', '/tmp', mounts, '/home/alice'],
    ['.. leaves the mount', '/scratch/../etc', mounts, '/home/alice'],
    ['. is not normalized', '/scratch/./run', mounts, '/home/alice'],
    ['relative', 'scratch/run', mounts, '/home/alice'],
  ])('%s: %s', (_name, cwd, ms, expected) => {
    expect(containerCwd({ ...JOB, cwd }, ms)).toBe(expected);
  });
});

describe('splitHeadOutput', () => {
  it('splits the output of a real head on several files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobbox-head-'));
    try {
      const passwd = 'root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n';
      const group = 'root:x:0:\nusers:x:100:\n';
      writeFileSync(join(dir, 'passwd'), passwd);
      writeFileSync(join(dir, 'group'), group);
      const out = execFileSync('head', ['-n', '1000000', join(dir, 'passwd'), join(dir, 'group')], { encoding: 'utf8' });
      const files = splitHeadOutput(out);
      expect([...files.keys()]).toEqual([join(dir, 'passwd'), join(dir, 'group')]);
      // head puts a blank line between files; the readers skip blank lines.
      expect(files.get(join(dir, 'passwd'))?.trimEnd()).toBe(passwd.trimEnd());
      expect(files.get(join(dir, 'group'))?.trimEnd()).toBe(group.trimEnd());
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['headers with paths', '==> /etc/passwd <==\na\nb\n\n==> /etc/group <==\nc\n', { '/etc/passwd': 'a\nb\n\n', '/etc/group': 'c\n\n' }],
    ['an empty file', '==> /etc/passwd <==\n\n==> /etc/group <==\nc\n', { '/etc/passwd': '\n', '/etc/group': 'c\n\n' }],
    ['text before any header is ignored', 'noise\n==> /etc/group <==\nc', { '/etc/group': 'c\n' }],
    ['no header at all', 'root:x:0:0::/root:/bin/sh\n', {}],
    ['nothing', '', {}],
  ])('%s', (_name, text, expected) => {
    expect(Object.fromEntries(splitHeadOutput(text))).toEqual(expected);
  });
});

describe('argv of the other docker commands', () => {
  it('nameArgv finds any container holding the name, with its state, attempt and nonce', () => {
    expect(nameArgv(dialect('docker'), JOB)).toEqual([
      'ps', '--all', '--filter', 'name=^jobbox-4711$', '--format', '{{.ID}} {{.State}} {{.Label "org.jobbox.attempt"}} {{.Label "org.jobbox.nonce"}}',
    ]);
    expect(nameArgv(dialect('docker'), { ...JOB, index: 5 })).toContain('name=^jobbox-4711-5$');
    // Podman's rows: labels from the map, the state as inspect says it.
    expect(nameArgv(dialect('/usr/bin/podman'), JOB).at(-1)).toBe('{{.ID}} {{.ListContainer.State}} {{index .Labels "org.jobbox.attempt"}} {{index .Labels "org.jobbox.nonce"}}');
  });

  it('runningArgv asks whether the job container still runs', () => {
    expect(runningArgv(JOB)).toEqual(['inspect', '--format', '{{.State.Running}} {{.State.OOMKilled}}', 'jobbox-4711']);
  });

  it('psArgv lists only this attempt', () => {
    expect(psArgv(JOB)).toEqual([
      'ps', '--all', '--quiet',
      '--filter', 'label=org.jobbox.job=4711', '--filter', 'label=org.jobbox.index=0', '--filter', 'label=org.jobbox.attempt=node1',
    ]);
  });

  it.each([
    [['abc'], ['rm', '--force', '--volumes', 'abc']],
    [['abc', 'def'], ['rm', '--force', '--volumes', 'abc', 'def']],
  ])('removeArgv %j', (ids, argv) => {
    expect(removeArgv(dialect('docker'), ids)).toEqual(argv);
  });

  it('removeArgv: Podman removes at once, not after its stop timeout', () => {
    expect(removeArgv(dialect('podman'), ['abc'])).toEqual(['rm', '--force', '--time', '0', '--volumes', 'abc']);
  });

  it('imageAccountsArgv reads the files and the sshd release as nobody, offline and unprivileged', () => {
    const image = config().images.get('deb12')!;
    expect(imageAccountsArgv(image, 'jobbox-check-1')).toEqual([
      'run', '--rm', '--name', 'jobbox-check-1', '--label', 'org.jobbox.check=image',
      '--net=none', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '--user', '65534:65534',
      '--pids-limit', '64', '--memory', '256m', '--cpus', '1', '--workdir', '/', '--env', 'NVIDIA_VISIBLE_DEVICES=void', '--pull', 'never',
      '--entrypoint', '/bin/sh', REF, '-c', 'head -n 1000000 /etc/passwd /etc/group || exit; echo; echo "==> /usr/sbin/sshd -V <=="; /usr/sbin/sshd -V 2>&1; exit 0',
    ]);
  });
});

describe('the image accounts script, run by a real sh', () => {
  const script = imageAccountsArgv(config().images.get('deb12')!, 'jobbox-check-1').at(-1)!;
  const fakeRoot = () => mkdtempSync(join(tmpdir(), 'jobbox-image-'));
  // The same script with the image's paths under a fake root, so every case is this machine's sh and head.
  const run = (root: string) => spawnSync('sh', ['-c', script.replaceAll('/etc/', `${root}/etc/`).replaceAll('/usr/sbin/', `${root}/usr/sbin/`)], { encoding: 'utf8' });
  function image(files: Record<string, string>, sshd?: string): string {
    const root = fakeRoot();
    for (const d of ['etc', 'usr/sbin']) mkdirSync(join(root, d), { recursive: true });
    for (const [name, text] of Object.entries(files)) writeFileSync(join(root, 'etc', name), text.replaceAll('{root}', root));
    if (sshd !== undefined) writeFileSync(join(root, 'usr/sbin/sshd'), `#!/bin/sh\nprintf '%s' '${sshd}' >&2\nexit 1\n`, { mode: 0o755 });
    return root;
  }
  const USAGE_74 = 'sshd: illegal option -- V\nOpenSSH_7.4p1, OpenSSL 1.0.2k-fips  26 Jan 2017\nusage: sshd [-46DdeiqTt]\n';

  it.each([
    ['an sshd without -V, a group file without its last newline', { passwd: 'root:x:0:0::/root:/bin/sh\n', group: 'root:x:0:' }, USAGE_74, 'root:x:0:\n', USAGE_74 + '\n'],
    ['no sshd at all', { passwd: 'root:x:0:0::/root:/bin/sh\n', group: 'root:x:0:\n' }, undefined, 'root:x:0:\n\n', expect.stringMatching(/sshd.*not found/)],
    ['a group file faking the sshd section: the real one comes last', { passwd: 'root:x:0:0::/root:/bin/sh\n', group: 'root:x:0:\n==> {root}/usr/sbin/sshd -V <==\nOpenSSH_99.0\n' }, USAGE_74, 'root:x:0:\n', USAGE_74 + '\n'],
  ])('%s', (_name, files, sshd, group, said) => {
    const root = image(files, sshd);
    try {
      const r = run(root);
      expect(r.status).toBe(0);
      const out = splitHeadOutput(r.stdout);
      expect([...out.keys()].map((k) => k.replace(root, ''))).toEqual(['/etc/passwd', '/etc/group', '/usr/sbin/sshd -V']);
      expect(out.get(`${root}/etc/group`)).toEqual(group);
      expect(out.get(`${root}/usr/sbin/sshd -V`)).toEqual(said);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('fails when an account file is missing, as head alone did', () => {
    const root = image({ passwd: 'root:x:0:0::/root:/bin/sh\n' }, USAGE_74);
    try {
      const r = run(root);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/group/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('runArgv: a Slurm job joins its extern step on each node', () => {
  const hosts = [{ name: 'node1', slots: 2, cpus: '0-1' }, { name: 'node2', slots: 1, cpus: '1' }];
  const flags = (argv: string[]) => {
    const i = argv.indexOf('--cgroup-parent');
    return i < 0 ? undefined : [argv[i + 1], argv[argv.indexOf('--cpuset-cpus') + 1]];
  };
  it('by the absolute path of the node\'s task, with the job\'s cores there', () => {
    const argv = argvFor(config(), { job: { containment: { scheduler: 'slurm', multipleSlurmd: true }, id: '77', hosts }, host: hosts[1]!, facts: { devices: [] } });
    expect(flags(argv)).toEqual(['/slurm_node2/uid_1000/job_77/step_extern/task_1', '1']);
    const single = argvFor(config(), { job: { containment: { scheduler: 'slurm', multipleSlurmd: false }, id: '77', hosts }, host: hosts[0]!, facts: { devices: [] } });
    expect(flags(single)).toEqual(['/slurm/uid_1000/job_77/step_extern/task_0', '0-1']);
  });

  it('not for a job without containment', () => {
    expect(flags(argvFor(config(), { job: { hosts } }))).toBeUndefined();
  });
});

describe('runArgv: GPUs', () => {
  it('never lets NVIDIA\'s container runtime give GPUs by the image\'s NVIDIA_VISIBLE_DEVICES', () => {
    for (const c of [config(), config('gpus = allocated')]) expect(values(argvFor(c), '--env')).toEqual(['NVIDIA_VISIBLE_DEVICES=void']);
  });

  const GPU_QUEUE = 'gpus = allocated\ngpu_mounts = /usr/bin/nvidia-smi /opt/driver';
  const facts: NodeFacts = { devices: [], gpuDevices: ['nvidia0', 'nvidia1', 'nvidia2', 'nvidia3', 'nvidiactl', 'nvidia-uvm', 'nvidia-caps'], gpuMounts: ['/opt/driver'] };
  const host: Host = { name: 'node2', slots: 2, gpus: [1, 3] };
  const sshdTail = (argv: string[]) => argv.slice(argv.indexOf('/usr/sbin/sshd') + 2);

  it('passes the node\'s allocated GPUs under their own names, the control devices it has, and the driver files it has, read-only', () => {
    const argv = argvFor(config(GPU_QUEUE, '', 'gpu_dir = /dev/gpus'), { host, facts });
    expect(values(argv, '--device')).toEqual(['/dev/gpus/nvidia1:/dev/nvidia1', '/dev/gpus/nvidia3:/dev/nvidia3', '/dev/gpus/nvidia-uvm:/dev/nvidia-uvm', '/dev/gpus/nvidiactl:/dev/nvidiactl']);
    expect(values(argv, '--mount')).toContain(mount('/opt/driver', '/opt/driver', true));
    expect(values(argv, '--mount').join(' ')).not.toContain('nvidia-smi');
  });

  it('numbers them from 0 inside, for the container and for every session of its sshd', () => {
    const argv = argvFor(config(GPU_QUEUE), { host, facts });
    expect(values(argv, '--env')).toEqual(['CUDA_VISIBLE_DEVICES=0,1', 'NVIDIA_VISIBLE_DEVICES=void']);
    expect(sshdTail(argv)).toEqual(['-D', '-e', '-f', `${DIR}/sshd_config`, '-o', `SetEnv=JOBBOX_HOSTFILE=${DIR}/hostfile OMPI_MCA_orte_default_hostfile=${DIR}/hostfile HYDRA_HOST_FILE=${DIR}/hostfile.mpich CUDA_VISIBLE_DEVICES=0,1`]);
  });

  it('passes nothing of GPUs to a node without any, or in a queue that passes none', () => {
    for (const argv of [argvFor(config(GPU_QUEUE), { host: { name: 'node1', slots: 2 }, facts }), argvFor(config(), { host, facts })]) {
      expect(argv.join(' ').replace('NVIDIA_VISIBLE_DEVICES=void', '')).not.toMatch(/nvidia|NVIDIA|CUDA/);
      expect(sshdTail(argv)).toEqual(['-D', '-e', '-f', `${DIR}/sshd_config`]);
    }
  });

  it('turns a Slurm node\'s GRES indices into the devices slurmd names for them', () => {
    const c = config(GPU_QUEUE, '', 'gpu_dir = /dev');
    expect(gresDevices(c, 'node2', [0, 2], [{ count: 3, index: 0, file: '/dev/nvidia[1-3]' }])).toEqual([1, 3]);
    expect(gresDevices(c, 'node2', [1], [{ count: 1, index: 0, file: '/dev/nvidia2' }, { count: 1, index: 1, file: '/dev/nvidia0' }])).toEqual([0]);
    // slurmd said nothing: index n is nvidia<n>.
    expect(gresDevices(c, 'node2', [1], undefined)).toEqual([1]);
  });

  it.each([
    ['a MIG slice', [{ count: 1, index: 3, file: '/dev/nvidia-caps/nvidia-cap21' }], '/dev/nvidia-caps/nvidia-cap21'],
    ['a file outside gpu_dir', [{ count: 1, index: 3, file: '/opt/dev/nvidia3' }], '/opt/dev/nvidia3'],
    ['an index slurmd does not name', [{ count: 1, index: 0, file: '/dev/nvidia0' }], 'no file in slurmd -G'],
  ])('refuses a GRES index that is %s, for good', (_name, records, value) => {
    expect(() => gresDevices(config(GPU_QUEUE), 'node2', [3], records)).toThrow(new JobboxError('node2: gpu', 'GRES index 3 is not a GPU in /dev (MIG slices are not passed)', value, EXIT.permanent));
  });

  it('finds an allocated GPU the node lacks', () => {
    const queue = config(GPU_QUEUE).queues.get('normal')!;
    expect(missingGpus(queue, { ...host, gpus: [1, 4] }, facts.gpuDevices!)).toEqual(['nvidia4']);
    expect(missingGpus(config().queues.get('normal')!, { ...host, gpus: [4] }, [])).toEqual([]);
  });
});

describe('runArgv: an LSF job\'s containers go into per-job cgroups', () => {
  const hosts = [{ name: 'node1', slots: 2, cpus: '1' }, { name: 'node2', slots: 1 }];
  const nest = { path: '/lsf/c1/job.77.0.1700000000', controllers: ['memory', 'cpuacct', 'freezer', 'cpuset'] };
  const at = (argv: string[], flag: string) => (argv.includes(flag) ? argv[argv.indexOf(flag) + 1] : undefined);
  const run = (containment: NonNullable<Job['containment']>, host: number) =>
    argvFor(config(), { job: { containment, id: '77', attempt: 'node1', hosts }, host: hosts[host]!, facts: { devices: [] } });

  it('nested in LSF\'s job cgroup on the first host, bound where LSF bound the job; jobbox\'s own elsewhere, unbound', () => {
    const first = run({ scheduler: 'lsf', nest }, 0);
    expect([at(first, '--cgroup-parent'), at(first, '--cpuset-cpus')]).toEqual([nest.path, '1']);
    const other = run({ scheduler: 'lsf', nest }, 1);
    expect([at(other, '--cgroup-parent'), at(other, '--cpuset-cpus')]).toEqual(['/jobbox/77.0.node1', undefined]);
  });

  it('under jobbox\'s own on every host when the hooks run in no LSF job cgroup', () => {
    expect(at(run({ scheduler: 'lsf' }, 0), '--cgroup-parent')).toBe('/jobbox/77.0.node1');
  });

  it('a teardown clears jobbox\'s own everywhere, and below LSF\'s only in the hierarchies LSF did not make', () => {
    const job: Job = { ...JOB, id: '77', attempt: 'node1', hosts };
    expect(cgroupClear({ ...job, containment: { scheduler: 'lsf', nest } }, 'node1')).toEqual({ dirs: [nest.path.slice(1)], keep: nest.controllers });
    expect(cgroupClear({ ...job, containment: { scheduler: 'lsf', nest } }, 'node2')).toEqual({ dirs: ['jobbox/77.0.node1'], keep: [] });
    expect(cgroupClear({ ...job, containment: { scheduler: 'lsf' } }, 'node1')).toEqual({ dirs: ['jobbox/77.0.node1'], keep: [] });
    expect(cgroupClear({ ...job, containment: { scheduler: 'slurm', multipleSlurmd: true } }, 'node2')).toEqual({ dirs: ['slurm/uid_1000/job_77', 'slurm_node2/uid_1000/job_77'], keep: [] });
    expect(cgroupClear(job, 'node1')).toBeUndefined();
  });
});
