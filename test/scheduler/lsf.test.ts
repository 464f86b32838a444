import { describe, it, expect } from 'vitest';
import { JobboxError } from '../../src/errors.js';
import type { AccountLookup, Owner } from '../../src/job/job.js';
import type { JobRef } from '../../src/scheduler/answer.js';
import { bjobsName, boundCpus, cpuList, gpuAllocArgv, parseGpuAlloc, lsfJob, lsfNest, parseBjobs, parseLsfHosts, parseMcpuHosts, parseParmFile, requestedImage, jobFileCommand } from '../../src/scheduler/lsf.js';

const alice: Owner = { name: 'alice', uid: 1000, gid: 1000, gids: [27], home: '/home/alice', shell: '/bin/bash' };
const accounts: Record<string, Owner> = { alice, root: { ...alice, name: 'root', uid: 0, gid: 0, home: '/root' } };
const lookup: AccountLookup = async (name) => {
  const owner = accounts[name];
  if (!owner) throw new JobboxError('user', 'no such account in the account database', name);
  return owner;
};

const ENV = {
  LSB_JOBID: '4711',
  LSB_QUEUE: 'normal',
  LSB_JOB_EXECUSER: 'alice',
  LSB_HOSTS: 'h1 h1 h5 h3',
  LSB_MCPU_HOSTS: 'h3 1 h5 1 h1 2 ',
  LS_SUBCWD: '/home/alice/run',
  LSF_SERVERDIR: '/opt/lsf/etc',
  USER: 'root',
  JOBBOX_IMAGE: 'deb12',
  OMPI_MCA_btl: '^openib',
};

