import { describe, expect, it } from 'vitest';
import {
  attemptOver, describeAction, hostfileHosts, jobsToAsk, parseKey, planGc, planStatusGc, statusToAsk, type ClaimFact, type DirFact, type GcInput,
} from '../../src/plan/gc.js';
import type { Answer, Scheduler } from '../../src/scheduler/answer.js';

const NOW = 1_800_000_000_000;
const GRACE = 600_000;
const OLD = NOW - 3_600_000; // an hour ago
const YOUNG = NOW - 60_000; // a minute ago
const HOSTFILE = 'node1 slots=2\nnode2 slots=2\n';

const claim = (name: string, port: number, mtimeMs = OLD): ClaimFact => ({ claim: name, port, mtimeMs });
const dir = (name: string, mtimeMs = OLD, hostfile: string | undefined = HOSTFILE): DirFact => ({ name, mtimeMs, isDirectory: true, hostfile });
const running: Answer = { kind: 'record', state: 'RUNNING', restarts: 0 };
const completed: Answer = { kind: 'record', state: 'COMPLETED', restarts: 0 };
const failed: Answer = { kind: 'failed', reason: 'squeue: exit 1: slurm_load_jobs error: Unable to contact slurm controller (connect failure)' };

type Case = Omit<Partial<GcInput>, 'answers'> & { answers: Record<string, Answer> };

function plan(over: Case): string[] {
  const input: GcInput = {
    scheduler: 'slurm', claims: [], dirs: [], nowMs: NOW, graceMs: GRACE, sweepNodes: [], ...over, answers: new Map(Object.entries(over.answers)),
  };
  return planGc(input).map((a) => `${a.reclaim ? 'reclaim' : 'keep'} ${a.key} (${describeAction(a)}): ${a.reason}${a.unanswered ? ' [unanswered]' : ''}`);
}

