import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { execa } from 'execa';
import type { Logger } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openLog } from '../../src/log.js';

// packaging/logrotate, run by the real logrotate (as root: it refuses a config others can
// write) against jobbox's own log writer, while jobbox processes are writing. The rotation
// renames; no copytruncate and no signal. A writer that opened the file before a rotation
// finishes into the renamed file, and delaycompress keeps that file uncompressed until the
// next rotation, by when every hook process has long ended.
const REPO = join(import.meta.dirname, '../..');
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp('/run/jobbox-logrotate-');
  await chmod(dir, 0o700);
});
afterAll(async () => rm(dir, { recursive: true, force: true }));

/** Every line in jobbox.log and its rotations, compressed or not. */
async function allLines(): Promise<string[]> {
  const lines: string[] = [];
  for (const f of (await readdir(dir)).filter((f) => f.startsWith('jobbox.log'))) {
    const raw = await readFile(join(dir, f));
    lines.push(...(f.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8').split('\n').filter(Boolean));
  }
  return lines;
}

it('loses no line of the processes writing across a rotation, and keeps the file 0600', async () => {
  const file = join(dir, 'jobbox.log');
  const conf = join(dir, 'logrotate.conf');
  await writeFile(conf, (await readFile(join(REPO, 'packaging/logrotate'), 'utf8')).replace('/var/log/jobbox/jobbox.log', file), { mode: 0o644 });
  const rotate = () => execa('logrotate', ['--force', '--state', join(dir, 'state'), conf]);

  // Each round: a hook process writing when the rotation starts, another that opens the file
  // while it runs, both writing on after it. No process outlives its round: the next rotation
  // compresses what this one renamed, as a weekly one does long after every hook has ended.
  const ROUNDS = 6;
  const LINES = 100;
  let written = 0;
  const write = async (writers: Logger[], round: number, from: number) => {
    for (let i = from; i < from + LINES; i++) {
      for (const [w, log] of writers.entries()) {
        log.info({ round, writer: w, i }, 'line');
        written++;
      }
      if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1));
    }
  };
  for (let round = 0; round < ROUNDS; round++) {
    const early = await openLog(file, 'info');
    await write([early], round, 0);
    const rotation = rotate();
    const late = await openLog(file, 'info');
    await write([early, late], round, LINES);
    await rotation;
    await write([early, late], round, 2 * LINES);
  }
  const lines = await allLines();
  expect((await readdir(dir)).some((f) => f.endsWith('.gz'))).toBe(true); // rotations did happen, and compressed
  expect(lines.length).toBe(written);
  expect(new Set(lines.map((l) => { const j = JSON.parse(l) as { round: number; writer: number; i: number }; return `${j.round}.${j.writer}.${j.i}`; })).size).toBe(written);
  expect((await stat(file)).mode & 0o777).toBe(0o600);
});
