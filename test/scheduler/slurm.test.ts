import { describe, it, expect } from 'vitest';
import { JobboxError } from '../../src/errors.js';
import type { AccountLookup, Owner } from '../../src/job/job.js';
import type { Answer } from '../../src/scheduler/answer.js';
import {
  arrayTaskName, constraintAlias, expandCounts, expandHostlist, gresFiles, gresGpus, parseJobRecord, parseSqueue, prologEnvOf, prologOutcome, multipleSlurmd, slurmAnswer, slurmCgroupRoot, slurmExternTask, slurmHook, slurmHookJob, slurmJob, jobImage } from '../../src/scheduler/slurm.js';

const alice: Owner = { name: 'alice', uid: 1000, gid: 1000, gids: [27], home: '/home/alice', shell: '/bin/bash' };
const accounts: Record<string, Owner> = { alice, root: { ...alice, name: 'root', uid: 0, gid: 0, home: '/root' } };
const lookup: AccountLookup = async (name) => {
  const owner = accounts[name];
  if (!owner) throw new JobboxError('user', 'no such account in the account database', name);
  return owner;
};

// toThrow(string) only checks a substring; these compare whole messages.
function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
  return 'nothing thrown';
}

// What slurmd 22.05 gives a Prolog with PrologFlags=Alloc (TESTBED.md): no SLURM_JOB_NODELIST.
const PROLOG = {
  SLURM_JOB_ID: '42',
  SLURM_JOB_USER: 'alice',
  SLURM_JOB_UID: '1000',
  SLURM_JOB_GID: '1000',
  SLURM_JOB_PARTITION: 'debug',
  SLURMD_NODENAME: 'n2',
  SLURM_NODELIST: 'n[1-3]',
  SLURM_JOB_NUM_NODES: '3',
  SLURM_JOB_WORK_DIR: '/home/alice/run',
  SLURM_JOB_RESTART_COUNT: '0',
  SLURM_JOB_CONSTRAINTS: 'docker-deb12&bigmem',
};

// The batch step: slurmstepd's variables mixed with everything the user submitted with.
const BATCH = {
  SLURM_JOB_ID: '43',
  SLURM_JOB_USER: 'alice',
  SLURM_JOB_UID: '1000',
  SLURM_JOB_PARTITION: 'debug',
  SLURM_JOB_NODELIST: 'n[2-3],gpu1',
  SLURM_NODELIST: 'n[2-3],gpu1',
  SLURM_JOB_CPUS_PER_NODE: '2(x2),4',
  SLURM_SUBMIT_DIR: '/home/alice/sub',
  SLURM_RESTART_COUNT: '2',
  SLURM_JOB_RESTART_COUNT: '9',
  SLURM_JOB_CONSTRAINTS: 'docker-deb12',
  SLURMD_NODENAME: 'n2',
  SBATCH_EXPORT: 'ALL',
  SRUN_DEBUG: '3',
  HOME: '/home/alice',
  USER: 'root',
  LD_PRELOAD: '/tmp/x.so',
  OMPI_MCA_btl: '^openib',
  MY_SLURM_NOTE: 'kept',
};

describe('expandHostlist', () => {
  it.each([
    ['n[01-04,07],gpu3', 'n01 n02 n03 n04 n07 gpu3'],
    ['node[1-3]', 'node1 node2 node3'],
    ['a,b', 'a b'],
    ['r[1-2]n[1-2]', 'r1n1 r1n2 r2n1 r2n2'],
    ['n[009-011]', 'n009 n010 n011'],
    ['n1', 'n1'],
    ['n[7]', 'n7'],
    ['n[9-11]', 'n9 n10 n11'],
    ['n[1-2]-ib', 'n1-ib n2-ib'],
    ['n[3,1]', 'n3 n1'],
    ['gpu3,n[1-2]', 'gpu3 n1 n2'],
    ['n[1-2],m[01-02]', 'n1 n2 m01 m02'],
    ['[1-2]n', '1n 2n'],
    ['n[1-2,5-6]', 'n1 n2 n5 n6'],
    ['n1.cluster.example,n2.cluster.example', 'n1.cluster.example n2.cluster.example'],
    ['rack[1-2]-n[08-09]', 'rack1-n08 rack1-n09 rack2-n08 rack2-n09'],
    ['n[0-0]', 'n0'],
  ])('%s → %s', (text, hosts) => expect(expandHostlist(text).join(' ')).toBe(hosts));

  it('expands up to 100000 hosts', () => expect(expandHostlist('n[1-100000]')).toHaveLength(100_000));

  it.each([
    ['', 'jobbox: SLURM_NODELIST: must list at least one host: '],
    ['n[1-2', 'jobbox: SLURM_NODELIST: has unbalanced or nested brackets: n[1-2'],
    ['n1-2]', 'jobbox: SLURM_NODELIST: has unbalanced or nested brackets: n1-2]'],
    ['n[[1-2]]', 'jobbox: SLURM_NODELIST: has unbalanced or nested brackets: n[[1-2]]'],
    ['n[5-2]', 'jobbox: SLURM_NODELIST: bracket ranges must not run backwards: 5-2'],
    ['n[]', 'jobbox: SLURM_NODELIST: bracket ranges must be N or N-M with decimal N and M: '],
    ['n[1-]', 'jobbox: SLURM_NODELIST: bracket ranges must be N or N-M with decimal N and M: 1-'],
    ['n[a-c]', 'jobbox: SLURM_NODELIST: bracket ranges must be N or N-M with decimal N and M: a-c'],
    ['n[1-2-3]', 'jobbox: SLURM_NODELIST: bracket ranges must be N or N-M with decimal N and M: 1-2-3'],
    ['n[1,,2]', 'jobbox: SLURM_NODELIST: bracket ranges must be N or N-M with decimal N and M: '],
    ['n[1, 2]', 'jobbox: SLURM_NODELIST: bracket ranges must be N or N-M with decimal N and M:  2'],
    ['n1,,n2', 'jobbox: SLURM_NODELIST: has an empty host name: n1,,n2'],
    ['n1,', 'jobbox: SLURM_NODELIST: has an empty host name: n1,'],
    ['-oProxyCommand=x', 'jobbox: SLURM_NODELIST: host names must match ^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$: -oProxyCommand=x'],
    ['n[1-2],-o[1]', 'jobbox: SLURM_NODELIST: host names must match ^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$: -o1'],
    ['n1 n2', 'jobbox: SLURM_NODELIST: host names must match ^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$: n1 n2'],
    ['n$(id)', 'jobbox: SLURM_NODELIST: host names must match ^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$: n$(id)'],
    ['n[0-100000]', 'jobbox: SLURM_NODELIST: expands to more than 100000 hosts: n[0-100000]'],
    ['n[0-999999999]', 'jobbox: SLURM_NODELIST: expands to more than 100000 hosts: n[0-999999999]'],
    ['a[1-1000]b[1-1000]', 'jobbox: SLURM_NODELIST: expands to more than 100000 hosts: a[1-1000]b[1-1000]'],
  ])('%j is refused', (text, message) => expect(thrown(() => expandHostlist(text))).toBe(message));

  it('names the given subject', () => {
    expect(thrown(() => expandHostlist('n[2-1]', 'SLURM_JOB_NODELIST'))).toBe('jobbox: SLURM_JOB_NODELIST: bracket ranges must not run backwards: 2-1');
  });
});