describe('planGc: reclaim only on a positive answer, after the grace period', () => {
  it.each<[string, Case, string[]]>([
    ['running job: kept',
      { claims: [claim('11.0.0', 30001)], dirs: [dir('11.0.0')], answers: { '11.0': running } },
      ['keep 11.0.0 (port 30001, job dir): job is RUNNING']],
    ['pending job: kept',
      { claims: [claim('12.0.0', 30002)], dirs: [dir('12.0.0')], answers: { '12.0': { kind: 'record', state: 'PENDING', restarts: 0 } } },
      ['keep 12.0.0 (port 30002, job dir): job is PENDING']],
    ['Epilog still running (COMPLETING): kept',
      { claims: [claim('13.0.0', 30003)], dirs: [dir('13.0.0')], answers: { '13.0': { kind: 'record', state: 'COMPLETING', restarts: 0 } } },
      ['keep 13.0.0 (port 30003, job dir): job is COMPLETING (its Epilog may still run)']],
    ['query failed: kept, and counted as unanswered',
      { claims: [claim('14.0.0', 30004)], dirs: [dir('14.0.0')], answers: { '14.0': failed } },
      [`keep 14.0.0 (port 30004, job dir): Slurm could not be asked (${failed.reason}); nothing done [unanswered]`]],
    ['no answer at all for the job: kept',
      { claims: [claim('15.0.0', 30005)], answers: {} },
      ['keep 15.0.0 (port 30005): Slurm gave no answer for it [unanswered]']],
    ['completed but younger than the grace period: kept',
      { claims: [claim('16.0.0', 30006, YOUNG)], dirs: [dir('16.0.0', YOUNG)], answers: { '16.0': completed } },
      ['keep 16.0.0 (port 30006, job dir): job is COMPLETED, but changed 60 s ago (grace 600 s)']],
    ['completed, old claim but a freshly written job dir: kept (the newest time counts)',
      { claims: [claim('17.0.0', 30007)], dirs: [dir('17.0.0', YOUNG)], answers: { '17.0': completed } },
      ['keep 17.0.0 (port 30007, job dir): job is COMPLETED, but changed 60 s ago (grace 600 s)']],
    ['completed and old: reclaimed on the hostfile nodes',
      { claims: [claim('18.0.0', 30008)], dirs: [dir('18.0.0')], answers: { '18.0': completed } },
      ['reclaim 18.0.0 (port 30008, job dir, containers on node1 node2): job is COMPLETED']],
    ['every final Slurm state counts: TIMEOUT',
      { claims: [claim('19.0.0', 30009)], dirs: [dir('19.0.0')], answers: { '19.0': { kind: 'record', state: 'TIMEOUT', restarts: 0 } } },
      ['reclaim 19.0.0 (port 30009, job dir, containers on node1 node2): job is TIMEOUT']],
    ['unknown to the scheduler (purged) and old: reclaimed',
      { claims: [claim('20.0.0', 30010)], dirs: [dir('20.0.0')], answers: { '20.0': { kind: 'unknown' } } },
      ['reclaim 20.0.0 (port 30010, job dir, containers on node1 node2): Slurm does not know the job (finished and purged)']],
    ['requeued: the old attempt is reclaimed while the new attempt is kept',
      { claims: [claim('21.0.0', 30011), claim('21.0.1', 30012)], dirs: [dir('21.0.0'), dir('21.0.1')], answers: { '21.0': { kind: 'record', state: 'RUNNING', restarts: 1 } } },
      ['reclaim 21.0.0 (port 30011, job dir, containers on node1 node2): job was requeued (restart 1, now RUNNING): attempt 0 is over',
        'keep 21.0.1 (port 30012, job dir): job is RUNNING']],
    ['requeued but the old attempt\'s Epilog still running: kept',
      { claims: [claim('22.0.0', 30013)], dirs: [dir('22.0.0')], answers: { '22.0': { kind: 'record', state: 'COMPLETING', restarts: 1 } } },
      ['keep 22.0.0 (port 30013, job dir): job is COMPLETING (its Epilog may still run)']],
    ['a restart count below the attempt (the id was reused?): kept',
      { claims: [claim('23.0.2', 30014)], answers: { '23.0': { kind: 'record', state: 'RUNNING', restarts: 1 } } },
      ['keep 23.0.2 (port 30014): job is RUNNING at restart 1, before attempt 2']],
    ['dir without claim: reclaimed (containers and dir)',
      { dirs: [dir('24.0.0')], answers: { '24.0': completed } },
      ['reclaim 24.0.0 (job dir, containers on node1 node2): job is COMPLETED']],
    ['claim without dir: kept, its nodes are unknown',
      { claims: [claim('25.0.0', 30015)], answers: { '25.0': completed } },
      ['keep 25.0.0 (port 30015): job is COMPLETED, but it has no hostfile to find its nodes by: run gc with --nodes']],
    ['claim without dir, --nodes given: reclaimed by sweeping those nodes',
      { claims: [claim('25.0.0', 30015)], answers: { '25.0': completed }, sweepNodes: ['node1', 'node2', 'node3'] },
      ['reclaim 25.0.0 (port 30015, containers on node1 node2 node3): job is COMPLETED']],
    ['dir whose hostfile is gone (teardown died after the containers): --nodes sweeps',
      { dirs: [{ name: '26.0.0', mtimeMs: OLD, isDirectory: true, hostfile: undefined }], answers: { '26.0': completed }, sweepNodes: ['node3'] },
      ['reclaim 26.0.0 (job dir, containers on node3): job is COMPLETED']],
    ['a hostfile naming a bad host is not trusted',
      { dirs: [dir('27.0.0', OLD, 'node1 slots=1\n-oProxyCommand=x slots=1\n')], answers: { '27.0': completed }, sweepNodes: ['node1'] },
      ['keep 27.0.0 (job dir): job is COMPLETED, but its hostfile names a bad host']],
    ['a name that is not <jobid>.<index>.<attempt>: kept, never asked about',
      { claims: [claim('foo', 30016)], dirs: [dir('07.0.0'), { name: 'x', mtimeMs: OLD, isDirectory: true, hostfile: undefined }], answers: {} },
      ['keep 07.0.0 (job dir): not a <jobid>.<index>.<attempt> name', 'keep foo (port 30016): not a <jobid>.<index>.<attempt> name',
        'keep x (job dir): not a <jobid>.<index>.<attempt> name']],
    ['a file in state_dir: kept',
      { dirs: [{ name: '28.0.0', mtimeMs: OLD, isDirectory: false, hostfile: undefined }], answers: { '28.0': completed } },
      ['keep 28.0.0 (job dir): in state_dir but not a directory']],
    ['array tasks are told apart by index',
      { dirs: [dir('29.3.0'), dir('29.4.0')], answers: { '29.3': completed, '29.4': running } },
      ['reclaim 29.3.0 (job dir, containers on node1 node2): job is COMPLETED', 'keep 29.4.0 (job dir): job is RUNNING']],
    ['two ports held by one attempt are both freed',
      { claims: [claim('30.0.0', 30018), claim('30.0.0', 30017)], dirs: [dir('30.0.0')], answers: { '30.0': completed } },
      ['reclaim 30.0.0 (ports 30017 30018, job dir, containers on node1 node2): job is COMPLETED']],
    ['grace 0 reclaims at once',
      { claims: [claim('31.0.0', 30019, NOW)], dirs: [dir('31.0.0', NOW)], answers: { '31.0': completed }, graceMs: 0 },
      ['reclaim 31.0.0 (port 30019, job dir, containers on node1 node2): job is COMPLETED']],
  ])('%s', (_name, input, expected) => {
    expect(plan(input)).toEqual(expected);
  });

  it.each<[string, Answer, string]>([
    ['DONE', { kind: 'record', state: 'DONE' }, 'reclaim 41.0.node1 (port 30020, job dir, containers on node1 node2): job is DONE'],
    ['EXIT', { kind: 'record', state: 'EXIT' }, 'reclaim 41.0.node1 (port 30020, job dir, containers on node1 node2): job is EXIT'],
    ['not found', { kind: 'unknown' }, 'reclaim 41.0.node1 (port 30020, job dir, containers on node1 node2): LSF does not know the job (finished and purged)'],
    ['RUN', { kind: 'record', state: 'RUN' }, 'keep 41.0.node1 (port 30020, job dir): job is RUN'],
    ['ZOMBI (killed, host unreachable)', { kind: 'record', state: 'ZOMBI' }, 'keep 41.0.node1 (port 30020, job dir): job is ZOMBI'],
    ['UNKWN', { kind: 'record', state: 'UNKWN' }, 'keep 41.0.node1 (port 30020, job dir): job is UNKWN'],
    ['bjobs failing', { kind: 'failed', reason: 'bjobs: not found on PATH' }, 'keep 41.0.node1 (port 30020, job dir): LSF could not be asked (bjobs: not found on PATH); nothing done [unanswered]'],
  ])('LSF %s', (_name, answer, expected) => {
    expect(plan({ scheduler: 'lsf', claims: [claim('41.0.node1', 30020)], dirs: [dir('41.0.node1')], answers: { '41.0': answer } })).toEqual([expected]);
  });
});

