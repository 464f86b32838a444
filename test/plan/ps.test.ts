import { describe, expect, it } from 'vitest';
import type { GcAction } from '../../src/plan/gc.js';
import { dialect } from '../../src/plan/engine.js';
import { clusterPsArgv, formatAge, parseClusterPs, planPs, psTable, shortImage, type PsFacts } from '../../src/plan/ps.js';

const DIGEST = `sha256:${'ab12'.repeat(16)}`;
const IMAGE = `10.78.0.1:5000/deb12@${DIGEST}`;
// As docker 20.10 prints the format of clusterPsArgv: each field a JSON string.
const line = (name: string, job: string, index: string, attempt: string, state = 'running', created = '2026-12-07 16:00:00 +0000 UTC', owner = 'jbuser1', check = '') =>
  [name, job, index, attempt, owner, check, IMAGE, state, created].map((f) => JSON.stringify(f)).join('\t');
const NOW = Date.parse('2026-12-07T16:05:30Z');

function action(key: string, over: Partial<GcAction>): GcAction {
  const [id, index, attempt] = [key.split('.')[0]!, Number(key.split('.')[1]), key.split('.').slice(2).join('.')];
  return { key, job: { id, index, attempt }, reclaim: false, reason: 'LSF says RUN', ports: [30001], dir: true, nodes: [], sinceMs: 0, unanswered: false, ...over };
}

function facts(over: Partial<PsFacts> = {}): PsFacts {
  return { claimed: new Set(), dirs: new Set(), actions: new Map(), over: () => false, nowMs: NOW, engine: 'docker', ...over };
}

describe('clusterPsArgv', () => {
  it('lists every container with a job label, stopped ones too, tab-separated', () => {
    const argv = clusterPsArgv(dialect('docker'));
    expect(argv.slice(0, 5)).toEqual(['ps', '--all', '--no-trunc', '--filter', 'label=org.jobbox.job']);
    expect(argv.at(-1)!.split('\t')).toHaveLength(9);
    expect(argv.at(-1)!.split('\t').every((f) => f.startsWith('{{json '))).toBe(true);
    expect(argv.at(-1)!.split('\t').slice(1, 3)).toEqual(['{{json (.Label "org.jobbox.job")}}', '{{json (.Label "org.jobbox.index")}}']);
    // Podman: labels from the map, the raw state.
    const podman = clusterPsArgv(dialect('podman')).at(-1)!.split('\t');
    expect([podman[1], podman[7]]).toEqual(['{{json (index .Labels "org.jobbox.job")}}', '{{json .ListContainer.State}}']);
  });
});

describe('parseClusterPs', () => {
  it('reads the attempt from the labels and the age from CreatedAt', () => {
    const [c] = parseClusterPs('node2', `${line('jobbox-4242', '4242', '0', 'node1')}\n`);
    expect(c).toEqual({ node: 'node2', name: 'jobbox-4242', key: '4242.0.node1', owner: 'jbuser1', image: IMAGE, state: 'running', createdMs: Date.parse('2026-12-07T16:00:00Z') });
  });

  it('keeps a container whose labels make no attempt, with no key, and an unreadable date as unknown', () => {
    const cs = parseClusterPs('node1', [line('odd', '04242', '0', 'node1'), line('x', '1', '0', '../etc', 'exited', 'yesterday')].join('\n'));
    expect(cs.map((c) => [c.key, c.createdMs])).toEqual([[undefined, Date.parse('2026-12-07T16:00:00Z')], [undefined, undefined]]);
  });

  it('leaves out an image check\'s throwaway container, and keeps a row whose labels carry a newline or a tab in one row', () => {
    const out = [line('jobbox-check-1a2b', '1\n"x"', '0', 'n', 'running', '2026-12-07 16:00:00 +0000 UTC', 'root', 'image'), line('jobbox-5', '5', '0', 'n\tx\nforged row', 'running')].join('\n');
    const cs = parseClusterPs('node1', out);
    expect(cs.map((c) => [c.name, c.key])).toEqual([['jobbox-5', undefined]]);
  });

  it('lists a job\'s container whose image carries a check label of its own: only jobbox\'s checks are left out', () => {
    const cs = parseClusterPs('node1', line('jobbox-6', '6', '0', 'node1', 'running', '2026-12-07 16:00:00 +0000 UTC', 'jbuser1', 'image'));
    expect(cs.map((c) => [c.name, c.key])).toEqual([['jobbox-6', '6.0.node1']]);
  });

  it('takes no name or owner but one docker and jobbox could have made', () => {
    expect(parseClusterPs('n', line('jobbox-5\u001b[2J', '5', '0', 'n'))[0]!.key).toBeUndefined();
    expect(parseClusterPs('n', line('jobbox-5', '5', '0', 'n', 'running', '2026-12-07 16:00:00 +0000 UTC', 'Bad Owner'))[0]!.key).toBeUndefined();
    expect(parseClusterPs('n', 'not json\tat all')[0]).toMatchObject({ name: '?', key: undefined });
  });

  it('reads a CreatedAt in another zone offset', () => {
    expect(parseClusterPs('n', line('a', '1', '0', 'n', 'running', '2026-12-07 17:00:00 +0100 CET'))[0]!.createdMs).toBe(Date.parse('2026-12-07T16:00:00Z'));
  });
});