describe('expandCounts', () => {
  it.each([
    ['2(x3),1', [2, 2, 2, 1]],
    ['4', [4]],
    ['1(x2),3(x1)', [1, 1, 3]],
    ['16(x2)', [16, 16]],
    ['1,2,3', [1, 2, 3]],
  ])('%s → %j', (text, counts) => expect(expandCounts(text)).toEqual(counts));

  it.each([
    ['', 'jobbox: SLURM_JOB_CPUS_PER_NODE: must list at least one count: '],
    ['0', 'jobbox: SLURM_JOB_CPUS_PER_NODE: entries must be N or N(xM) with positive integers N and M: 0'],
    ['2(x0)', 'jobbox: SLURM_JOB_CPUS_PER_NODE: entries must be N or N(xM) with positive integers N and M: 2(x0)'],
    ['2(3)', 'jobbox: SLURM_JOB_CPUS_PER_NODE: entries must be N or N(xM) with positive integers N and M: 2(3)'],
    ['2(x3', 'jobbox: SLURM_JOB_CPUS_PER_NODE: entries must be N or N(xM) with positive integers N and M: 2(x3'],
    ['-1', 'jobbox: SLURM_JOB_CPUS_PER_NODE: entries must be N or N(xM) with positive integers N and M: -1'],
    ['2,', 'jobbox: SLURM_JOB_CPUS_PER_NODE: entries must be N or N(xM) with positive integers N and M: '],
    ['1(x99999),1(x2)', 'jobbox: SLURM_JOB_CPUS_PER_NODE: covers more than 100000 hosts: 1(x99999),1(x2)'],
  ])('%j is refused', (text, message) => expect(thrown(() => expandCounts(text))).toBe(message));
});

describe('constraintAlias', () => {
  it.each([
    [undefined, undefined],
    ['', undefined],
    ['bigmem', undefined],
    ['docker-deb12', 'deb12'],
    ['docker-deb12&bigmem', 'deb12'],
    ['bigmem|docker-deb12-mpich', 'deb12-mpich'],
    ['[docker-deb12*2&gpu]', 'deb12'],
    ['(rack1|rack2)&docker-cs7', 'cs7'],
    ['docker-deb12,bigmem', 'deb12'],
    ['docker-deb12&docker-deb12', 'deb12'],
    ['mydocker-deb12', undefined],
  ])('%j → %j', (constraints, alias) => expect(constraintAlias(constraints)).toBe(alias));

  it.each([['docker-a&docker-b'], ['[docker-a|docker-b]'], ['docker-a*2,docker-b']])('%j names two images', (constraints) => {
    expect(thrown(() => constraintAlias(constraints))).toBe(`jobbox: constraint: names more than one image: ${constraints}`);
  });
});

