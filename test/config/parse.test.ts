import { describe, it, expect } from 'vitest';
import { readFileSync } from 'node:fs';
import { parseConfig } from '../../src/config/parse.js';

const MINIMAL = `
[queue normal]
default_image = deb12

[image deb12]
ref = registry.example.org/hpc/deb12:latest
`;

const FULL = `
; every key set to something other than its default
[jobbox]
engine = /usr/local/bin/podman
registry = registry.example.org:5000
port_range = 41000-41010
port_dir = /srv/jobbox/ports
state_dir = /srv/jobbox/jobs
log_file = /srv/log/jobbox.log
log_level = debug
ssh_user = jobbox
ssh_key = /etc/jobbox/key
ssh_known_hosts = /etc/jobbox/known
ssh_port = 2222
connect_timeout = 2.5
start_timeout = 30
pull_timeout = 1200
pull_policy = always
insecure_registries = registry.example.org:5000 localhost:5000
fanout = 8
device_dir = /dev/ib
gpu_dir = /dev/gpus
default_queue = short
bpost = /opt/lsf/10.1/linux3.10-glibc2.17-x86_64/bin/bpost
bjobs = /opt/lsf/10.1/linux3.10-glibc2.17-x86_64/bin/bjobs
metrics_dir = /var/lib/prometheus/node-exporter

[queue short]
default_image = deb12-mpich
allowed_images = deb12-mpich   deb12
allowed_repos = registry.example.org:5000/projects/* registry.example.org:5000/tools/app
pin_at_submit = yes
mounts = /scratch /apps:/opt/apps:ro /data:rw
devices = uverbs0 uverbs? rdma_cm
gpus = allocated
gpu_devices = nvidiactl nvidia-uvm*
gpu_mounts = /usr/bin/nvidia-smi /usr/lib/x86_64-linux-gnu/libcuda.so.1 /usr/bin/nvidia-smi
cpus = none
memory = 3G/slot
shm_size = 1g
memlock = 512m
pids_limit = 1024

[queue long]
default_image = deb12

[image deb12]
ref = hpc/deb12:latest

[image deb12-mpich]
ref = localhost/mpich@sha256:0123abcd
mounts = /etc/hosts.equiv:ro
env.OMPI_MCA_btl = ^openib
env.QUOTED = "a,b=c;d#e"
env.ESCAPED = x\\;y\\#z
env.TRIMMED = value ; an inline comment
env.FLAG = true
env.EMPTY =
`;

const REPOS_RULE = 'each must be a repository with its registry (reg:5000/path/app), or one ending in /* for every repository below it';

