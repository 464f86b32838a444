import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { noControls } from '../../src/errors.js';
import { logGrepArgv, mergeLogs, renderLogLine } from '../../src/plan/logs.js';

const entry = (o: Record<string, unknown>) => JSON.stringify({ level: 30, pid: 7, host: 'node1', attempt: 'node1', ...o });

describe('the node command', () => {
  it('reads the log and every rotation, compressed or not, and keeps the lines that name the job', () => {
    const dir = mkdtempSync(join(tmpdir(), 'jobbox-logs-'));
    try {
      const log = join(dir, 'jobbox.log');
      writeFileSync(log, `${entry({ time: 3, job: '42', msg: 'c' })}\n${entry({ time: 4, job: '421', msg: 'other job' })}\n`);
      writeFileSync(`${log}.1`, `${entry({ time: 2, job: '42', msg: 'b' })}\n`);
      writeFileSync(`${log}.2.gz`, gzipSync(`${entry({ time: 1, job: '42', msg: 'a' })}\n`));
      const argv = logGrepArgv(log, '42');
      expect(argv.slice(3)).toEqual(['jobbox-logs', log, '"job":"42"']);
      const out = execFileSync(`/bin/${argv[0]}`, argv.slice(1), { encoding: 'utf8' });
      expect(out.split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg).sort()).toEqual(['a', 'b', 'c']);
      // No log at all is no line, not an error.
      expect(execFileSync('/bin/sh', logGrepArgv(join(dir, 'none.log'), '42').slice(1), { encoding: 'utf8' })).toBe('');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('mergeLogs', () => {
  it('orders by time across hosts, keeps the array index asked, and each line once', () => {
    const shared = entry({ time: 5, job: '42', msg: 'torn down' });
    const lines = mergeLogs([
      { from: 'node1', text: `${entry({ time: 2, job: '42', msg: 'setup' })}\n${shared}\n${entry({ time: 3, job: '42', index: 1, msg: 'element 1' })}\n` },
      { from: 'admin', text: `${entry({ time: 1, job: '42', msg: 'gc', gc: true })}\n${shared}\nnot json\n${entry({ time: 4, job: '4', msg: 'x' })}\n` },
    ], { id: '42', index: 0 });
    expect(lines.map((l) => [l.from, l.entry.msg])).toEqual([['admin', 'gc'], ['node1', 'setup'], ['node1', 'torn down']]);
  });

  it('renders a line an admin reads, with no control character of the user\'s', () => {
    const [l] = mergeLogs([{ from: 'node1', text: entry({ time: Date.parse('2026-12-07T16:00:00.123Z'), job: '42', msg: 'job \u009b31m torn down', removed: 3 }) }], { id: '42', index: 0 });
    expect(renderLogLine(l!)).toBe('2026-12-07 16:00:00.123 UTC node1 INFO  attempt node1: job \\u009b31m torn down {"removed":3}');
    expect(noControls('{"msg":"a\u0085b"}')).toBe('{"msg":"a\\u0085b"}');
  });
});