describe('lsfJob', () => {
  it('builds the job from a full environment', async () => {
    expect(await lsfJob(ENV, 'h1', lookup)).toEqual({
      id: '4711',
      index: 0,
      attempt: 'h1',
      queue: 'normal',
      owner: alice,
      cwd: '/home/alice/run',
      hosts: [
        { name: 'h1', slots: 2 },
        { name: 'h5', slots: 1 },
        { name: 'h3', slots: 1 },
      ],
      image: 'deb12',
      env: { USER: 'root', JOBBOX_IMAGE: 'deb12', OMPI_MCA_btl: '^openib' },
    });
  });

  it.each([
    ['this host first, then LSB_HOSTS order', { LSB_HOSTS: 'h1 h5 h3 h1' }, 'h5', 'h5:1 h1:2 h3:1'],
    ['MCPU only, repeated host summed', { LSB_HOSTS: undefined, LSB_MCPU_HOSTS: 'h3 1 h5 1 h3 2' }, 'h5', 'h5:1 h3:3'],
    ['HOSTS only', { LSB_MCPU_HOSTS: undefined, LSB_HOSTS: 'h2 h2 h7' }, 'h7', 'h7:1 h2:2'],
    ['empty HOSTS falls back to MCPU', { LSB_HOSTS: ' ', LSB_MCPU_HOSTS: 'h3 4' }, 'h3', 'h3:4'],
    ['OS gives the FQDN, LSF the short name', {}, 'h5.cluster.example', 'h5:1 h1:2 h3:1'],
    ['LSF gives the FQDN, OS the short name', { LSB_HOSTS: 'h1.c h5.c', LSB_MCPU_HOSTS: 'h5.c 1 h1.c 1' }, 'h5', 'h5.c:1 h1.c:1'],
    ['case differs', {}, 'H3', 'h3:1 h1:2 h5:1'],
    ['exact name wins over a short-name match', { LSB_HOSTS: 'n1.a n1', LSB_MCPU_HOSTS: undefined }, 'n1', 'n1:1 n1.a:1'],
  ])('%s', async (_name, vars, thisHost, hosts) => {
    const job = await lsfJob({ ...ENV, ...vars }, thisHost, lookup);
    expect(job.hosts.map((h) => `${h.name}:${h.slots}`).join(' ')).toBe(hosts);
    expect(job.attempt).toBe(job.hosts[0]?.name);
  });

  it.each([
    ['array index', { LSB_JOBINDEX: '12' }, { index: 12 }],
    ['empty array index', { LSB_JOBINDEX: '' }, { index: 0 }],
    ['no LS_SUBCWD: home', { LS_SUBCWD: undefined }, { cwd: '/home/alice' }],
    ['empty JOBBOX_IMAGE', { JOBBOX_IMAGE: '' }, { image: undefined }],
  ])('%s', async (_name, vars, expected) => {
    expect(await lsfJob({ ...ENV, ...vars }, 'h1', lookup)).toMatchObject(expected);
  });

  it.each([
    ['missing job id', { LSB_JOBID: undefined }, 'h1', 'jobbox: LSB_JOBID: is not set (not running under LSF?): '],
    ['non-decimal job id', { LSB_JOBID: '12a' }, 'h1', 'jobbox: LSB_JOBID: must be a decimal job id: 12a'],
    ['negative job id', { LSB_JOBID: '-1' }, 'h1', 'jobbox: LSB_JOBID: must be a decimal job id: -1'],
    ['bad index', { LSB_JOBINDEX: '1;id' }, 'h1', 'jobbox: LSB_JOBINDEX: must be a decimal array index: 1;id'],
    ['missing queue', { LSB_QUEUE: '' }, 'h1', 'jobbox: LSB_QUEUE: is not set (not running under LSF?): '],
    ['bad queue', { LSB_QUEUE: '../x' }, 'h1', 'jobbox: LSB_QUEUE: must match ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$: ../x'],
    ['missing owner', { LSB_JOB_EXECUSER: undefined }, 'h1', 'jobbox: LSB_JOB_EXECUSER: is not set (not running under LSF?): '],
    ['unknown owner', { LSB_JOB_EXECUSER: 'mallory' }, 'h1', 'jobbox: user: no such account in the account database: mallory'],
    ['root owner', { LSB_JOB_EXECUSER: 'root' }, 'h1', 'jobbox: LSB_JOB_EXECUSER: jobs owned by uid 0 are refused: root'],
    ['no hosts', { LSB_HOSTS: undefined, LSB_MCPU_HOSTS: undefined }, 'h1', 'jobbox: LSB_MCPU_HOSTS: is not set, nor is LSB_HOSTS: '],
    ['disagreeing counts', { LSB_HOSTS: 'h1 h5 h3' }, 'h1', 'jobbox: LSB_HOSTS: disagrees with LSB_MCPU_HOSTS "h3 1 h5 1 h1 2": h1 h5 h3'],
    ['disagreeing hosts', { LSB_HOSTS: 'h1 h1 h5 h4' }, 'h1', 'jobbox: LSB_HOSTS: disagrees with LSB_MCPU_HOSTS "h3 1 h5 1 h1 2": h1 h1 h5 h4'],
    ['option as host', { LSB_HOSTS: '-oProxyCommand=x', LSB_MCPU_HOSTS: undefined }, 'h1', 'jobbox: LSB_HOSTS: host names must match ^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$: -oProxyCommand=x'],
    ['option as MCPU host', { LSB_MCPU_HOSTS: '-oProxyCommand=x 1' }, 'h1', 'jobbox: LSB_MCPU_HOSTS: host names must match ^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$: -oProxyCommand=x'],
    ['odd MCPU', { LSB_MCPU_HOSTS: 'h1 2 h5' }, 'h1', 'jobbox: LSB_MCPU_HOSTS: must be pairs of "host count": h1 2 h5'],
    ['zero count', { LSB_MCPU_HOSTS: 'h1 0' }, 'h1', 'jobbox: LSB_MCPU_HOSTS: slot counts must be positive integers: 0'],
    ['count not a number', { LSB_MCPU_HOSTS: 'h1 two' }, 'h1', 'jobbox: LSB_MCPU_HOSTS: slot counts must be positive integers: two'],
    ['this host not in the job', {}, 'h9', 'jobbox: job hosts: do not include this host (h1 h5 h3): h9'],
    ['ambiguous short name', { LSB_HOSTS: 'n1.a n1.b', LSB_MCPU_HOSTS: undefined }, 'n1', 'jobbox: job hosts: include several hosts with this short name: n1'],
  ])('%s is refused', async (_name, vars, thisHost, message) => {
    await expect(lsfJob({ ...ENV, ...vars }, thisHost, lookup)).rejects.toThrow(expect.objectContaining({ message }));
  });
});

// /proc/self/cgroup of a root hook that LSF started inside its job cgroup (cgroup v1, hybrid).
const IN_LSF = [
  '13:misc:/',
  '12:memory:/lsf/c1/job.4711.0.1700000000',
  '11:cpuset:/lsf/c1/job.4711.0.1700000000',
  '10:blkio:/',
  '9:freezer:/lsf/c1/job.4711.0.1700000000',
  '4:cpu,cpuacct:/lsf/c1/job.4711.0.1700000000',
  '1:name=systemd:/',
  '0::/',
].join('\n');
const NEST = { path: '/lsf/c1/job.4711.0.1700000000', controllers: ['memory', 'cpuset', 'freezer', 'cpu,cpuacct'] };