describe('slurmJob in the Prolog', () => {
  it('builds the job from the 22.05 Prolog environment', async () => {
    expect(await slurmJob(PROLOG, 'prolog', lookup)).toEqual({
      id: '42',
      index: 0,
      attempt: '0',
      queue: 'debug',
      owner: alice,
      cwd: '/home/alice/run',
      hosts: [
        { name: 'n1', slots: 1 },
        { name: 'n2', slots: 1 },
        { name: 'n3', slots: 1 },
      ],
      image: 'deb12',
      env: {},
    });
  });

  it.each([
    ['SLURM_JOB_NODELIST wins when set', { SLURM_JOB_NODELIST: 'm[1-2]' }, 'm1:1 m2:1'],
    ["Slurm's order is kept", { SLURM_NODELIST: 'n3,n1,n2' }, 'n3:1 n1:1 n2:1'],
    ['counts from SLURM_JOB_CPUS_PER_NODE', { SLURM_JOB_CPUS_PER_NODE: '2(x2),4' }, 'n1:2 n2:2 n3:4'],
  ])('%s', async (_name, vars, hosts) => {
    const job = await slurmJob({ ...PROLOG, ...vars }, 'prolog', lookup);
    expect(job.hosts.map((h) => `${h.name}:${h.slots}`).join(' ')).toBe(hosts);
  });

  it('takes counts from the caller over the environment', async () => {
    const job = await slurmJob({ ...PROLOG, SLURM_JOB_CPUS_PER_NODE: '1(x3)' }, 'prolog', lookup, [4, 8, 2]);
    expect(job.hosts.map((h) => `${h.name}:${h.slots}`).join(' ')).toBe('n1:4 n2:8 n3:2');
  });

  it.each([
    ['array task: its own job id says it all', { SLURM_ARRAY_TASK_ID: '7' }, { index: 0 }],
    ['restart count', { SLURM_JOB_RESTART_COUNT: '3' }, { attempt: '3' }],
    ['restart count with zeros', { SLURM_JOB_RESTART_COUNT: '007' }, { attempt: '7' }],
    ['no restart count', { SLURM_JOB_RESTART_COUNT: undefined }, { attempt: '0' }],
    ['the batch restart name is not read', { SLURM_JOB_RESTART_COUNT: '1', SLURM_RESTART_COUNT: '5' }, { attempt: '1' }],
    ['no work dir: home', { SLURM_JOB_WORK_DIR: undefined }, { cwd: '/home/alice' }],
    ['SLURM_SUBMIT_DIR is not read', { SLURM_JOB_WORK_DIR: '', SLURM_SUBMIT_DIR: '/x' }, { cwd: '/home/alice' }],
    ['no constraints', { SLURM_JOB_CONSTRAINTS: undefined }, { image: undefined }],
    ['constraints without an image', { SLURM_JOB_CONSTRAINTS: 'bigmem' }, { image: undefined }],
    ['user variables are ignored', { USER: 'root', JOBBOX_IMAGE: 'evil' }, { env: {}, image: 'deb12' }],
  ])('%s', async (_name, vars, expected) => {
    expect(await slurmJob({ ...PROLOG, ...vars }, 'prolog', lookup)).toMatchObject(expected);
  });

  it.each([
    ['missing job id', { SLURM_JOB_ID: undefined }, 'jobbox: SLURM_JOB_ID: is not set (not running under Slurm?): '],
    ['non-decimal job id', { SLURM_JOB_ID: '12a' }, 'jobbox: SLURM_JOB_ID: must be a decimal job id: 12a'],
    ['negative job id', { SLURM_JOB_ID: '-1' }, 'jobbox: SLURM_JOB_ID: must be a decimal job id: -1'],
    ['array-style job id', { SLURM_JOB_ID: '42_7' }, 'jobbox: SLURM_JOB_ID: must be a decimal job id: 42_7'],
    ['bad restart count', { SLURM_JOB_RESTART_COUNT: 'x' }, 'jobbox: SLURM_JOB_RESTART_COUNT: must be a decimal restart count: x'],
    ['missing partition', { SLURM_JOB_PARTITION: '' }, 'jobbox: SLURM_JOB_PARTITION: is not set (not running under Slurm?): '],
    ['bad partition', { SLURM_JOB_PARTITION: '../x' }, 'jobbox: SLURM_JOB_PARTITION: must match ^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$: ../x'],
    ['no node list', { SLURM_NODELIST: undefined }, 'jobbox: SLURM_NODELIST: is not set (not running under Slurm?): '],
    ['bad node list', { SLURM_NODELIST: 'n[3-1]' }, 'jobbox: SLURM_NODELIST: bracket ranges must not run backwards: 3-1'],
    ['bad SLURM_JOB_NODELIST', { SLURM_JOB_NODELIST: '-oProxyCommand=x' }, 'jobbox: SLURM_JOB_NODELIST: host names must match ^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$: -oProxyCommand=x'],
    ['a host twice', { SLURM_NODELIST: 'n[1-2],n1' }, 'jobbox: SLURM_NODELIST: names a host twice: n1'],
    ['too few counts', { SLURM_JOB_CPUS_PER_NODE: '2(x2)' }, 'jobbox: SLURM_JOB_CPUS_PER_NODE: must have one count per host of SLURM_NODELIST (3), not 2: 2,2'],
    ['too many counts', { SLURM_JOB_CPUS_PER_NODE: '2(x4)' }, 'jobbox: SLURM_JOB_CPUS_PER_NODE: must have one count per host of SLURM_NODELIST (3), not 4: 2,2,2,2'],
    ['bad counts', { SLURM_JOB_CPUS_PER_NODE: '2(x3' }, 'jobbox: SLURM_JOB_CPUS_PER_NODE: entries must be N or N(xM) with positive integers N and M: 2(x3'],
    ['missing user', { SLURM_JOB_USER: undefined }, 'jobbox: SLURM_JOB_USER: is not set (not running under Slurm?): '],
    ['unknown user', { SLURM_JOB_USER: 'mallory' }, 'jobbox: user: no such account in the account database: mallory'],
    ['root user', { SLURM_JOB_USER: 'root', SLURM_JOB_UID: '0' }, 'jobbox: SLURM_JOB_USER: jobs owned by uid 0 are refused: root'],
    ['missing uid', { SLURM_JOB_UID: undefined }, 'jobbox: SLURM_JOB_UID: is not set (not running under Slurm?): '],
    ['bad uid', { SLURM_JOB_UID: '1000x' }, 'jobbox: SLURM_JOB_UID: must be a decimal uid: 1000x'],
    ['uid of someone else', { SLURM_JOB_UID: '1001' }, 'jobbox: SLURM_JOB_UID: disagrees with SLURM_JOB_USER "alice" (uid 1000 in the account database): 1001'],
    ['uid 0 with a user name', { SLURM_JOB_UID: '0' }, 'jobbox: SLURM_JOB_UID: disagrees with SLURM_JOB_USER "alice" (uid 1000 in the account database): 0'],
    ['two images', { SLURM_JOB_CONSTRAINTS: 'docker-a&docker-b' }, 'jobbox: constraint: names more than one image: docker-a&docker-b'],
  ])('%s is refused', async (_name, vars, message) => {
    await expect(slurmJob({ ...PROLOG, ...vars }, 'prolog', lookup)).rejects.toThrow(expect.objectContaining({ message }));
  });

  it.each([
    ['too few', [4, 8], 'jobbox: cpus per node: must have one count per host of SLURM_NODELIST (3), not 2: 4,8'],
    ['zero', [4, 0, 2], 'jobbox: cpus per node: slot counts must be positive integers: 0'],
    ['fraction', [4, 1.5, 2], 'jobbox: cpus per node: slot counts must be positive integers: 1.5'],
  ])('caller counts %s are refused', async (_name, counts, message) => {
    await expect(slurmJob(PROLOG, 'prolog', lookup, counts)).rejects.toThrow(expect.objectContaining({ message }));
  });
});

describe('slurmJob in the batch step', () => {
  it('builds the job from the batch environment', async () => {
    expect(await slurmJob(BATCH, 'batch', lookup)).toEqual({
      id: '43',
      index: 0,
      attempt: '2',
      queue: 'debug',
      owner: alice,
      cwd: '/home/alice/sub',
      hosts: [
        { name: 'n2', slots: 2 },
        { name: 'n3', slots: 2 },
        { name: 'gpu1', slots: 4 },
      ],
      image: undefined,
      env: { HOME: '/home/alice', USER: 'root', LD_PRELOAD: '/tmp/x.so', OMPI_MCA_btl: '^openib', MY_SLURM_NOTE: 'kept' },
    });
  });

  it.each([
    ['no restart count', { SLURM_RESTART_COUNT: undefined }, { attempt: '0' }],
    ['no submit dir: home', { SLURM_SUBMIT_DIR: '' }, { cwd: '/home/alice' }],
    ['SLURM_JOB_WORK_DIR is not read', { SLURM_SUBMIT_DIR: undefined, SLURM_JOB_WORK_DIR: '/x' }, { cwd: '/home/alice' }],
    ['no uid: the caller checks the process uid', { SLURM_JOB_UID: undefined }, { owner: alice }],
    ['no counts: one slot each', { SLURM_JOB_CPUS_PER_NODE: undefined }, { hosts: [{ name: 'n2', slots: 1 }, { name: 'n3', slots: 1 }, { name: 'gpu1', slots: 1 }] }],
    ['two images do not matter here', { SLURM_JOB_CONSTRAINTS: 'docker-a&docker-b' }, { image: undefined }],
  ])('%s', async (_name, vars, expected) => {
    expect(await slurmJob({ ...BATCH, ...vars }, 'batch', lookup)).toMatchObject(expected);
  });

  it.each([
    ['no SLURM_JOB_NODELIST', { SLURM_JOB_NODELIST: undefined }, 'jobbox: SLURM_JOB_NODELIST: is not set (not running under Slurm?): '],
    ['bad restart count', { SLURM_RESTART_COUNT: '-1' }, 'jobbox: SLURM_RESTART_COUNT: must be a decimal restart count: -1'],
    ['uid of someone else', { SLURM_JOB_UID: '1001' }, 'jobbox: SLURM_JOB_UID: disagrees with SLURM_JOB_USER "alice" (uid 1000 in the account database): 1001'],
    ['root user', { SLURM_JOB_USER: 'root', SLURM_JOB_UID: '0' }, 'jobbox: SLURM_JOB_USER: jobs owned by uid 0 are refused: root'],
    ['count mismatch', { SLURM_JOB_CPUS_PER_NODE: '2' }, 'jobbox: SLURM_JOB_CPUS_PER_NODE: must have one count per host of SLURM_JOB_NODELIST (3), not 1: 2'],
  ])('%s is refused', async (_name, vars, message) => {
    await expect(slurmJob({ ...BATCH, ...vars }, 'batch', lookup)).rejects.toThrow(expect.objectContaining({ message }));
  });
});

