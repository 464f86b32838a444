import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Job } from '../../src/job/job.js';
import { runInFirstContainer } from '../../src/lifecycle/run.js';
import { jobPaths } from '../../src/plan/job-files.js';

describe('runInFirstContainer', () => {
  it('without a running container, names the command that tells why, and sends nothing', async () => {
    const uid = process.getuid!();
    const job: Job = {
      id: '4242', index: 7, attempt: 'node1', queue: 'normal', cwd: '/', image: undefined, env: {},
      owner: { name: 'me', uid, gid: process.getgid!(), gids: [], home: '/', shell: '/bin/sh' },
      hosts: [{ name: 'node1', slots: 1 }],
    };
    const state = await mkdtemp(join(tmpdir(), 'jobbox-run-'));
    try {
      const paths = jobPaths(state, job);
      await expect(runInFirstContainer(job, paths, { command: 'id' })).rejects.toThrow(
        expect.objectContaining({ message: `jobbox: run: no running job container (pre-exec or Prolog did not finish; see jobbox status 4242[7]): ${paths.dir}`, exitCode: 1 }),
      );
    } finally {
      await rm(state, { recursive: true, force: true });
    }
  });
});