describe('attemptOver', () => {
  it.each<[Scheduler, Answer, string, boolean | undefined]>([
    ['slurm', { kind: 'record', state: 'PREEMPTED', restarts: 0 }, '0', true],
    ['slurm', { kind: 'record', state: 'REQUEUE_HOLD', restarts: 1 }, '0', true],
    ['slurm', { kind: 'record', state: 'REQUEUE_HOLD', restarts: 1 }, '1', false],
    ['slurm', { kind: 'record', state: 'SUSPENDED', restarts: 0 }, '0', false],
    // Not a restart count: only a final state says it is over.
    ['slurm', { kind: 'record', state: 'RUNNING', restarts: 3 }, 'node1', false],
    ['lsf', { kind: 'record', state: 'PEND' }, 'node1', false],
    ['lsf', { kind: 'failed', reason: 'x' }, 'node1', undefined],
  ])('%s %j attempt %s → %s', (scheduler, answer, attempt, over) => {
    expect(attemptOver(scheduler, answer, attempt).over).toBe(over);
  });
});

describe('names', () => {
  it.each([
    ['42.0.0', { id: '42', index: 0, attempt: '0' }],
    ['42.7.node1.example.org', { id: '42', index: 7, attempt: 'node1.example.org' }],
    ['42.07.0', undefined],
    ['042.0.0', undefined],
    ['42.0', undefined],
    ['42.0.-x', undefined],
  ])('parseKey(%s)', (key, job) => {
    expect(parseKey(key)).toEqual(job);
  });

  it('asks about each job once, array tasks apart, and not about names it cannot read', () => {
    expect(jobsToAsk([claim('5.0.0', 1), claim('5.0.1', 2), claim('bad', 3)], [dir('5.0.0'), dir('6.2.n1')])).toEqual([
      { id: '5', index: 0 }, { id: '6', index: 2 },
    ]);
  });

  it.each([
    [HOSTFILE, ['node1', 'node2']],
    ['node3 slots=1\n\nnode3 slots=1\n', ['node3']],
    ['', []],
    ['node1 slots=1\n$(reboot) slots=1\n', undefined],
  ])('hostfileHosts(%j)', (text, hosts) => {
    expect(hostfileHosts(text)).toEqual(hosts);
  });
});