// `scontrol show job --details <id>` on the testbed (Slurm 22.05.8), verbatim. Users set the
// names and comments of the FORGED_* jobs to lines that look like Slurm's own.
const FORGED_ON_ONE_LINE = `JobId=19 JobName=Nodes=node2 CPU_IDs=0-63
   UserId=jbuser1(2001) GroupId=jbuser1(2001) MCS_label=N/A
   Priority=4294901756 Nice=0 Account=(null) QOS=(null)
   JobState=COMPLETED Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:00:10 TimeLimit=UNLIMITED TimeMin=N/A
   SubmitTime=2026-12-07T02:32:37 EligibleTime=2026-12-07T02:32:37
   AccrueTime=2026-12-07T02:32:37
   StartTime=2026-12-07T02:32:37 EndTime=2026-12-07T02:32:47 Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-07T02:32:37 Scheduler=Main
   Partition=normal AllocNode:Sid=localhost:19547
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=node[1-2]
   BatchHost=node1
   NumNodes=2 NumCPUs=3 NumTasks=3 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=3,node=2,billing=3
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node1 CPU_IDs=0-1 Mem=0 GRES=
     Nodes=node2 CPU_IDs=0 Mem=0 GRES=
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=docker-deb12 DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=/home/jbuser1/jbx-h.sh
   WorkDir=/home/jbuser1
   Comment=Nodes=node1 CPU_IDs=0-63 
   StdErr=/home/jbuser1/jbx-h1.out
   StdIn=/dev/null
   StdOut=/home/jbuser1/jbx-h1.out
   Power=
   

`;

const FORGED_NODE_LINE = `JobId=20 JobName=x
     Nodes=node2 CPU_IDs=0-63 Mem=0 GRES=
   UserId=jbuser1(2001) GroupId=jbuser1(2001) MCS_label=N/A
   Priority=4294901755 Nice=0 Account=(null) QOS=(null)
   JobState=CANCELLED Reason=Prolog Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:00:01 TimeLimit=UNLIMITED TimeMin=N/A
   SubmitTime=2026-12-07T02:32:37 EligibleTime=2026-12-07T02:32:37
   AccrueTime=2026-12-07T02:32:37
   StartTime=2026-12-07T02:32:40 EndTime=2026-12-07T02:32:41 Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-07T02:32:40 Scheduler=Main
   Partition=normal AllocNode:Sid=localhost:19547
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=node[2-3]
   BatchHost=node2
   NumNodes=2 NumCPUs=3 NumTasks=3 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=3,node=2,billing=3
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node2 CPU_IDs=1 Mem=0 GRES=
     Nodes=node3 CPU_IDs=0-1 Mem=0 GRES=
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=docker-deb12 DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=/home/jbuser1/jbx-h.sh
   WorkDir=/home/jbuser1
   StdErr=/home/jbuser1/jbx-h2.out
   StdIn=/dev/null
   StdOut=/home/jbuser1/jbx-h2.out
   Power=
   

`;

const ARRAY_BY_ITS_ID = `JobId=21 ArrayJobId=21 ArrayTaskId=3 JobName=jbx-s.sh
   UserId=jbuser1(2001) GroupId=jbuser1(2001) MCS_label=N/A
   Priority=4294901754 Nice=0 Account=(null) QOS=(null)
   JobState=RUNNING Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:00:12 TimeLimit=365-00:00:00 TimeMin=N/A
   SubmitTime=2026-12-07T02:33:37 EligibleTime=2026-12-07T02:33:37
   AccrueTime=2026-12-07T02:33:37
   StartTime=2026-12-07T02:33:38 EndTime=2027-12-07T02:33:38 Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-07T02:33:38 Scheduler=Backfill
   Partition=normal AllocNode:Sid=localhost:19547
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=node2
   BatchHost=node2
   NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=1,node=1,billing=1
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node2 CPU_IDs=0 Mem=0 GRES=
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=docker-deb12 DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=/home/jbuser1/jbx-s.sh
   WorkDir=/home/jbuser1
   StdErr=/dev/null
   StdIn=/dev/null
   StdOut=/dev/null
   Power=
   

JobId=24 ArrayJobId=21 ArrayTaskId=2 JobName=jbx-s.sh
   UserId=jbuser1(2001) GroupId=jbuser1(2001) MCS_label=N/A
   Priority=4294901754 Nice=0 Account=(null) QOS=(null)
   JobState=RUNNING Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:00:12 TimeLimit=365-00:00:00 TimeMin=N/A
   SubmitTime=2026-12-07T02:33:37 EligibleTime=2026-12-07T02:33:37
   AccrueTime=2026-12-07T02:33:37
   StartTime=2026-12-07T02:33:38 EndTime=2027-12-07T02:33:38 Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-07T02:33:38 Scheduler=Backfill
   Partition=normal AllocNode:Sid=localhost:19547
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=node1
   BatchHost=node1
   NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=1,node=1,billing=1
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node1 CPU_IDs=1 Mem=0 GRES=
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=docker-deb12 DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=/home/jbuser1/jbx-s.sh
   WorkDir=/home/jbuser1
   StdErr=/dev/null
   StdIn=/dev/null
   StdOut=/dev/null
   Power=
   

JobId=23 ArrayJobId=21 ArrayTaskId=1 JobName=jbx-s.sh
   UserId=jbuser1(2001) GroupId=jbuser1(2001) MCS_label=N/A
   Priority=4294901754 Nice=0 Account=(null) QOS=(null)
   JobState=RUNNING Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:00:12 TimeLimit=365-00:00:00 TimeMin=N/A
   SubmitTime=2026-12-07T02:33:37 EligibleTime=2026-12-07T02:33:37
   AccrueTime=2026-12-07T02:33:37
   StartTime=2026-12-07T02:33:38 EndTime=2027-12-07T02:33:38 Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-07T02:33:38 Scheduler=Backfill
   Partition=normal AllocNode:Sid=localhost:19547
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=node1
   BatchHost=node1
   NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=1,node=1,billing=1
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node1 CPU_IDs=0 Mem=0 GRES=
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=docker-deb12 DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=/home/jbuser1/jbx-s.sh
   WorkDir=/home/jbuser1
   StdErr=/dev/null
   StdIn=/dev/null
   StdOut=/dev/null
   Power=
   

`;