describe('lsfNest: LSF\'s job cgroup around a root hook', () => {
  it('is the memory hierarchy\'s job level, with every hierarchy where the hook sits in it', () => {
    expect(lsfNest(IN_LSF, '4711', '0')).toEqual(NEST);
    // A hook in a task's cgroup below the job's still nests at the job level.
    expect(lsfNest(IN_LSF.replace('12:memory:/lsf/c1/job.4711.0.1700000000', '12:memory:/lsf/c1/job.4711.0.1700000000/task.1'), '4711', '0')?.path).toBe(NEST.path);
  });

  it.each([
    ['outside any job cgroup', '12:memory:/\n4:cpu,cpuacct:/\n'],
    ['in another job\'s', IN_LSF.replaceAll('4711', '4712')],
    ['in a job id that only starts the same', IN_LSF.replaceAll('job.4711.', 'job.47110.')],
    ['in another array element\'s', IN_LSF.replaceAll('job.4711.0.', 'job.4711.3.')],
    ['with no memory hierarchy', '9:freezer:/lsf/c1/job.4711.0.1700000000\n'],
    ['a path with odd characters', '12:memory:/lsf/c 1/job.4711.0.1\n'],
    ['a path with a dot-dot level', '12:memory:/lsf/../job.4711.0.1\n'],
  ])('is none %s', (_name, text) => {
    expect(lsfNest(text, '4711', '0')).toBeUndefined();
  });
});

describe('boundCpus: LSB_BIND_CPU_LIST on the first host', () => {
  it.each([
    [undefined, '0-7', undefined],
    ['', '0-7', undefined],
    ['3,1,2', '0-7', '1,2,3'],
    ['0-1', '0-1', '0,1'],
    ['4-5,2', '0-3,4-7', '2,4,5'],
  ])('%j within %s is %j', (list, allowed, cpus) => {
    expect(boundCpus(list, allowed, 'h1')).toBe(cpus);
  });

  it.each([
    ['0-9', '0-1', 'jobbox: LSB_BIND_CPU_LIST: names CPUs outside those the job may use on h1 (0-1): 0-9'],
    ['0;rm -rf /', '0-1', 'jobbox: LSB_BIND_CPU_LIST: must be a CPU list such as 0-3,8: 0;rm -rf /'],
    ['-1', '0-1', 'jobbox: LSB_BIND_CPU_LIST: must be a CPU list such as 0-3,8: -1'],
    ['3-1', '0-7', 'jobbox: LSB_BIND_CPU_LIST: must be a CPU list such as 0-3,8: 3-1'],
    [Array(40).fill('0-65535').join(','), '0-1', 'jobbox: LSB_BIND_CPU_LIST: must be a CPU list such as 0-3,8:'],
  ])('%s within %s is refused, for good', (list, allowed, message) => {
    expect(() => boundCpus(list, allowed, 'h1')).toThrow(expect.objectContaining({ message: expect.stringContaining(message), exitCode: 99 }));
  });

  it('reads the kernel\'s list format', () => {
    expect([...cpuList('x', '0-2,8,10-11')]).toEqual([0, 1, 2, 8, 10, 11]);
  });
});

describe('lsfJob with the host\'s facts (root hooks)', () => {
  const facts = (procCgroup: string, cpus = '0-7') => ({ procCgroup, cpus: async (nest: unknown) => (nest ? '2-3' : cpus) });
  it('nests in LSF\'s job cgroup and binds the first host within its cpuset', async () => {
    const job = await lsfJob({ ...ENV, LSB_BIND_CPU_LIST: '3' }, 'h1', lookup, facts(IN_LSF));
    expect(job.containment).toEqual({ scheduler: 'lsf', nest: NEST });
    expect(job.hosts.map((h) => h.cpus)).toEqual(['3', undefined, undefined]);
    await expect(lsfJob({ ...ENV, LSB_BIND_CPU_LIST: '0-1' }, 'h1', lookup, facts(IN_LSF))).rejects.toThrow('outside those the job may use on h1 (2-3)');
  });

  it('contains the job in jobbox\'s own cgroups outside LSF\'s, unbound without a list', async () => {
    const job = await lsfJob(ENV, 'h1', lookup, facts('12:memory:/\n'));
    expect(job.containment).toEqual({ scheduler: 'lsf' });
    expect(job.hosts.every((h) => h.cpus === undefined)).toBe(true);
  });

  it('reads no binding for a teardown, so none can keep it from removing the containers', async () => {
    const job = await lsfJob({ ...ENV, LSB_BIND_CPU_LIST: '0-511' }, 'h1', lookup, { procCgroup: IN_LSF });
    expect(job.containment).toEqual({ scheduler: 'lsf', nest: NEST });
    expect(job.hosts[0]!.cpus).toBeUndefined();
  });

  it('leaves the starter\'s job (no facts) uncontained', async () => {
    expect((await lsfJob(ENV, 'h1', lookup)).containment).toBeUndefined();
  });
});

