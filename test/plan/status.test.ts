import { describe, expect, it } from 'vitest';
import { jobLabel, parseJobArg, parseStatus, parseStatusName, renderStatus, startRecord, statusFile, Timeline, type StartRecord } from '../../src/plan/status.js';

const DIGEST = `sha256:${'5e'.repeat(32)}`;
const JOB = { id: '4242', index: 0, attempt: 'node1', queue: 'normal', owner: { name: 'jbuser1', uid: 2001 }, hosts: [{ name: 'node1' }, { name: 'node2' }, { name: 'node3' }] };

/** A clock that moves only when told. */
function clock(startMs = Date.parse('2026-12-07T10:55:01.250Z')) {
  let now = startMs;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

describe('Timeline', () => {
  it('times each node\'s steps from the start, marks a failed one, and keeps the first start of a step run again', async () => {
    const c = clock();
    const t = new Timeline(c.now);
    c.advance(40);
    await t.time('node1', 'connect', async () => c.advance(60));
    await t.time('node1', 'port', async () => c.advance(10));
    await t.time('node1', 'port', async () => c.advance(15));
    await expect(t.time('node1', 'image', async () => {
      c.advance(1200);
      throw new Error('pull failed');
    })).rejects.toThrow('pull failed');
    expect(t.phases('node1')).toEqual({
      connect: { fromMs: 40, ms: 60 },
      port: { fromMs: 100, ms: 25 },
      image: { fromMs: 125, ms: 1200, failed: true },
    });
    expect(t.phases('node9')).toEqual({});
    expect(t.elapsedMs()).toBe(1325);
  });
});

describe('startRecord', () => {
  it('a failed start: the facts learned, each node\'s steps, the error line, each node\'s own error', async () => {
    const c = clock();
    const t = new Timeline(c.now);
    for (const h of ['node1', 'node2', 'node3']) await t.time(h, 'connect', async () => c.advance(10));
    await t.time('node3', 'image', async () => {
      c.advance(500);
      throw new Error('x');
    }).catch(() => {});
    // node2's step never ended: the start stopped before it did.
    void t.time('node2', 'image', () => new Promise(() => {}));
    const line = 'jobbox: nodes: failed on 1 of 3: node3: pull: the pull of the job\'s digest failed (connection refused): reg/deb12@sha256:…';
    const record = startRecord(JOB, t, { image: 'reg/deb12:r1', digest: DIGEST, pinnedBy: 'first node' }, { line, exitCode: 1, nodes: [{ host: 'node3', error: 'node3: pull: …' }] });
    expect(record).toEqual({
      job: '4242', index: 0, attempt: 'node1', owner: 'jbuser1', uid: 2001, queue: 'normal', image: 'reg/deb12:r1', digest: DIGEST, pinnedBy: 'first node',
      outcome: 'failed', at: '2026-12-07T10:55:01.250Z', ms: 530,
      nodes: [
        { host: 'node1', phases: { connect: { fromMs: 0, ms: 10 } } },
        { host: 'node2', phases: { connect: { fromMs: 10, ms: 10 }, image: { fromMs: 530 } } },
        { host: 'node3', phases: { connect: { fromMs: 20, ms: 10 }, image: { fromMs: 30, ms: 500, failed: true } }, error: 'node3: pull: …' },
      ],
      error: line,
      exitCode: 1,
    });
    expect(parseStatus(JSON.stringify(record))).toEqual(record);
  });

  it('the file: the owner\'s, read-only, under state_dir/.status by job and index', () => {
    const record = startRecord({ ...JOB, index: 3 }, new Timeline(clock().now), { image: 'reg/deb12:r1', port: 30012 });
    const file = statusFile('/var/lib/jobbox/jobs', record, { uid: 2001, gid: 2001 });
    expect(file).toMatchObject({ path: '/var/lib/jobbox/jobs/.status/4242.3.json', mode: 0o400, owner: { uid: 2001, gid: 2001 } });
    expect(JSON.parse(file.content)).toMatchObject({ outcome: 'started', port: 30012 });
  });
});

const STARTED: StartRecord = {
  job: '4242', index: 0, attempt: 'node1', owner: 'jbuser1', uid: 2001, queue: 'normal', image: 'reg/deb12:r1', digest: DIGEST, pinnedBy: 'registry', port: 30012,
  outcome: 'started', at: '2026-12-07T10:55:01.250Z', ms: 2310,
  nodes: [
    { host: 'node1', phases: { connect: { fromMs: 0, ms: 41 }, image: { fromMs: 45, ms: 20 }, port: { fromMs: 45, ms: 95 }, start: { fromMs: 400, ms: 810 }, sshd: { fromMs: 1210, ms: 120 } } },
    { host: 'node2', phases: { connect: { fromMs: 0, ms: 40 } } },
  ],
};

describe('renderStatus', () => {
  it('a header line, a row per node, and the error line of a failed start', () => {
    expect(renderStatus(STARTED)).toBe([
      `job 4242: started; last start 2026-12-07 10:55:01 UTC, 2.31 s; owner jbuser1, attempt node1, queue normal, image reg/deb12:r1 = ${DIGEST} (pinned by the registry), port 30012`,
      'node   connect  image   port    start   sshd',
      'node1  0.04 s   0.02 s  0.10 s  0.81 s  0.12 s',
      'node2  0.04 s   -       -       -       -',
      '',
    ].join('\n'));
    const failed: StartRecord = {
      ...STARTED, index: 2, outcome: 'failed', exitCode: 99, error: 'jobbox: image: not allowed in queue short (allowed: deb12-mpich): deb12',
      nodes: [{ host: 'node1', phases: { connect: { fromMs: 0, ms: 41 }, image: { fromMs: 45, ms: 1250, failed: true }, port: { fromMs: 45 } } }],
    };
    expect(renderStatus(failed).split('\n')).toEqual([
      expect.stringMatching(/^job 4242\[2\]: failed \(exit 99: will not heal, the job ends\); last start /),
      'node   connect  image          port       start  sshd',
      'node1  0.04 s   failed 1.25 s  cut short  -      -',
      'jobbox: image: not allowed in queue short (allowed: deb12-mpich): deb12',
      '',
    ]);
  });

  it('prints what the owner may have edited escaped', () => {
    const text = renderStatus({ ...STARTED, owner: 'x\u001b[2Jy', nodes: [{ host: 'n\u009bode', phases: {} }], outcome: 'failed', exitCode: 1, error: 'e\nf' });
    expect(text).not.toMatch(/[\u001b\u009b]/);
    expect(text).toContain('owner x\\u001b[2Jy');
    expect(text).toContain('n\\u009bode');
    expect(text).toContain('exit 1: may heal, the job is requeued');
    expect(text.trimEnd().split('\n').at(-1)).toBe('e\\u000af');
  });
});

describe('parseStatus', () => {
  const good = JSON.stringify(STARTED);
  it.each([
    ['not JSON', 'nope'],
    ['null', 'null'],
    ['a bad job id', good.replace('"4242"', '"42x"')],
    ['a bad digest', good.replace(DIGEST, 'sha256:zz')],
    ['an unknown pin', good.replace('"registry"', '"magic"')],
    ['a port out of range', good.replace('30012', '70000')],
    ['an unknown outcome', good.replace('"started"', '"great"')],
    ['a negative time', good.replace('"ms":41', '"ms":-1')],
    ['nodes not a list', JSON.stringify({ ...STARTED, nodes: {} })],
    ['a huge string', JSON.stringify({ ...STARTED, queue: 'q'.repeat(5000) })],
    ['a time with a terminal escape Date.parse would take', JSON.stringify({ ...STARTED, at: '(\u001b]0;pwned\u0007\u001b[2J) Jan 1 2020' })],
    ['a time in another format', JSON.stringify({ ...STARTED, at: 'Jan 1 2020 00:00:00' })],
  ])('refuses %s', (_case, text) => {
    expect(parseStatus(text)).toBeUndefined();
  });

  it('drops what it does not know', () => {
    expect(parseStatus(JSON.stringify({ ...STARTED, extra: 1, nodes: [{ host: 'node1', phases: { connect: { fromMs: 1, ms: 2 }, warp: { fromMs: 0 } }, more: true }] }))).toEqual({
      ...STARTED, nodes: [{ host: 'node1', phases: { connect: { fromMs: 1, ms: 2 } } }],
    });
  });
});

describe('names', () => {
  it.each([
    ['4242', undefined, { id: '4242', index: 0 }],
    ['4242', 3, { id: '4242', index: 3 }],
    ['4242[3]', undefined, { id: '4242', index: 3 }],
    ['4242[3]', 3, { id: '4242', index: 3 }],
    ['4242[3]', 4, undefined],
    ['4242[03]', undefined, undefined],
    ['04242', undefined, undefined],
    ['../4242', undefined, undefined],
    ['4242', -1, undefined],
    ['4242', 1.5, undefined],
    ['', undefined, undefined],
  ])('jobbox status %s --index %s → %j', (arg, index, job) => {
    expect(parseJobArg(arg, index)).toEqual(job);
  });

  it.each([
    ['4242.0.json', { id: '4242', index: 0 }],
    ['4242.12.json', { id: '4242', index: 12 }],
    ['4242.0.json.a1b2c3.tmp', undefined],
    ['4242.00.json', undefined],
    ['x.0.json', undefined],
  ])('a record named %s is job %j', (name, job) => {
    expect(parseStatusName(name)).toEqual(job);
  });

  it('labels an array element as LSF does', () => {
    expect([jobLabel({ id: '7', index: 0 }), jobLabel({ id: '7', index: 2 })]).toEqual(['7', '7[2]']);
  });
});