const ARRAY_TASK = `JobId=21 ArrayJobId=21 ArrayTaskId=3 JobName=jbx-s.sh
   UserId=jbuser1(2001) GroupId=jbuser1(2001) MCS_label=N/A
   Priority=4294901754 Nice=0 Account=(null) QOS=(null)
   JobState=RUNNING Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:00:14 TimeLimit=365-00:00:00 TimeMin=N/A
   SubmitTime=2026-12-07T02:33:37 EligibleTime=2026-12-07T02:33:37
   AccrueTime=2026-12-07T02:33:37
   StartTime=2026-12-07T02:33:38 EndTime=2027-12-07T02:33:38 Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-07T02:33:38 Scheduler=Backfill
   Partition=normal AllocNode:Sid=localhost:19547
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=node2
   BatchHost=node2
   NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=1,node=1,billing=1
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node2 CPU_IDs=0 Mem=0 GRES=
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=docker-deb12 DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=/home/jbuser1/jbx-s.sh
   WorkDir=/home/jbuser1
   StdErr=/dev/null
   StdIn=/dev/null
   StdOut=/dev/null
   Power=
   

`;

const THREE_NODES = `JobId=22 JobName=jbx-s.sh
   UserId=jbuser1(2001) GroupId=jbuser1(2001) MCS_label=N/A
   Priority=4294901753 Nice=0 Account=(null) QOS=(null)
   JobState=RUNNING Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:00:10 TimeLimit=UNLIMITED TimeMin=N/A
   SubmitTime=2026-12-07T02:33:37 EligibleTime=2026-12-07T02:33:37
   AccrueTime=2026-12-07T02:33:37
   StartTime=2026-12-07T02:34:12 EndTime=Unknown Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-07T02:34:12 Scheduler=Main
   Partition=normal AllocNode:Sid=localhost:19547
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=node[1-3]
   BatchHost=node1
   NumNodes=3 NumCPUs=6 NumTasks=6 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=6,node=3,billing=6
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node[1-3] CPU_IDs=0-1 Mem=0 GRES=
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=docker-deb12 DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=/home/jbuser1/jbx-s.sh
   WorkDir=/home/jbuser1
   StdErr=/dev/null
   StdIn=/dev/null
   StdOut=/dev/null
   Power=
   

`;
const GPUS = THREE_NODES.replace('     Nodes=node[1-3] CPU_IDs=0-1 Mem=0 GRES=\n', '     Nodes=node[1-2] CPU_IDs=0-1 Mem=512 GRES=gpu:2(IDX:0-1)\n     Nodes=node3 CPU_IDs=0-1 Mem=512 GRES=gpu:1(IDX:1)\n');

const SALLOC = `JobId=25 JobName=no-shell
   UserId=jbuser1(2001) GroupId=jbuser1(2001) MCS_label=N/A
   Priority=4294901752 Nice=0 Account=(null) QOS=(null)
   JobState=RUNNING Reason=None Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=0 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:00:04 TimeLimit=UNLIMITED TimeMin=N/A
   SubmitTime=2026-12-07T02:34:24 EligibleTime=2026-12-07T02:34:24
   AccrueTime=2026-12-07T02:34:24
   StartTime=2026-12-07T02:34:30 EndTime=Unknown Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-07T02:34:30 Scheduler=Main
   Partition=normal AllocNode:Sid=localhost:19547
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=node[1-2]
   BatchHost=node1
   NumNodes=2 NumCPUs=2 NumTasks=2 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=2,node=2,billing=2
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node[1-2] CPU_IDs=0 Mem=0 GRES=
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=docker-deb12 DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=(null)
   WorkDir=/home/jbuser1
   Power=
   

`;

const FORGED_BATCH_FLAG = `JobId=26 JobName=x
   Requeue=1 Restarts=0 BatchFlag=0 Reboot=0 ExitCode=0:0
   UserId=jbuser1(2001) GroupId=jbuser1(2001) MCS_label=N/A
   Priority=4294901751 Nice=0 Account=(null) QOS=(null)
   JobState=CANCELLED Reason=Prolog Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:00:00 TimeLimit=365-00:00:00 TimeMin=N/A
   SubmitTime=2026-12-07T02:34:37 EligibleTime=2026-12-07T02:34:37
   AccrueTime=2026-12-07T02:34:37
   StartTime=2026-12-07T02:34:38 EndTime=2026-12-07T02:34:38 Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-07T02:34:38 Scheduler=Backfill
   Partition=normal AllocNode:Sid=localhost:19547
   ReqNodeList=(null) ExcNodeList=(null)
   NodeList=node[1-2]
   BatchHost=node1
   NumNodes=2 NumCPUs=2 NumTasks=2 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=2,node=2,billing=2
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node[1-2] CPU_IDs=0 Mem=0 GRES=
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=docker-deb12 DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=/home/jbuser1/jbx-h.sh
   WorkDir=/home/jbuser1
   StdErr=/dev/null
   StdIn=/dev/null
   StdOut=/dev/null
   Power=
   

`;

