import { describe, expect, it } from 'vitest';
import { parseMetrics, recordGc, recordStart, renderMetrics, type Series } from '../../src/plan/metrics.js';
import type { StartRecord } from '../../src/plan/status.js';

const base: StartRecord = {
  job: '7', index: 0, attempt: 'node1', owner: 'jbuser1', uid: 2001, queue: 'normal', image: 'r/deb12:r1',
  outcome: 'started', at: '2026-12-07T16:00:00.000Z', ms: 620,
  nodes: [
    { host: 'node1', phases: { connect: { fromMs: 0, ms: 50 }, port: { fromMs: 50, ms: 40 }, start: { fromMs: 90, ms: 300 }, sshd: { fromMs: 390, ms: 30 } } },
    { host: 'node2', phases: { connect: { fromMs: 0, ms: 50 }, image: { fromMs: 50, ms: 1500 }, start: { fromMs: 1550, ms: 300 } } },
  ],
};

describe('a start', () => {
  it('counts it by outcome, times it in the histogram, and times each node that did image work', () => {
    const s: Series = new Map();
    recordStart(s, base);
    expect(s.get('jobbox_starts_total{outcome="started"}')).toBe(1);
    expect(s.get('jobbox_start_seconds_bucket{le="0.5"}')).toBe(0);
    expect(s.get('jobbox_start_seconds_bucket{le="1"}')).toBe(1);
    expect(s.get('jobbox_start_seconds_bucket{le="+Inf"}')).toBe(1);
    expect(s.get('jobbox_start_seconds_sum')).toBeCloseTo(0.62);
    expect(s.get('jobbox_pull_seconds_count')).toBe(1); // node2 only
    expect(s.get('jobbox_pull_seconds_bucket{le="1"}')).toBe(0);
    expect(s.get('jobbox_pull_seconds_bucket{le="2"}')).toBe(1);
  });

  it('counts a failure by the first step, in a node\'s order, that failed on any node; setup when none did', () => {
    const s: Series = new Map();
    const failedAt = (host: string, phase: 'image' | 'start' | 'sshd'): StartRecord => ({
      ...base, outcome: 'failed', nodes: base.nodes.map((n) => (n.host === host ? { ...n, phases: { ...n.phases, [phase]: { fromMs: 0, ms: 5, failed: true } } } : n)),
    });
    recordStart(s, failedAt('node2', 'sshd'));
    recordStart(s, { ...failedAt('node2', 'sshd'), nodes: failedAt('node1', 'image').nodes.map((n, i) => (i === 1 ? failedAt('node2', 'sshd').nodes[1]! : n)) });
    recordStart(s, { ...base, outcome: 'failed', nodes: [] });
    expect(s.get('jobbox_starts_total{outcome="failed"}')).toBe(3);
    expect(s.get('jobbox_start_failures_total{phase="sshd"}')).toBe(1);
    expect(s.get('jobbox_start_failures_total{phase="image"}')).toBe(1);
    expect(s.get('jobbox_start_failures_total{phase="setup"}')).toBe(1);
    expect(s.has('jobbox_start_seconds_count')).toBe(false); // only starts that worked are timed
  });
});

describe('the file', () => {
  it('renders each family once with HELP and TYPE, buckets in order, and reads back what it wrote', () => {
    const s: Series = new Map();
    recordStart(s, base);
    recordGc(s, { reclaimed: 2, failed: 0, containers: 6, portsInUse: 3, portsFree: 197, nowMs: 1_796_659_000_000 });
    const text = renderMetrics(s);
    const lines = text.split('\n');
    expect(lines.filter((l) => l.startsWith('# TYPE'))).toEqual([
      '# TYPE jobbox_starts_total counter', '# TYPE jobbox_start_seconds histogram', '# TYPE jobbox_pull_seconds histogram',
      '# TYPE jobbox_containers gauge', '# TYPE jobbox_ports_in_use gauge', '# TYPE jobbox_ports_free gauge',
      '# TYPE jobbox_gc_runs_total counter', '# TYPE jobbox_gc_reclaimed_total counter', '# TYPE jobbox_gc_failed_total counter',
      '# TYPE jobbox_gc_last_run_timestamp_seconds gauge',
    ]);
    const buckets = lines.filter((l) => l.startsWith('jobbox_start_seconds_bucket')).map((l) => /le="([^"]+)"/.exec(l)![1]);
    expect(buckets).toEqual(['0.25', '0.5', '1', '2', '5', '10', '30', '60', '120', '300', '+Inf']);
    expect(lines).toContain('jobbox_gc_last_run_timestamp_seconds 1796659000');
    expect(renderMetrics(parseMetrics(text))).toBe(text);
  });

  it('drops what it did not write: foreign series, bad labels, negative or non-numbers', () => {
    const s = parseMetrics('jobbox_gc_runs_total 4\nnode_load1 3\njobbox_starts_total{outcome="x\\"y"} 1\njobbox_gc_failed_total -1\njobbox_containers NaN\njobbox_ports_free 9 1234\n');
    expect([...s]).toEqual([['jobbox_gc_runs_total', 4]]);
  });
});