describe('planStatusGc: start records', () => {
  const KEEP = 7 * 86_400_000;
  const WEEKS = NOW - 2 * KEEP;
  const files = [
    { name: '100.0.json', mtimeMs: WEEKS, size: 400, mode: 0o100400 },
    { name: '101.0.json', mtimeMs: WEEKS, size: 400, mode: 0o100400 },
    { name: '102.3.json', mtimeMs: WEEKS, size: 400, mode: 0o100400 },
    { name: '103.0.json', mtimeMs: YOUNG, size: 400, mode: 0o100400 },
    { name: '104.0.json', mtimeMs: WEEKS, size: 400, mode: 0o100400 },
    { name: '105.0.json.a1b2c3d4e5f6.tmp', mtimeMs: WEEKS, size: 400, mode: 0o100400 },
  ];

  it('asks the scheduler only about records older than the keep time', () => {
    expect(statusToAsk(files, NOW, KEEP)).toEqual([{ id: '100', index: 0 }, { id: '101', index: 0 }, { id: '102', index: 3 }, { id: '104', index: 0 }]);
  });

  it.each<[Scheduler, [string, Answer][], string[]]>([
    ['lsf', [['100.0', { kind: 'record', state: 'DONE' }], ['101.0', { kind: 'record', state: 'PEND' }], ['102.3', { kind: 'unknown' }], ['104.0', { kind: 'failed', reason: 'bjobs: exit 255' }]], [
      'remove 100.0.json: job is DONE',
      'keep 101.0.json: job is PEND',
      'remove 102.3.json: LSF does not know the job (finished and purged)',
      'keep 103.0.json: written 0 d ago (kept 7 d)',
      'keep 104.0.json: LSF could not be asked (bjobs: exit 255); nothing done',
      'keep 105.0.json.a1b2c3d4e5f6.tmp: not a <jobid>.<index>.json name',
    ]],
    // A requeued Slurm job is not over: its record is its newest attempt's.
    ['slurm', [['100.0', { kind: 'record', state: 'PENDING', restarts: 3 }], ['101.0', { kind: 'record', state: 'CANCELLED', restarts: 0 }]], [
      'keep 100.0.json: job is PENDING',
      'remove 101.0.json: job is CANCELLED',
      'keep 102.3.json: Slurm gave no answer for it',
      'keep 103.0.json: written 0 d ago (kept 7 d)',
      'keep 104.0.json: Slurm gave no answer for it',
      'keep 105.0.json.a1b2c3d4e5f6.tmp: not a <jobid>.<index>.json name',
    ]],
  ])('%s: removes a record only when its job is over and the record is old', (scheduler, answers, expected) => {
    const actions = planStatusGc(scheduler, files, new Map(answers), NOW, KEEP);
    expect(actions.map((a) => `${a.remove ? 'remove' : 'keep'} ${a.name}: ${a.reason}`)).toEqual(expected);
  });

  it.each([
    ['grown past any record', { size: (1 << 20) + 1 }],
    ['made writable again', { mode: 0o100600 }],
    ['dated ahead to outlive the keep time', { mtimeMs: NOW + 86_400_000 }],
  ])('removes at once a young record its owner tampered with: %s', (_case, over) => {
    const [action] = planStatusGc('lsf', [{ name: '106.0.json', mtimeMs: YOUNG, size: 400, mode: 0o100400, ...over }], new Map(), NOW, KEEP);
    expect(action).toMatchObject({ remove: true, reason: 'tampered with by its owner (too big, writable, or dated ahead)' });
  });
});
