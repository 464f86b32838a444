import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BJOBS_BIN, lsfJobEnv, writeBjobsState } from '../harness/lsf/harness.js';
import { ALLOC, hook, spec } from '../support/lsf-fixture.js';
import { INSTALL, testbed, testbedStatus, waitFor } from '../support/testbed.js';

// The metrics file on the real testbed: the installed hooks and gc write it as they run real
// jobs, Debian's promtool lints it, and Debian's node_exporter (the reader it is written for,
// on loopback) serves it with no scrape error. gc runs against a private port_dir and
// state_dir, so it touches no other suite's jobs.
const PATH = '/usr/bin:/bin:/usr/sbin:/sbin';
let area: string;
let config: string;
let prom: string;
let exporter: ChildProcess | undefined;
const line = (script: string) => `${INSTALL}/hooks/lsf/${script} --config ${config}`;
const env = (jobId: number, image = 'deb12') => lsfJobEnv(spec({}), jobId, ALLOC, { JOBBOX_IMAGE: image });
const series = async () => readFile(`${prom}/jobbox.prom`, 'utf8');
const value = (text: string, key: string) => {
  const l = text.split('\n').find((x) => x.startsWith(`${key} `));
  return l === undefined ? undefined : Number(l.slice(key.length + 1));
};

beforeAll(async () => {
  const tb = await testbedStatus();
  area = await mkdtemp('/var/lib/jobbox-testbed/shared/metrics-test-');
  await chmod(area, 0o755);
  prom = `${area}/prom`;
  await mkdir(prom, { mode: 0o755 });
  await mkdir(`${area}/ports/claims`, { recursive: true, mode: 0o700 });
  await chmod(`${area}/ports`, 0o700);
  await mkdir(`${area}/jobs`, { mode: 0o755 });
  const text = (await readFile(tb.config, 'utf8'))
    .replace(/^port_range = .*$/m, 'port_range = 30700-30799')
    .replace(/^port_dir = .*$/m, `port_dir = ${area}/ports`)
    .replace(/^state_dir = .*$/m, `state_dir = ${area}/jobs`)
    .replace(/^\[jobbox\]$/m, `[jobbox]\nmetrics_dir = ${prom}`);
  config = `${area}/jobbox.ini`;
  await writeFile(config, text, { mode: 0o644 });
});

afterAll(async () => {
  if (exporter?.pid) process.kill(exporter.pid, 'SIGTERM');
  await testbed(['dockerd', 'node3', 'start']);
  await rm(area, { recursive: true, force: true });
});

describe('metrics (metrics_dir)', () => {
  it('counts a start that worked, one that failed at a node\'s step, one refused before any, and a gc run', async () => {
    expect(await hook(line('pre-exec'), env(63_001))).toEqual({ code: 0, stderr: '' });
    let text = await series();
    expect(value(text, 'jobbox_starts_total{outcome="started"}')).toBe(1);
    expect(value(text, 'jobbox_start_seconds_count')).toBe(1);
    expect(value(text, 'jobbox_start_seconds_sum')).toBeGreaterThan(0);
    expect(await hook(line('post-exec'), env(63_001))).toEqual({ code: 0, stderr: '' });

    // node3's engine is down: the start fails at node3's first docker command, its run.
    await testbed(['dockerd', 'node3', 'stop']);
    try {
      expect((await hook(line('pre-exec'), env(63_002))).code).toBe(1);
    } finally {
      await testbed(['dockerd', 'node3', 'start']);
    }
    // An image the queue does not allow: refused before any node is asked.
    expect((await hook(line('pre-exec'), env(63_003, 'nosuchalias'))).code).toBe(99);
    text = await series();
    expect(value(text, 'jobbox_starts_total{outcome="failed"}')).toBe(2);
    expect(value(text, 'jobbox_start_failures_total{phase="start"}')).toBe(1);
    expect(value(text, 'jobbox_start_failures_total{phase="setup"}')).toBe(1);

    // gc, with LSF (the bjobs stand-in) saying nothing runs: the gauges of an empty cluster.
    const state = `${area}/bjobs.state`;
    await writeBjobsState(state, []);
    const gc = await testbed(['exec', 'node1', '--', 'env', '-i', `PATH=${BJOBS_BIN}:${PATH}`, `JOBBOX_BJOBS_STATE=${state}`,
      `${INSTALL}/dist/cli.js`, 'gc', '--config', config, '--scheduler', 'lsf', '--grace', '0'], { reject: false });
    expect(gc.exitCode).toBe(0);
    text = await series();
    expect(value(text, 'jobbox_gc_runs_total')).toBe(1);
    expect(value(text, 'jobbox_ports_in_use')).toBe(0);
    expect(value(text, 'jobbox_ports_free')).toBe(100);
    expect(value(text, 'jobbox_containers')).toBe(0);
    expect(value(text, 'jobbox_gc_last_run_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 60);
  });

  it('is a file promtool passes, with no lint', async () => {
    const r = await execa('promtool', ['check', 'metrics'], { input: await series(), reject: false });
    expect({ code: r.exitCode, out: `${r.stdout}${r.stderr}` }).toEqual({ code: 0, out: '' });
  });

  it('is read by node_exporter\'s textfile collector with no scrape error, as it is in the file', async () => {
    const port = 19_100 + Math.floor(Math.random() * 800);
    exporter = spawn('prometheus-node-exporter', [`--web.listen-address=127.0.0.1:${port}`, '--collector.disable-defaults', '--collector.textfile',
      `--collector.textfile.directory=${prom}`], { stdio: 'ignore' });
    let scraped = '';
    await waitFor('node_exporter serving jobbox.prom', async () => {
      scraped = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text(), () => '');
      return scraped.includes('jobbox_');
    }, 10);
    expect(value(scraped, 'node_textfile_scrape_error')).toBe(0);
    // node_exporter writes numbers its own way (1.79666e+09): compared as numbers.
    const ours = (text: string) => Object.fromEntries(text.split('\n').filter((l) => l.startsWith('jobbox_')).map((l) => [l.slice(0, l.lastIndexOf(' ')), Number(l.slice(l.lastIndexOf(' ') + 1))]));
    const file = ours(await series());
    expect(Object.keys(file).length).toBeGreaterThan(30);
    expect(ours(scraped)).toEqual(file);
  });
});