describe('parseConfig', () => {
  it('fills every default', () => {
    const config = parseConfig(MINIMAL, '/etc/jobbox/jobbox.ini');
    expect(config).toEqual({
      engine: 'docker',
      registry: '',
      portRange: { first: 30000, last: 30999 },
      portDir: '/var/lib/jobbox/ports',
      stateDir: '/var/lib/jobbox/jobs',
      logFile: '/var/log/jobbox/jobbox.log',
      logLevel: 'info',
      sshUser: 'root',
      sshKey: '/etc/jobbox/ssh/id_ed25519',
      sshKnownHosts: '/etc/jobbox/ssh/known_hosts',
      sshPort: 22,
      connectTimeoutMs: 10_000,
      startTimeoutMs: 60_000,
      pullTimeoutMs: 600_000,
      pullPolicy: 'missing',
      insecureRegistries: [],
      fanout: 256,
      deviceDir: '/dev/infiniband',
      gpuDir: '/dev',
      defaultQueue: 'normal',
      bpost: '',
      bjobs: '',
      metricsDir: '',
      queues: new Map([
        [
          'normal',
          {
            name: 'normal',
            defaultImage: 'deb12',
            allowedImages: ['deb12'],
            allowedRepos: [],
            pinAtSubmit: false,
            mounts: [],
            devices: ['uverbs*', 'rdma_cm'],
            gpus: 'none',
            gpuDevices: ['nvidiactl', 'nvidia-uvm'],
            gpuMounts: [],
            cpus: 'slots',
            memory: { kind: 'perSlot', bytes: 2 * 1024 ** 3 },
            shmSizeBytes: 64 * 1024 ** 2,
            memlock: 'unlimited',
            pidsLimit: 4096,
          },
        ],
      ]),
      images: new Map([['deb12', { alias: 'deb12', ref: 'registry.example.org/hpc/deb12:latest', mounts: [], env: {} }]]),
    });
  });

  it('reads every key', () => {
    const config = parseConfig(FULL, 'full.ini');
    const { queues, images, ...global } = config;
    expect(global).toEqual({
      engine: '/usr/local/bin/podman',
      registry: 'registry.example.org:5000',
      portRange: { first: 41000, last: 41010 },
      portDir: '/srv/jobbox/ports',
      stateDir: '/srv/jobbox/jobs',
      logFile: '/srv/log/jobbox.log',
      logLevel: 'debug',
      sshUser: 'jobbox',
      sshKey: '/etc/jobbox/key',
      sshKnownHosts: '/etc/jobbox/known',
      sshPort: 2222,
      connectTimeoutMs: 2500,
      startTimeoutMs: 30_000,
      pullTimeoutMs: 1_200_000,
      pullPolicy: 'always',
      insecureRegistries: ['registry.example.org:5000', 'localhost:5000'],
      fanout: 8,
      deviceDir: '/dev/ib',
      gpuDir: '/dev/gpus',
      bpost: '/opt/lsf/10.1/linux3.10-glibc2.17-x86_64/bin/bpost',
      bjobs: '/opt/lsf/10.1/linux3.10-glibc2.17-x86_64/bin/bjobs',
      metricsDir: '/var/lib/prometheus/node-exporter',
      defaultQueue: 'short',
    });
    expect(queues.get('short')).toEqual({
      name: 'short',
      defaultImage: 'deb12-mpich',
      allowedImages: ['deb12-mpich', 'deb12'],
      allowedRepos: ['registry.example.org:5000/projects/*', 'registry.example.org:5000/tools/app'],
      pinAtSubmit: true,
      mounts: [
        { source: '/scratch', target: '/scratch', readOnly: false },
        { source: '/apps', target: '/opt/apps', readOnly: true },
        { source: '/data', target: '/data', readOnly: false },
      ],
      devices: ['uverbs0', 'uverbs?', 'rdma_cm'],
      gpus: 'allocated',
      gpuDevices: ['nvidiactl', 'nvidia-uvm*'],
      gpuMounts: ['/usr/bin/nvidia-smi', '/usr/lib/x86_64-linux-gnu/libcuda.so.1'],
      cpus: 'none',
      memory: { kind: 'perSlot', bytes: 3 * 1024 ** 3 },
      shmSizeBytes: 1024 ** 3,
      memlock: 512 * 1024 ** 2,
      pidsLimit: 1024,
    });
    expect(queues.get('long')?.allowedImages).toEqual(['deb12']);
    expect(images.get('deb12')?.ref).toBe('registry.example.org:5000/hpc/deb12:latest');
    expect(images.get('deb12-mpich')).toEqual({
      alias: 'deb12-mpich',
      ref: 'localhost/mpich@sha256:0123abcd',
      mounts: [{ source: '/etc/hosts.equiv', target: '/etc/hosts.equiv', readOnly: true }],
      env: {
        OMPI_MCA_btl: '^openib',
        QUOTED: 'a,b=c;d#e',
        ESCAPED: 'x;y#z',
        TRIMMED: 'value',
        FLAG: 'true',
        EMPTY: '',
      },
    });
  });

  it('documents every default truly in etc/jobbox.ini.example', () => {
    const example = readFileSync(new URL('../../etc/jobbox.ini.example', import.meta.url), 'utf8');
    const uncommented = example.replace(/^;(?!env\.)(\w+ =.*)$/gm, '$1');
    for (const key of FULL.match(/^\w+(?= =)/gm) ?? []) expect(example).toMatch(new RegExp(`^;?${key} =`, 'm'));
    expect(parseConfig(uncommented, 'example')).toEqual(parseConfig(example, 'example'));
  });

  // What ini@6 does with values, pinned so an upgrade that changes it is noticed.
  it.each([
    ['^openib', '^openib'],
    ['a,b=c', 'a,b=c'],
    ['a;b', 'a'],
    ['a # b', 'a'],
    ['"a;b#c"', 'a;b#c'],
    ["'a;b'", 'a;b'],
    ['a\\;b', 'a;b'],
    ['false', 'false'],
    ['null', 'null'],
    ['"true"', 'true'],
    ['  spaced  ', 'spaced'],
  ])('env value %s reads as %j', (written, value) => {
    const config = parseConfig(`${MINIMAL}env.X = ${written}\n`, 'f');
    expect(config.images.get('deb12')?.env).toEqual({ X: value });
  });

  it('accepts sizes in any case and memory as a total', () => {
    const config = parseConfig(MINIMAL.replace('deb12\n', 'deb12\nmemory = 512M\nshm_size = 1T\n'), 'f');
    expect(config.queues.get('normal')).toMatchObject({ memory: { kind: 'total', bytes: 512 * 1024 ** 2 }, shmSizeBytes: 1024 ** 4 });
  });

  // memlock = unlimited means "up to the memory limit": it needs one.
  it.each([
    ['per-slot memory, memlock by default', 'memory = 1g/slot', { kind: 'perSlot', bytes: 1024 ** 3 }, 'unlimited'],
    ['total memory, memlock unlimited', 'memory = 8g\nmemlock = unlimited', { kind: 'total', bytes: 8 * 1024 ** 3 }, 'unlimited'],
    ['memory none, memlock a size', 'memory = none\nmemlock = 64m', { kind: 'none' }, 64 * 1024 ** 2],
    ['memlock above the memory limit (capped per node by runArgv)', 'memory = 1g\nmemlock = 4g', { kind: 'total', bytes: 1024 ** 3 }, 4 * 1024 ** 3],
  ])('accepts %s', (_name, lines, memory, memlock) => {
    const config = parseConfig(MINIMAL.replace('deb12\n', `deb12\n${lines}\n`), 'f');
    expect(config.queues.get('normal')).toMatchObject({ memory, memlock });
  });

  it.each([
    ['the smallest', '64', 64],
    ['the kernel ceiling of pid_max', '4194304', 4_194_304],
  ])('accepts pids_limit at %s', (_name, value, limit) => {
    expect(parseConfig(MINIMAL.replace('deb12\n', `deb12\npids_limit = ${value}\n`), 'f').queues.get('normal')?.pidsLimit).toBe(limit);
  });

  const q = (lines: string) => MINIMAL.replace('default_image = deb12\n', `default_image = deb12\n${lines}\n`);
  const i = (lines: string) => `${MINIMAL}${lines}\n`;
  const g = (lines: string) => `[jobbox]\n${lines}\n${MINIMAL}`;

  it.each([
    // Structure: what ini would pass over in silence.
    ['key outside a section', `top = 1\n${MINIMAL}`, 'jobbox: config f:1: key outside any section (global keys belong in [jobbox]): top = 1'],
    ['dotted section', `${MINIMAL}[queue a.b]\n`, 'jobbox: config f:7: section names must not contain "." (ini would nest them): [queue a.b]'],
    ['duplicate section', `${MINIMAL}[queue normal]\n`, 'jobbox: config f:7: section [queue normal] appears twice: [queue normal]'],
    ['duplicate key', q('cpus = none\ncpus = slots'), 'jobbox: config f:5: key cpus appears twice in [queue normal]: cpus = slots'],
    ['bare key', q('cpus'), 'jobbox: config f:4: line is neither "[section]" nor "key = value" (a section header must start the line): cpus'],
    ['indented header', `${MINIMAL}  [queue x]\n`, 'jobbox: config f:7: line is neither "[section]" nor "key = value" (a section header must start the line):   [queue x]'],
    ['line without key', q('= slots'), 'jobbox: config f:4: line is neither "[section]" nor "key = value": = slots'],
    ['array key', q('mounts[] = /a'), 'jobbox: config f:4: not a key name ([A-Za-z0-9_.]+, except __proto__): mounts[] = /a'],
    ['__proto__ key', q('__proto__ = x'), 'jobbox: config f:4: not a key name ([A-Za-z0-9_.]+, except __proto__): __proto__ = x'],
    ['unknown section', `${MINIMAL}[queues x]\n`, 'jobbox: config f:7: section must be [jobbox], [queue NAME] (NAME ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$) or [image ALIAS] (ALIAS ^[a-z0-9][a-z0-9_-]{0,63}$): [queues x]'],
    ['bad image alias', `${MINIMAL}[image Deb]\n`, 'jobbox: config f:7: section must be [jobbox], [queue NAME] (NAME ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$) or [image ALIAS] (ALIAS ^[a-z0-9][a-z0-9_-]{0,63}$): [image Deb]'],
    // [jobbox]
    ['unknown global key', g('enigne = docker'), 'jobbox: config [jobbox]: unknown key (allowed: engine registry port_range port_dir state_dir log_file log_level ssh_user ssh_key ssh_known_hosts ssh_port connect_timeout start_timeout pull_timeout pull_policy insecure_registries fanout device_dir gpu_dir default_queue bpost bjobs metrics_dir): enigne'],
    ['engine option', g('engine = -docker'), 'jobbox: config [jobbox] engine: must be a command name or an absolute path of [A-Za-z0-9._/-]: -docker'],
    ['relative engine', g('engine = bin/docker'), 'jobbox: config [jobbox] engine: must be a command name or an absolute path of [A-Za-z0-9._/-]: bin/docker'],
    ['bare registry', g('registry = myregistry'), 'jobbox: config [jobbox] registry: must be empty or a registry host[:port] (lowercase; with a "." or a port, or "localhost"): myregistry'],
    ['empty port range', g('port_range ='), 'jobbox: config [jobbox] port_range: must be first-last with 1024 <= first <= last <= 65535: '],
    ['inverted port range', g('port_range = 41000-40000'), 'jobbox: config [jobbox] port_range: must be first-last with 1024 <= first <= last <= 65535: 41000-40000'],
    ['privileged port', g('port_range = 22-40000'), 'jobbox: config [jobbox] port_range: must be first-last with 1024 <= first <= last <= 65535: 22-40000'],
    ['relative path', g('state_dir = var/lib'), 'jobbox: config [jobbox] state_dir: must be an absolute path without "..", whitespace or control characters: var/lib'],
    ['dotdot path', g('port_dir = /var/../etc'), 'jobbox: config [jobbox] port_dir: must be an absolute path without "..", whitespace or control characters: /var/../etc'],
    ['path with space', g('log_file = "/var/log/a b"'), 'jobbox: config [jobbox] log_file: must be an absolute path without "..", whitespace or control characters: /var/log/a b'],
    ['path with newline', g('ssh_key = "/etc/a\\nb"'), 'jobbox: config [jobbox] ssh_key: must be an absolute path without "..", whitespace or control characters: /etc/a\\nb'],
    ['log level', g('log_level = verbose'), 'jobbox: config [jobbox] log_level: must be one of fatal error warn info debug trace silent: verbose'],
    ['ssh user', g('ssh_user = -oProxy'), 'jobbox: config [jobbox] ssh_user: must be an account name: -oProxy'],
    ['ssh port', g('ssh_port = 70000'), 'jobbox: config [jobbox] ssh_port: must be an integer from 1 to 65535: 70000'],
    ['zero timeout', g('connect_timeout = 0'), 'jobbox: config [jobbox] connect_timeout: must be a positive number of seconds: 0'],
    ['negative timeout', g('pull_timeout = -5'), 'jobbox: config [jobbox] pull_timeout: must be a positive number of seconds: -5'],
    ['boolean timeout', g('start_timeout = true'), 'jobbox: config [jobbox] start_timeout: must be a positive number of seconds: true'],
    ['fanout', g('fanout = 0'), 'jobbox: config [jobbox] fanout: must be an integer from 1 to 4096: 0'],
    ['fanout fraction', g('fanout = 1.5'), 'jobbox: config [jobbox] fanout: must be an integer from 1 to 4096: 1.5'],
    ['relative bpost', g('bpost = bpost'), 'jobbox: config [jobbox] bpost: must be empty, or an absolute path without "..", whitespace or control characters: bpost'],
    ['relative metrics_dir', g('metrics_dir = prom'), 'jobbox: config [jobbox] metrics_dir: must be empty, or an absolute path without "..", whitespace or control characters: prom'],
    ['bpost with an option', g('bpost = "/usr/bin/bpost -i 1"'), 'jobbox: config [jobbox] bpost: must be empty, or an absolute path without "..", whitespace or control characters: /usr/bin/bpost -i 1'],
    ['missing default queue', g('default_queue = short'), 'jobbox: config [jobbox] default_queue: must name a [queue] section (defined: normal): short'],
    ['no queues', '[image a]\nref = r.example/a\n', 'jobbox: config [jobbox] default_queue: must name a [queue] section (defined: none): normal'],
    // [queue]
    ['unknown queue key', q('memroy = 1g'), 'jobbox: config [queue normal]: unknown key (allowed: default_image allowed_images allowed_repos pin_at_submit mounts devices gpus gpu_devices gpu_mounts cpus memory shm_size memlock pids_limit): memroy'],
    ['allowed_repos unqualified', q('allowed_repos = projects/*'), `jobbox: config [queue normal] allowed_repos: ${REPOS_RULE}: projects/*`],
    ['allowed_repos a bare registry', q('allowed_repos = registry.example.org/*'), `jobbox: config [queue normal] allowed_repos: ${REPOS_RULE}: registry.example.org/*`],
    ['allowed_repos a glob inside', q('allowed_repos = registry.example.org/p*/x'), `jobbox: config [queue normal] allowed_repos: ${REPOS_RULE}: registry.example.org/p*/x`],
    ['allowed_repos a tag', q('allowed_repos = registry.example.org/p/x:1'), `jobbox: config [queue normal] allowed_repos: ${REPOS_RULE}: registry.example.org/p/x:1`],
    ['allowed_repos uppercase', q('allowed_repos = registry.example.org/P/*'), `jobbox: config [queue normal] allowed_repos: ${REPOS_RULE}: registry.example.org/P/*`],
    ['pin_at_submit true', q('pin_at_submit = true'), 'jobbox: config [queue normal] pin_at_submit: must be "yes" or "no": true'],
    ['insecure_registries a URL', g('insecure_registries = http://r.example'), 'jobbox: config [jobbox] insecure_registries: must be registry host[:port] names (lowercase; with a "." or a port, or "localhost"): http://r.example'],
    ['no default image', `${MINIMAL}[queue x]\ncpus = none\n`, 'jobbox: config [queue x] default_image: is required: '],
    ['unknown default image', `${MINIMAL}[queue x]\ndefault_image = centos\n`, 'jobbox: config [queue x] default_image: must name an [image] section (defined: deb12): centos'],
    ['unknown allowed image', q('allowed_images = deb12 centos'), 'jobbox: config [queue normal] allowed_images: each must name an [image] section (defined: deb12): centos'],
    ['default not allowed', `${MINIMAL}[image other]\nref = r.example/o\n[queue x]\ndefault_image = deb12\nallowed_images = other\n`, 'jobbox: config [queue x] default_image: must be one of allowed_images (other): deb12'],
    ['bad memlock', q('memlock = lots'), 'jobbox: config [queue normal] memlock: must be "unlimited" or a size: digits with an optional k, m, g or t: lots'],
    ['memlock unlimited by default, memory none', q('memory = none'), 'jobbox: config [queue normal] memlock: must be a size when memory = none (unlimited means up to the memory limit): unlimited'],
    ['memlock unlimited, memory none', q('memlock = unlimited\nmemory = none'), 'jobbox: config [queue normal] memlock: must be a size when memory = none (unlimited means up to the memory limit): unlimited'],
    ['pids_limit unlimited', q('pids_limit = unlimited'), 'jobbox: config [queue normal] pids_limit: must be an integer from 64 to 4194304: unlimited'],
    ['pids_limit -1 (docker\'s unlimited)', q('pids_limit = -1'), 'jobbox: config [queue normal] pids_limit: must be an integer from 64 to 4194304: -1'],
    ['pids_limit 0 (docker\'s unlimited)', q('pids_limit = 0'), 'jobbox: config [queue normal] pids_limit: must be an integer from 64 to 4194304: 0'],
    ['pids_limit too small for sshd', q('pids_limit = 63'), 'jobbox: config [queue normal] pids_limit: must be an integer from 64 to 4194304: 63'],
    ['pids_limit above pid_max', q('pids_limit = 4194305'), 'jobbox: config [queue normal] pids_limit: must be an integer from 64 to 4194304: 4194305'],
    ['pids_limit fraction', q('pids_limit = 100.5'), 'jobbox: config [queue normal] pids_limit: must be an integer from 64 to 4194304: 100.5'],
    ['pids_limit empty', q('pids_limit ='), 'jobbox: config [queue normal] pids_limit: must be an integer from 64 to 4194304: '],
    ['gpus neither none nor allocated', q('gpus = all'), 'jobbox: config [queue normal] gpus: must be "none" or "allocated": all'],
    ['a GPU as a control device', q('gpus = allocated\ngpu_devices = nvidia0'), 'jobbox: config [queue normal] gpu_devices: each must be a glob of [A-Za-z0-9_*?-] starting with "nvidia" and a non-digit (the GPUs come from the allocation): nvidia0'],
    ['a control device outside nvidia…', q('gpu_devices = dri/*'), 'jobbox: config [queue normal] gpu_devices: each must be a glob of [A-Za-z0-9_*?-] starting with "nvidia" and a non-digit (the GPUs come from the allocation): dri/*'],
    ['a gpu_dir docker would split', g('gpu_dir = /dev/gpu:0'), 'jobbox: config [jobbox] gpu_dir: must be an absolute path of [A-Za-z0-9._/-] without "..": /dev/gpu:0'],
    ['a relative gpu mount', q('gpu_mounts = usr/bin/nvidia-smi'), 'jobbox: config [queue normal] gpu_mounts: each must be an absolute normalized path without "..", ",", ":", whitespace or control characters: usr/bin/nvidia-smi'],
    ['umad device', q('devices = uverbs* umad*'), 'jobbox: config [queue normal] devices: each must be "rdma_cm" or a glob of [A-Za-z0-9_*?-] starting with "uverbs": umad*'],
    ['device path', q('devices = uverbs/../umad0'), 'jobbox: config [queue normal] devices: each must be "rdma_cm" or a glob of [A-Za-z0-9_*?-] starting with "uverbs": uverbs/../umad0'],
    ['cpus', q('cpus = 4'), 'jobbox: config [queue normal] cpus: must be "slots" or "none": 4'],
    ['memory', q('memory = 4gb'), 'jobbox: config [queue normal] memory: must be "none", <size> or <size>/slot (size: digits with an optional k, m, g or t): 4gb'],
    ['zero memory', q('memory = 0/slot'), 'jobbox: config [queue normal] memory: must be "none", <size> or <size>/slot (size: digits with an optional k, m, g or t): 0/slot'],
    ['shm size', q('shm_size = big'), 'jobbox: config [queue normal] shm_size: must be a size: digits with an optional k, m, g or t: big'],
    ['relative mount', q('mounts = scratch'), 'jobbox: config [queue normal] mounts: each must be src[:dst][:ro|:rw] with absolute normalized paths without "..", ",", ":", whitespace or control characters: scratch'],
    ['dotdot mount', q('mounts = /a/../etc'), 'jobbox: config [queue normal] mounts: each must be src[:dst][:ro|:rw] with absolute normalized paths without "..", ",", ":", whitespace or control characters: /a/../etc'],
    ['comma mount', q('mounts = /a,readonly'), 'jobbox: config [queue normal] mounts: each must be src[:dst][:ro|:rw] with absolute normalized paths without "..", ",", ":", whitespace or control characters: /a,readonly'],
    ['bad mount mode', q('mounts = /a:/b:rx'), 'jobbox: config [queue normal] mounts: each must be src[:dst][:ro|:rw] with absolute normalized paths without "..", ",", ":", whitespace or control characters: /a:/b:rx'],
    ['unnormalized mount', q('mounts = /a//b/'), 'jobbox: config [queue normal] mounts: each must be src[:dst][:ro|:rw] with absolute normalized paths without "..", ",", ":", whitespace or control characters: /a//b/'],
    ['same target twice', q('mounts = /a:/x /b:/x:ro'), 'jobbox: config [queue normal] mounts: mounts the same target twice: /x'],
    // [image]
    ['unknown image key', i('tag = latest'), 'jobbox: config [image deb12]: unknown key (allowed: ref mounts env.NAME): tag'],
    ['no ref', `${MINIMAL}[image x]\nmounts = /a\n`, 'jobbox: config [image x] ref: is required: '],
    ['unqualified ref', MINIMAL.replace('registry.example.org/hpc/deb12:latest', 'centos:7'), 'jobbox: config [image deb12] ref: image ref is not qualified with a registry: centos:7'],
    ['hub namespace ref', MINIMAL.replace('registry.example.org/hpc/deb12:latest', 'hpc/deb12'), 'jobbox: config [image deb12] ref: image ref is not qualified with a registry: hpc/deb12'],
    ['option ref', MINIMAL.replace('registry.example.org/hpc/deb12:latest', '--privileged'), 'jobbox: config [image deb12] ref: not a valid image reference (lowercase [a-z0-9._:/@-], at most 255): --privileged'],
    ['long ref after prefix', g(`registry = r.example`).replace('registry.example.org/hpc/deb12:latest', 'a'.repeat(250)), `jobbox: config [image deb12] ref: must be at most 255 characters with the registry: r.example/${'a'.repeat(190)}… (260 chars)`],
    ['env name', i('env.1X = a'), 'jobbox: config [image deb12] env.1X: environment names must match ^[A-Za-z_][A-Za-z0-9_]*$: 1X'],
    ['env newline', i('env.X = "a\\nb"'), 'jobbox: config [image deb12] env.X: must not contain newline or NUL characters: a\\nb'],
    ['env NUL', i('env.X = "a\\u0000"'), 'jobbox: config [image deb12] env.X: must not contain newline or NUL characters: a\\u0000'],
  ])('%s', (_name, text, message) => {
    expect(() => parseConfig(text, 'f')).toThrow(expect.objectContaining({ message, exitCode: 99 }));
  });
});