const FORGED_OUTSIDE_NODE = `JobId=27 JobName=jbx-h.sh
   UserId=jbuser1(2001) GroupId=jbuser1(2001) MCS_label=N/A
   Priority=4294901750 Nice=0 Account=(null) QOS=(null)
   JobState=CANCELLED Reason=Prolog Dependency=(null)
   Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0
   DerivedExitCode=0:0
   RunTime=00:00:00 TimeLimit=365-00:00:00 TimeMin=N/A
   SubmitTime=2026-12-07T02:34:37 EligibleTime=2026-12-07T02:34:37
   AccrueTime=2026-12-07T02:34:37
   StartTime=2026-12-07T02:34:38 EndTime=2026-12-07T02:34:38 Deadline=N/A
   SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-12-07T02:34:38 Scheduler=Backfill
   Partition=normal AllocNode:Sid=localhost:19547
   ReqNodeList=node[1-2] ExcNodeList=(null)
   NodeList=node[1-2]
   BatchHost=node1
   NumNodes=2 NumCPUs=2 NumTasks=2 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=2,node=2,billing=2
   Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=*
   JOB_GRES=(null)
     Nodes=node[1-2] CPU_IDs=1 Mem=0 GRES=
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   Features=docker-deb12 DelayBoot=00:00:00
   OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null)
   Command=/home/jbuser1/jbx-h.sh
   WorkDir=/home/jbuser1
   Comment=c
     Nodes=node3 CPU_IDs=0-63 Mem=0 GRES= 
   StdErr=/dev/null
   StdIn=/dev/null
   StdOut=/dev/null
   Power=
   

`;

describe('arrayTaskName', () => {
  it.each([
    ['a job outside any array', FORGED_ON_ONE_LINE, '19', undefined],
    ["the array's first task, asked by the id it shares with the array", ARRAY_BY_ITS_ID, '21', '21_3'],
    ['the same task asked by its task name', ARRAY_TASK, '21', '21_3'],
  ])('%s', (_name, text, id, task) => expect(arrayTaskName(text, id)).toBe(task));

  it("refuses another job's record", () => {
    expect(thrown(() => arrayTaskName(THREE_NODES, '21'))).toBe('jobbox: scontrol show job: does not start with the record of job 21: JobId=22 JobName=jbx-s.sh');
  });
});

describe('parseJobRecord', () => {
  it.each([
    ['only the per-node lines count, not `Nodes=… CPU_IDs=…` in the name and comment', FORGED_ON_ONE_LINE, '19', ['node1', 'node2'], { batch: true, cpus: [2, 1], cpuIds: ['0-1', '0'], gres: ['', ''] }],
    ["counts follow the allocation's order", FORGED_ON_ONE_LINE, '19', ['node2', 'node1'], { batch: true, cpus: [1, 2], cpuIds: ['0', '0-1'], gres: ['', ''] }],
    ['one line for three nodes with the same CPUs', THREE_NODES, '22', ['node1', 'node2', 'node3'], { batch: true, cpus: [2, 2, 2], cpuIds: ['0-1', '0-1', '0-1'], gres: ['', '', ''] }],
    ['an array task asked by its task name', ARRAY_TASK, '21', ['node2'], { batch: true, cpus: [1], cpuIds: ['0'], gres: [''] }],
    ['salloc: no batch script', SALLOC, '25', ['node1', 'node2'], { batch: false, cpus: [1, 1], cpuIds: ['0', '0'], gres: ['', ''] }],
    ['a batch job requeued after a failed launch (BatchFlag=2)', THREE_NODES.replace('BatchFlag=1', 'BatchFlag=2'), '22', ['node1', 'node2', 'node3'], { batch: true, cpus: [2, 2, 2], cpuIds: ['0-1', '0-1', '0-1'], gres: ['', '', ''] }],
    // As slurmctld 22.05 printed them on the testbed (gres.conf File=…/nvidia[0-1]): --gpus=3 over two nodes.
    ['GPUs per node, as printed', GPUS, '22', ['node1', 'node2', 'node3'], { batch: true, cpus: [2, 2, 2], cpuIds: ['0-1', '0-1', '0-1'], gres: ['gpu:2(IDX:0-1)', 'gpu:2(IDX:0-1)', 'gpu:1(IDX:1)'] }],
  ])('%s', (_name, text, id, hosts, record) => expect(parseJobRecord(text, id, hosts)).toEqual(record));

  it.each([
    ['a name that forges a per-node line (node2 twice)', FORGED_NODE_LINE, '20', ['node2', 'node3'], 'jobbox: scontrol show job: lists CPUs on a node twice for job 20: node2'],
    ['a comment that forges a per-node line for a node outside the allocation', FORGED_OUTSIDE_NODE, '27', ['node1', 'node2'], "jobbox: scontrol show job: lists CPUs on a node outside job 27's allocation: node3"],
    ['a name that forges the BatchFlag line', FORGED_BATCH_FLAG, '26', ['node1', 'node2'], 'jobbox: scontrol show job: must have one BatchFlag line, not 2: 26'],
    ["the array's tasks, all asked by the first one's id", ARRAY_BY_ITS_ID, '21', ['node2'], 'jobbox: scontrol show job: must have one BatchFlag line, not 3: 21'],
    ['a node of the allocation without CPUs', THREE_NODES, '22', ['node1', 'node2', 'node3', 'node4'], 'jobbox: scontrol show job: lists no CPUs for job 22 on a node of its allocation: node4'],
    ["another job's record", THREE_NODES, '23', ['node1'], 'jobbox: scontrol show job: does not start with the record of job 23: JobId=22 JobName=jbx-s.sh'],
    ['nothing', '', '22', ['node1'], 'jobbox: scontrol show job: does not start with the record of job 22: '],
    ['CPU_IDs backwards', THREE_NODES.replace('CPU_IDs=0-1', 'CPU_IDs=1-0'), '22', ['node1'], 'jobbox: scontrol show job: unreadable CPU_IDs: 1-0'],
    ['CPU_IDs not a list of ranges', THREE_NODES.replace('CPU_IDs=0-1', 'CPU_IDs=0-1x'), '22', ['node1'], 'jobbox: scontrol show job: unreadable CPU_IDs: 0-1x'],
  ])('refuses %s', (_name, text, id, hosts, message) => expect(thrown(() => parseJobRecord(text, id, hosts))).toBe(message));
});

describe('slurmHookJob: each node\'s GPUs, for a queue that passes them', () => {
  const env = { ...PROLOG, SLURMD_NODENAME: 'n1' };
  const record = { batch: true, cpus: [1, 1, 1], cpuIds: ['0', '1', '0'], gres: ['gpu:1(IDX:1)', '', 'gpu(CNT:1)'] };
  it('reads them from the record in a GPU queue, and refuses one it cannot read', async () => {
    await expect(slurmHookJob(env, () => true, lookup, record, false, true)).rejects.toThrow('jobbox: scontrol show job: unreadable GPUs in GRES: gpu(CNT:1)');
    const two = { ...record, gres: ['gpu:1(IDX:1)', '', 'gpu:2(IDX:0-1)'] };
    expect((await slurmHookJob(env, () => true, lookup, two, false, true))!.job.hosts.map((h) => h.gpus)).toEqual([[1], undefined, [0, 1]]);
  });
  it('never reads them elsewhere: a GRES it cannot read costs a job of another queue nothing', async () => {
    expect((await slurmHookJob(env, () => true, lookup, record, false, false))!.job.hosts.map((h) => h.gpus)).toEqual([undefined, undefined, undefined]);
  });
});