describe('host list parsers', () => {
  it.each([
    ['h3 1 h5 1 h1 2', 'h3:1 h5:1 h1:2'],
    ['h3 1 h5 1 h1 2 ', 'h3:1 h5:1 h1:2'],
    ['  h1   4\th2 1\n', 'h1:4 h2:1'],
    ['h1 1 h2 1 h1 3', 'h1:4 h2:1'],
  ])('LSB_MCPU_HOSTS %j → %s', (text, hosts) => {
    expect(parseMcpuHosts(text).map((h) => `${h.name}:${h.slots}`).join(' ')).toBe(hosts);
  });

  it.each([
    ['h1 h1 h5 h3', 'h1:2 h5:1 h3:1'],
    ['h5 h1 h5 ', 'h5:2 h1:1'],
  ])('LSB_HOSTS %j → %s', (text, hosts) => {
    expect(parseLsfHosts(text).map((h) => `${h.name}:${h.slots}`).join(' ')).toBe(hosts);
  });

  it('refuses empty lists', () => {
    expect(() => parseMcpuHosts(' ')).toThrow('jobbox: LSB_MCPU_HOSTS: must be pairs of "host count":  ');
    expect(() => parseLsfHosts('')).toThrow('jobbox: LSB_HOSTS: must list at least one host: ');
  });
});

describe('parseParmFile', () => {
  it.each([
    ['quoted', 'LSB_SUB_QUEUE="short"\n', { LSB_SUB_QUEUE: 'short' }],
    ['unquoted, no final newline', 'LSB_SUB_QUEUE=short', { LSB_SUB_QUEUE: 'short' }],
    ['several', 'LSB_SUB_QUEUE="short"\nLSB_SUB_ADDITIONAL="docker-deb12"\nLSB_SUB_NUM_PROCESSORS=4\n', { LSB_SUB_QUEUE: 'short', LSB_SUB_ADDITIONAL: 'docker-deb12', LSB_SUB_NUM_PROCESSORS: '4' }],
    ['sh double-quote escapes, nothing expanded', 'LSB_SUB_COMMAND_LINE="echo \\"$HOME\\" \\$x \\\\ `id`"\n', { LSB_SUB_COMMAND_LINE: 'echo "$HOME" $x \\ `id`' }],
    ['a quoted value over two lines', 'LSB_SUB_COMMAND_LINE="a\nLSB_SUB_QUEUE=\\"evil\\""\nLSB_SUB_QUEUE="short"\n', { LSB_SUB_COMMAND_LINE: 'a\nLSB_SUB_QUEUE="evil"', LSB_SUB_QUEUE: 'short' }],
    ['empty value', 'LSB_SUB_QUEUE=""\n', { LSB_SUB_QUEUE: '' }],
    ['other lines skipped', '# comment\n\nnot a pair\nLSB_SUB_QUEUE="short"\n', { LSB_SUB_QUEUE: 'short' }],
    ['the last one wins', 'LSB_SUB_QUEUE="a"\nLSB_SUB_QUEUE="b"\n', { LSB_SUB_QUEUE: 'b' }],
    ['unterminated quote: the rest', 'LSB_SUB_QUEUE="short\n', { LSB_SUB_QUEUE: 'short\n' }],
  ])('%s', (_name, text, vars) => expect(Object.fromEntries(parseParmFile(text))).toEqual(vars));

  it('gives a Map, so a name like __proto__ stays data', () => {
    expect(parseParmFile('__proto__="x"\n').get('__proto__')).toBe('x');
  });
});

