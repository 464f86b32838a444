import { chmod, chown, mkdtemp, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';

// As root (the root project): metrics_dir must be root's, as the hooks that write it are.
import { updateMetrics } from '../../src/exec/metrics.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'jobbox-metrics-'));
});
afterEach(async () => rm(dir, { recursive: true, force: true }));

const count = (s: Map<string, number>) => s.set('jobbox_gc_runs_total', (s.get('jobbox_gc_runs_total') ?? 0) + 1);

it('loses no count when 8 updates race for the file (hooks ending at once on a node; the lock is a mkdir, the same between processes), and leaves no lock or temporary file', async () => {
  await Promise.all(Array.from({ length: 8 }, () => updateMetrics(dir, count)));
  expect(await readFile(join(dir, 'jobbox.prom'), 'utf8')).toContain('\njobbox_gc_runs_total 8\n');
  expect(await readdir(dir)).toEqual(['jobbox.prom']);
});

it('does nothing when metrics_dir is empty', async () => {
  await updateMetrics('', count);
  expect(await readdir(dir)).toEqual([]);
});

it('refuses a directory others may write, or that is not root\'s; follows no symlink planted as the file', async () => {
  await chmod(dir, 0o777);
  await expect(updateMetrics(dir, count)).rejects.toThrow(`jobbox: metrics_dir: must be a directory of root's, not writable by group or others: ${dir}`);
  await chmod(dir, 0o755);
  // node_exporter's account, say: it could hold the lock and stall every start.
  await chown(dir, 65534, 65534);
  await expect(updateMetrics(dir, count)).rejects.toThrow(/must be a directory of root's/);
  await chown(dir, 0, 0);
  const target = join(dir, 'elsewhere');
  await writeFile(target, 'kept\n');
  await symlink(target, join(dir, 'jobbox.prom'));
  await expect(updateMetrics(dir, count)).rejects.toThrow(/ELOOP/);
  expect(await readFile(target, 'utf8')).toBe('kept\n');
});