describe('gresFiles: the file of each GRES index, from slurmd -G', () => {
  it.each([
    // As slurmd 22.05 printed it on the testbed: one record for gres.conf's File=…/nvidia[0-1].
    ['one record for a range', [{ count: 2, index: 0, file: '/var/lib/jobbox-testbed/gpu/nvidia[0-1]' }], [[0, '/var/lib/jobbox-testbed/gpu/nvidia0'], [1, '/var/lib/jobbox-testbed/gpu/nvidia1']]],
    ['a subset, from index 0', [{ count: 3, index: 0, file: '/dev/nvidia[1-3]' }], [[0, '/dev/nvidia1'], [1, '/dev/nvidia2'], [2, '/dev/nvidia3']]],
    ['one record a GPU (AutoDetect), out of minor order', [{ count: 1, index: 0, file: '/dev/nvidia2' }, { count: 1, index: 1, file: '/dev/nvidia0' }], [[0, '/dev/nvidia2'], [1, '/dev/nvidia0']]],
    ['a list', [{ count: 2, index: 2, file: '/dev/nvidia[4,6]' }], [[2, '/dev/nvidia4'], [3, '/dev/nvidia6']]],
  ])('%s', (_name, records, files) => expect([...gresFiles(records)]).toEqual(files));

  it('refuses a record whose files are not its count', () => {
    expect(thrown(() => gresFiles([{ count: 3, index: 0, file: '/dev/nvidia[0-1]' }]))).toBe('jobbox: slurmd -G: a record of 3 GPUs names 2 files: /dev/nvidia[0-1]');
  });
});

describe('gresGpus: a node\'s GPUs from its GRES field', () => {
  it.each([
    ['none', '', []],
    ['two', 'gpu:2(IDX:0-1)', [0, 1]],
    ['typed, beside another GRES', 'gpu:a100:2(IDX:0,3),tmpdisk:100', [0, 3]],
    ['two types', 'gpu:a100:1(IDX:3),gpu:v100:1(IDX:0)', [0, 3]],
    ['another GRES only', 'tmpdisk:100', []],
  ])('%s', (_name, gres, gpus) => expect(gresGpus(gres)).toEqual(gpus));

  it.each([
    // Slurm's count-only form, when the allocation has no bitmap: the job asked for GPUs.
    ['GPUs without their indices', 'gpu(CNT:2)', 'jobbox: scontrol show job: unreadable GPUs in GRES: gpu(CNT:2)'],
    ['a count without indices', 'gpu:2', 'jobbox: scontrol show job: unreadable GPUs in GRES: gpu:2'],
    ['a GPU count that is not its index list', 'gpu:2(IDX:0)', 'jobbox: scontrol show job: GRES counts 2 GPUs but lists 1: gpu:2(IDX:0)'],
    ['an index range backwards', 'gpu:2(IDX:1-0)', 'jobbox: scontrol show job: unreadable GRES index list: 1-0'],
  ])('refuses %s', (_name, gres, message) => expect(thrown(() => gresGpus(gres))).toBe(message));
});

describe('prologEnvOf: the Prolog\'s environment from a job\'s record, for the dry run', () => {
  it('names the owner, partition, nodes, constraint, work dir and restart count, on the first node', () => {
    expect(prologEnvOf(THREE_NODES, '22')).toEqual({
      SLURM_JOB_ID: '22', SLURM_JOB_USER: 'jbuser1', SLURM_JOB_UID: '2001', SLURM_JOB_PARTITION: 'normal', SLURM_NODELIST: 'node[1-3]',
      SLURM_JOB_CONSTRAINTS: 'docker-deb12', SLURM_JOB_WORK_DIR: '/home/jbuser1', SLURM_JOB_RESTART_COUNT: '0', SLURMD_NODENAME: 'node1',
    });
  });

  it.each([
    ['a name that forges the Restarts line', FORGED_BATCH_FLAG, '26', 'jobbox: scontrol show job: must have one Restarts line, not 2: 26'],
    ['a work dir that forges the owner\'s line', THREE_NODES.replace('WorkDir=/home/jbuser1', 'WorkDir=/x\n   UserId=root(0) GroupId=root(0) MCS_label=N/A'), '22', 'jobbox: scontrol show job: must have one UserId line, not 2: 22'],
    ["another job's record", THREE_NODES, '23', 'jobbox: scontrol show job: does not start with the record of job 23: JobId=22 JobName=jbx-s.sh'],
    ['a job with no nodes', THREE_NODES.replace('NodeList=node[1-3]', 'NodeList='), '22', 'jobbox: job 22: has no nodes: it is pending, or was requeued: NodeList'],
  ])('refuses %s', (_name, text, id, message) => expect(thrown(() => prologEnvOf(text, id))).toBe(message));
});

describe('slurmHook: a jobbox job on its batch host, for a Prolog without its config', () => {
  it.each([
    ['a jobbox job on its batch host', { SLURMD_NODENAME: 'n1' }, true],
    ['a jobbox job on another of its nodes', {}, false],
    ['two images are still a jobbox job', { SLURMD_NODENAME: 'n1', SLURM_JOB_CONSTRAINTS: '[docker-a|docker-b]' }, true],
    ['no constraint', { SLURMD_NODENAME: 'n1', SLURM_JOB_CONSTRAINTS: undefined }, false],
    ['constraints without an image', { SLURMD_NODENAME: 'n1', SLURM_JOB_CONSTRAINTS: 'bigmem' }, false],
    ['a feature that only ends in docker-…', { SLURMD_NODENAME: 'n1', SLURM_JOB_CONSTRAINTS: 'mydocker-x' }, false],
    ['SLURM_JOB_NODELIST wins when set', { SLURMD_NODENAME: 'm1', SLURM_JOB_NODELIST: 'm[1-2]' }, true],
    ['an unreadable node list', { SLURMD_NODENAME: 'n1', SLURM_NODELIST: 'n[3-1]' }, false],
    ['no node name', { SLURMD_NODENAME: undefined, SLURM_NODELIST: 'n1' }, false],
  ])('%s → %s', (_name, vars, expected) => expect(slurmHook({ ...PROLOG, ...vars }).jobboxJobHere).toBe(expected));
});