describe('requestedImage', () => {
  const digest = `sha256:${'0'.repeat(64)}`;
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['gpu', undefined],
    ['docker-deb12', 'deb12'],
    [' gpu  docker-deb12-mpich ', 'deb12-mpich'],
    ['docker-', ''],
    ['docker(deb12)', 'deb12'],
    ['gpu docker(10.78.0.1:5000/projects/x/app:1.2)', '10.78.0.1:5000/projects/x/app:1.2'],
    [`docker(10.78.0.1:5000/projects/x/app@${digest})`, `10.78.0.1:5000/projects/x/app@${digest}`],
    ['dockerx(a)', undefined],
  ])('%j → %j', (additional, image) => expect(requestedImage(additional)).toBe(image));

  it.each([
    ['docker-a docker-b', 'jobbox: bsub -a: names more than one docker application, give one image: docker-a docker-b'],
    ['docker-a docker(b)', 'jobbox: bsub -a: names more than one docker application, give one image: docker-a docker(b)'],
    ['docker(a,b)', 'jobbox: bsub -a: docker takes one argument, the image: docker(reg:5000/path/app:tag): docker(a,b)'],
    ['docker()', 'jobbox: bsub -a: docker takes one argument, the image: docker(reg:5000/path/app:tag): docker()'],
    ['docker((a))', 'jobbox: bsub -a: docker takes one argument, the image: docker(reg:5000/path/app:tag): docker((a))'],
    ['docker(a', 'jobbox: bsub -a: docker takes one argument, the image: docker(reg:5000/path/app:tag): docker(a'],
  ])('refuses %j', (additional, message) => expect(() => requestedImage(additional)).toThrow(message));
});

describe('parseBjobs (bjobs -noheader -a -o "jobid jobindex stat")', () => {
  const refs: JobRef[] = [{ id: '100', index: 0 }, { id: '101', index: 3 }, { id: '102', index: 0 }];
  const answers = (run: Parameters<typeof parseBjobs>[1]) => Object.fromEntries(parseBjobs(refs, run));

  it('reads records and "is not found" lines, and fails only the jobs it got no word on', () => {
    expect(answers({ code: 255, stdout: '100 0 DONE\n101[3] 3 RUN\n', stderr: 'Job <102> is not found\n' })).toEqual({
      '100.0': { kind: 'record', state: 'DONE' },
      '101.3': { kind: 'record', state: 'RUN' },
      '102.0': { kind: 'unknown' },
    });
    expect(answers({ code: 0, stdout: '100 0 EXIT\n', stderr: 'Job <101[3]> is not found\n' })['102.0']).toEqual({ kind: 'failed', reason: 'bjobs: no line for the job' });
  });

  it.each<[string, Parameters<typeof parseBjobs>[1], string]>([
    ['mbatchd down', { code: 255, stdout: '', stderr: 'LSF is down. Please wait...\n' }, 'bjobs: exit 255: LSF is down. Please wait...'],
    ['an unknown complaint next to real records', { code: 0, stdout: '100 0 DONE\n', stderr: 'Job <102> is not found\nsomething odd\n' }, 'bjobs: exit 0: something odd'],
    ['no bjobs on PATH', { code: undefined, stdout: '', stderr: '', error: 'not found on PATH' }, 'bjobs: not found on PATH'],
    ['timed out', { code: undefined, stdout: '100 0 DONE\n', stderr: '', error: 'timed out after 60 s' }, 'bjobs: timed out after 60 s'],
  ])('fails every job when %s', (_name, run, reason) => {
    expect(Object.values(answers(run))).toEqual(refs.map(() => ({ kind: 'failed', reason })));
  });
});

describe('bjobsName', () => {
  it.each<[JobRef, string]>([[{ id: '5', index: 0 }, '5'], [{ id: '5', index: 3 }, '5[3]']])('bjobsName(%j) = %s', (ref, name) => {
    expect(bjobsName(ref)).toBe(name);
  });
});

