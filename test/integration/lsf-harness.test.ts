import { describe, expect, it } from 'vitest';
import { submitLsf, type LsfJobSpec, type LsfQueueHooks } from '../harness/lsf/harness.js';

// The harness itself, with stand-in hooks written in sh: if it does not play LSF's contract
// faithfully, the jobbox suites built on it prove nothing.
const job = (over: Partial<LsfJobSpec>): LsfJobSpec => ({ user: 'jbuser1', command: 'true', hosts: [{ name: 'node2', slots: 2 }, { name: 'node3', slots: 1 }], ...over });
const report = 'echo "$(id -u) $(id -g) $(hostname) $(pwd) home=${HOME-unset} path=$PATH" >&2; env | grep -E "^(LSB_|LS_SUB|JOBBOX_|USER=)" | sort >&2';
const quiet: LsfQueueHooks = { preExec: 'exit 0', postExec: 'exit 0', jobStarter: '/bin/sh -c "%USRCMD"' };

describe('LSF harness', () => {
  it('runs PRE_EXEC as root on the first host with the job environment, minus HOME', async () => {
    const run = await submitLsf({ ...quiet, preExec: report }, job({ queue: 'short', app: 'docker-deb12-mpich', jobId: 4711, skipStarter: true, skipPostExec: true }));
    expect(run.state).toBe('DONE');
    expect(run.preExec[0]?.stderr.split('\n')).toEqual([
      '0 0 node2 /tmp home=unset path=/bin:/usr/bin:/sbin:/usr/sbin',
      'JOBBOX_IMAGE=deb12-mpich',
      'LSB_HOSTS=node2 node2 node3',
      'LSB_JOBID=4711',
      'LSB_JOBNAME=true',
      'LSB_JOB_EXECUSER=jbuser1',
      'LSB_MCPU_HOSTS=node3 1 node2 2 ',
      'LSB_QUEUE=short',
      'LSB_SUB_HOST=node1',
      'LS_SUBCWD=/home/jbuser1',
      'USER=jbuser1',
      '',
    ]);
  });

  it('keeps the user gid and groups for root hooks under openlava', async () => {
    const run = await submitLsf({ ...quiet, preExec: 'id -u >&2; id -G >&2' }, job({ flavour: 'openlava', skipStarter: true, skipPostExec: true }));
    const [uid, groups] = run.preExec[0]?.stderr.trim().split('\n') ?? [];
    expect(uid).toBe('0');
    expect(groups?.split(' ')).toHaveLength(3);
    expect(groups?.split(' ')[0]).toBe('2001');
  });

  it('runs the starter as the user in the submission cwd, then POST_EXEC with the wait status', async () => {
    const run = await submitLsf(
      { ...quiet, postExec: 'echo "stat=$LSB_JOBEXIT_STAT pend=${LSB_JOBPEND-unset} $(id -u) $(hostname)" >&2' },
      // Unquoted: the starter line puts %USRCMD in double quotes, as sites write it.
      job({ command: 'id -un; pwd; echo $HOME $LSB_JOBID; exit 3', jobId: 99 }),
    );
    expect(run.starter).toEqual({ code: 3, stdout: 'jbuser1\n/home/jbuser1\n/home/jbuser1 99\n', stderr: '' });
    expect(run.postExec).toEqual({ code: 0, stderr: 'stat=768 pend=unset 0 node2\n' });
    expect(run.state).toBe('EXIT');
  });

  it('plays bkill: signals the starter process group, and POST_EXEC sees the signal', async () => {
    const run = await submitLsf(
      { ...quiet, postExec: 'echo "stat=$LSB_JOBEXIT_STAT" >&2' },
      job({ command: 'sleep 60 & echo started; wait', starterSignal: { signal: 'SIGTERM', whenStdoutContains: 'started' } }),
    );
    expect(run.starter).toMatchObject({ code: null, signal: 'SIGTERM', stdout: 'started\n' });
    expect(run.postExec?.stderr).toBe('stat=15\n');
    expect(run.state).toBe('EXIT');
  });

  it('requeues on a non-zero PRE_EXEC, on the requeue hosts, until it succeeds', async () => {
    const preExec = 'n=$(cat /tmp/jobbox-harness-$LSB_JOBID 2>/dev/null || echo 0); echo $((n+1)) > /tmp/jobbox-harness-$LSB_JOBID; [ "$n" -ge 2 ] || exit 1; rm /tmp/jobbox-harness-$LSB_JOBID';
    const run = await submitLsf({ ...quiet, preExec }, job({ requeueHosts: [{ name: 'node3', slots: 3 }], skipPostExec: true }));
    expect(run.preExec.map((p) => [p.code, p.hosts.join(',')])).toEqual([[1, 'node2,node3'], [1, 'node3'], [0, 'node3']]);
    expect(run.state).toBe('DONE');
  });

  it.each([
    ['99 EXITs the job at once', 'exit 99', 1],
    ['other codes give up after maxRequeues', 'exit 1', 3],
  ])('%s, with no starter and no POST_EXEC', async (_name, preExec, attempts) => {
    const run = await submitLsf({ ...quiet, preExec }, job({ maxRequeues: 2 }));
    expect(run.preExec).toHaveLength(attempts);
    expect(run).toMatchObject({ state: 'EXIT' });
    expect(run.starter).toBeUndefined();
    expect(run.postExec).toBeUndefined();
  });
});