describe('planPs', () => {
  const containers = (...ls: string[]) => ls.flatMap((l) => parseClusterPs(l.split('|')[0]!, l.split('|')[1]!));

  it('a running job: nothing amiss, gc keeps it for the scheduler\'s reason', () => {
    const [r] = planPs(containers(`node1|${line('jobbox-7', '7', '0', 'node1')}`), facts({
      claimed: new Set(['7.0.node1']), dirs: new Set(['7.0.node1']), actions: new Map([['7.0.node1', action('7.0.node1', {})]]),
    }));
    expect(r).toMatchObject({ flags: [], gc: 'keep: LSF says RUN', ageS: 330 });
  });

  it('an attempt that is over: reclaimed on the nodes its hostfile names, left on another with the command to remove it', () => {
    const rows = planPs(containers(`node1|${line('jobbox-8', '8', '0', 'node1')}`, `node3|${line('jobbox-8', '8', '0', 'node1')}`), facts({
      claimed: new Set(['8.0.node1']), dirs: new Set(['8.0.node1']), over: () => true,
      actions: new Map([['8.0.node1', action('8.0.node1', { reclaim: true, reason: 'LSF says DONE', nodes: ['node1', 'node2'] })]]),
    }));
    expect(rows.map((r) => [r.node, r.flags, r.gc])).toEqual([
      ['node1', ['job over'], 'reclaim: LSF says DONE'],
      ['node3', ['job over'], 'nothing: the attempt\'s hostfile does not name node3; docker rm -f jobbox-8 on node3'],
    ]);
  });

  it('a container with neither claim nor job dir: gc cannot see it, and ps says so and what to do', () => {
    const [r] = planPs(containers(`node2|${line('jobbox-9', '9', '0', 'node1', 'exited')}`), facts({ over: () => undefined }));
    expect(r).toMatchObject({ flags: ['no job dir', 'no port claim'], gc: 'nothing: gc finds attempts by their claim or job dir, and this one has neither; docker rm -f jobbox-9 on node2' });
  });

  it('bad labels are flagged and never matched to an attempt', () => {
    const [r] = planPs(containers(`node2|${line('odd', 'x', '0', 'node1')}`), facts());
    expect(r).toMatchObject({ key: undefined, flags: ['bad labels'] });
    expect(r!.gc).toMatch(/^nothing: its labels name no attempt; docker rm -f odd on node2$/);
  });

  it('sorts by attempt, then node', () => {
    const rows = planPs(containers(`node2|${line('b', '2', '0', 'n')}`, `node1|${line('b', '2', '0', 'n')}`, `node9|${line('a', '10', '0', 'n')}`), facts());
    expect(rows.map((r) => `${r.key}@${r.node}`)).toEqual(['10.0.n@node9', '2.0.n@node1', '2.0.n@node2']);
  });
});

describe('the table', () => {
  it('pads every column but the last, and shortens the digest', () => {
    const rows = planPs(parseClusterPs('node1', line('jobbox-7', '7', '0', 'node1')), facts({
      claimed: new Set(['7.0.node1']), dirs: new Set(['7.0.node1']), actions: new Map([['7.0.node1', action('7.0.node1', {})]]),
    }));
    expect(psTable(rows).split('\n')).toEqual([
      'NODE   CONTAINER  ATTEMPT    OWNER    STATE    AGE    IMAGE                                     FLAGS  GC',
      'node1  jobbox-7   7.0.node1  jbuser1  running  5m30s  10.78.0.1:5000/deb12@sha256:ab12ab12ab12  -      keep: LSF says RUN',
    ]);
    expect(shortImage('deb12:r1')).toBe('deb12:r1');
    // A name that escaped its checks still reaches the terminal with no control character.
    const [odd] = planPs(parseClusterPs('node1', line('jobbox-\u009b7', '7', '0', 'node1')), facts());
    expect(psTable([odd!]).split('\n')[1]).toContain('jobbox-\\u009b7');
  });

  it('writes ages as an admin reads them', () => {
    expect([9, 250, 7500, 3 * 86_400 + 4 * 3600, undefined].map(formatAge)).toEqual(['9s', '4m10s', '2h5m', '3d4h', '?']);
  });
});