describe('jobFileCommand', () => {
  const LINE = 'exec /opt/jobbox/hooks/lsf/starter --config /etc/jobbox/jobbox.ini --job-file #';
  // openlava's job file around the pasted starter line (lsbatch.h).
  const jobFile = (content: string) =>
    `#! /bin/sh\n\n$LSB_TRAPSIGS\n$LSB_RCP1\n$LSB_RCP2\n$LSB_RCP3\n# LSBATCH: User input\n${content}\nExitStat=$?\nwait\n# LSBATCH: End user input\ntrue\nexit \`expr $? "|" $ExitStat\`\n`;

  it.each([
    'echo "a  b"',
    'X=$HOME; echo "home=$X"',
    "echo '$HOME' | tr a-z A-Z > out.txt; cat out.txt",
    '(cd /tmp && pwd)',
    'echo one\necho two',
    'echo "--job-file #"',
    'printf "%s\\n" "ExitStat=$?\nwait\n# LSBATCH: End user input"',
  ])('gives back %j exactly as submitted', (command) => {
    expect(jobFileCommand(jobFile(`${LINE}${command}`))).toBe(command);
  });

  it('finds the line after the here-document that spools `bsub < script`', () => {
    const content = '( cat <<_USER_\\SCRIPT_\n#!/bin/sh\necho "--job-file #x"\n_USER_SCRIPT_\n) > /home/u/.lsbatch/1.2.shell\nchmod u+x /home/u/.lsbatch/1.2.shell\n' + `${LINE}/home/u/.lsbatch/1.2.shell`;
    expect(jobFileCommand(jobFile(content))).toBe('/home/u/.lsbatch/1.2.shell');
  });

  it.each([
    ['no section', '#! /bin/sh\necho hi\n', 'jobbox: LSB_JOBFILENAME: has no "# LSBATCH: User input" section: '],
    ['the old starter line', jobFile('/opt/jobbox/hooks/lsf/starter --config F "echo hi"'), 'jobbox: LSB_JOBFILENAME: the starter line does not end in "--job-file #%USRCMD": /opt/jobbox/hooks/lsf/starter --config F \\"echo hi\\"'],
    ['no command', jobFile(LINE), `jobbox: LSB_JOBFILENAME: holds no command after the starter: ${LINE}`],
  ])('refuses %s', (_case, text, message) => expect(() => jobFileCommand(text)).toThrow(message));
});

describe('gpuAllocArgv and parseGpuAlloc: the GPUs mbatchd gave a job, by host', () => {
  const answer = (alloc: string) => `{\n  "COMMAND":"bjobs",\n  "JOBS":1,\n  "RECORDS":[\n    {\n      "GPU_ALLOC":"${alloc}"\n    }\n  ]\n}\n`;
  it('asks bjobs by the configured path, for the job or the array element', () => {
    expect(gpuAllocArgv('/opt/lsf/bin/bjobs', { id: '123', index: 0 })).toEqual(['/opt/lsf/bin/bjobs', '-o', 'gpu_alloc', '-json', '123']);
    expect(gpuAllocArgv('/opt/lsf/bin/bjobs', { id: '123', index: 4 })).toEqual(['/opt/lsf/bin/bjobs', '-o', 'gpu_alloc', '-json', '123[4]']);
  });

  it.each([
    ['one GPU on each of two hosts', 'node1:0;node2:1', new Map([['node1', [0]], ['node2', [1]]])],
    // LSF repeats an id for each task that uses it (a monitoring tool's recorded answer, docs/gpus.md).
    ['ids repeated per task, out of order', 'node1:1,0,1,0', new Map([['node1', [0, 1]]])],
    ['no GPUs', '', new Map()],
    ['no GPUs, as bjobs prints an empty field', '-', new Map()],
  ])('%s', (_name, alloc, gpus) => expect(parseGpuAlloc(answer(alloc), ['node1', 'node2'])).toEqual(gpus));

  it.each([
    ['a host outside the job', answer('node9:0'), 'jobbox: bjobs -o gpu_alloc: names a host outside the job (node1 node2): node9'],
    ['ids that are not numbers', answer('node1:0,x'), 'jobbox: bjobs -o gpu_alloc: unreadable host:ids: node1:0,x'],
    ['an answer without GPU_ALLOC', '{"COMMAND":"bjobs","JOBS":0,"RECORDS":[]}', 'jobbox: bjobs -o gpu_alloc: no GPU_ALLOC in its answer: {\\"COMMAND\\":\\"bjobs\\",\\"JOBS\\":0,\\"RECORDS\\":[]}'],
    ['no JSON at all', 'Job <123> is not found', 'jobbox: bjobs -o gpu_alloc: no GPU_ALLOC in its answer: Job <123> is not found'],
  ])('refuses %s', (_name, text, message) => expect(() => parseGpuAlloc(text, ['node1', 'node2'])).toThrow(message));
});