describe('prologOutcome: a failed start requeues the job, but not for ever', () => {
  it.each([
    ['a cause that may heal, first start', 1, 0, 'requeue'],
    ['a cause that may heal, after 4 requeues', 1, 4, 'requeue'],
    ['a cause that may heal, after 5 requeues (MAX_REQUEUES): not healing', 1, 5, 'cancel'],
    ['a permanent cause, first start', 99, 0, 'cancel'],
  ])('%s → %s', (_name, code, restarts, outcome) => expect(prologOutcome(code, restarts)).toBe(outcome));

  it('reads the restart count slurmd gave, and 0 from anything else', () => {
    expect(slurmHook({ ...PROLOG, SLURM_JOB_RESTART_COUNT: '5' }).restarts).toBe(5);
    for (const v of [undefined, '', '-1', '5x', '99999999999']) expect(slurmHook({ ...PROLOG, SLURM_JOB_RESTART_COUNT: v }).restarts).toBe(0);
  });
});

describe('parseSqueue (squeue --noheader --states=all --Format=JobID:|,ArrayTaskID:|,State:|,RestartCnt:|)', () => {
  it('reads records by job id (array tasks have their own), a pending array meta record included', () => {
    const text = '1|N/A|RUNNING|0|\n3|1|COMPLETING|1|\n2|2|CANCELLED|0|\n9|3-10|PENDING|0|\nnot a record\n\n';
    expect([...parseSqueue(text)]).toEqual([
      ['1', { kind: 'record', state: 'RUNNING', restarts: 0 }],
      ['3', { kind: 'record', state: 'COMPLETING', restarts: 1 }],
      ['2', { kind: 'record', state: 'CANCELLED', restarts: 0 }],
      ['9', { kind: 'record', state: 'PENDING', restarts: 0 }],
    ]);
  });

  it('a job name cannot pass for a state: no field of the format is user text', () => {
    // What `scontrol show job -o` would print for `sbatch -J "x JobState=COMPLETED"`.
    expect(parseSqueue('JobId=1 JobName=x JobState=COMPLETED UserId=jbuser1(2001) JobState=RUNNING\n').size).toBe(0);
  });
});

describe('slurmAnswer: a job missing from the listing is asked alone', () => {
  const listing = parseSqueue('1|N/A|RUNNING|0|\n');
  it.each<[string, Parameters<typeof slurmAnswer>[2], Answer]>([
    ['slurmctld: invalid job id → unknown', { code: 1, stdout: '', stderr: 'slurm_load_jobs error: Invalid job id specified\n' }, { kind: 'unknown' }],
    ['appeared meanwhile → its record', { code: 0, stdout: '77|N/A|PENDING|0|\n', stderr: '' }, { kind: 'record', state: 'PENDING', restarts: 0 }],
    ['controller down → failed', { code: 1, stdout: '', stderr: 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)\n' },
      { kind: 'failed', reason: 'squeue --jobs=77: exit 1: slurm_load_jobs error: Unable to contact slurm controller (connect failure)' }],
    ['timed out → failed, even with the message', { code: undefined, stdout: '', stderr: 'Invalid job id specified', error: 'timed out after 30 s' },
      { kind: 'failed', reason: 'squeue --jobs=77: timed out after 30 s' }],
    ['exit 0 but no line → failed', { code: 0, stdout: '', stderr: '' }, { kind: 'failed', reason: 'squeue --jobs=77: no record of it' }],
    ['not asked → failed', undefined, { kind: 'failed', reason: 'not in squeue --states=all and not asked alone' }],
  ])('%s', (_name, single, answer) => {
    expect(slurmAnswer('77', listing, single)).toEqual(answer);
  });

  it('takes the listing when the job is there', () => {
    expect(slurmAnswer('1', listing, undefined)).toEqual({ kind: 'record', state: 'RUNNING', restarts: 0 });
  });
});

describe('slurm cgroups', () => {
  it.each<[boolean, string]>([[true, 'slurm_node2'], [false, 'slurm']])('slurmCgroupRoot(node2, multiple slurmd %s) = %s', (multiple, root) => expect(slurmCgroupRoot('node2', multiple)).toBe(root));

  it.each<[string, boolean]>([
    ['Configuration data as of …\nMULTIPLE_SLURMD         = Yes\nMpiDefault = none\n', true],
    ['MpiDefault = none\n', false],
    ['JobName=MULTIPLE_SLURMD = Yes x\n', false],
  ])('multipleSlurmd(%j) = %s', (text, multiple) => expect(multipleSlurmd(text)).toBe(multiple));

  it('puts a node\'s container under its index in the job\'s extern step', () => {
    const job = { id: '77', owner: { name: 'a', uid: 2001, gid: 2001, gids: [], home: '/h', shell: '/bin/sh' }, hosts: [{ name: 'n1', slots: 1 }, { name: 'n2', slots: 1 }, { name: 'n3', slots: 1 }] };
    expect(slurmExternTask(job, true, 2)).toEqual(['slurm_n3', 'uid_2001', 'job_77', 'step_extern', 'task_2']);
    expect(slurmExternTask(job, false, 0)).toEqual(['slurm', 'uid_2001', 'job_77', 'step_extern', 'task_0']);
  });
});

describe('jobImage', () => {
  const D = `sha256:${'a'.repeat(64)}`;
  it.each([
    [{}, undefined],
    [{ SLURM_JOB_CONSTRAINTS: 'docker-deb12' }, 'deb12'],
    [{ SLURM_JOB_COMMENT: `run 7 jobbox-image=10.78.0.1:5000/projects/x:1@${D}` }, `10.78.0.1:5000/projects/x:1@${D}`],
    [{ SLURM_JOB_CONSTRAINTS: 'docker-deb12', SLURM_JOB_COMMENT: `jobbox-image=deb12@${D}` }, `deb12@${D}`],
    [{ SLURM_JOB_COMMENT: 'no-jobbox-image=x' }, undefined],
  ])('%j → %j', (env, image) => expect(jobImage(env)).toBe(image));

  it.each([
    [{ SLURM_JOB_CONSTRAINTS: 'docker-deb12', SLURM_JOB_COMMENT: `jobbox-image=deb12-mpich@${D}` }, `jobbox: comment: names another image than the constraint docker-deb12: deb12-mpich@${D}`],
    [{ SLURM_JOB_COMMENT: 'jobbox-image=a jobbox-image=b' }, 'jobbox: comment: names more than one jobbox-image= image: jobbox-image=a jobbox-image=b'],
  ])('refuses %j', (env, message) => expect(() => jobImage(env)).toThrow(message));
});
