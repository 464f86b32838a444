import { rm } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { exec, shell } from '../../src/commands/shell.js';
import { rootConfig } from '../helpers/config-file.js';

describe('jobbox shell and exec', () => {
  it('refuse to run outside a job, with one line naming where to run them', async () => {
    await expect(shell({ config: undefined, node: undefined }, {})).rejects.toThrow(
      expect.objectContaining({ message: 'jobbox: jobbox shell: not inside a job: neither SLURM_JOB_ID nor LSB_JOBID is set (run it in an salloc shell, an srun --pty step or an LSF job): ', exitCode: 2 }),
    );
    await expect(exec({ config: undefined, node: undefined }, ['hostname'], {})).rejects.toThrow(
      expect.objectContaining({ message: 'jobbox: jobbox exec: not inside a job: neither SLURM_JOB_ID nor LSB_JOBID is set (run it in an salloc shell, an srun step or an LSF job): ', exitCode: 2 }),
    );
  });

  it.each([
    ['n[1-2]', '1(x2)', 'jobbox: --node: not a node of job 7 (its nodes: n1 n2): n9'],
    ['n[1-7]', '1(x7)', 'jobbox: --node: not a node of job 7 (its nodes: n1 n2 n3 n4 n5 … 7 in all): n9'],
  ])('refuse a --node outside the job (%s), naming its first nodes', async (nodes, cpus, message) => {
    const conf = await rootConfig('[queue normal]\ndefault_image = deb12\n[image deb12]\nref = r.example.org/deb12\n');
    try {
      // SLURM_JOB_USER names the owner: nobody, since jobbox refuses jobs of uid 0 and this may run as root.
      const env = { SLURM_JOB_ID: '7', SLURM_JOB_USER: 'nobody', SLURM_JOB_PARTITION: 'normal', SLURM_JOB_NODELIST: nodes, SLURM_JOB_CPUS_PER_NODE: cpus, JOBBOX_CONFIG: conf.file };
      await expect(exec({ config: undefined, node: 'n9' }, ['hostname'], env)).rejects.toThrow(expect.objectContaining({ message, exitCode: 2 }));
    } finally {
      await rm(conf.dir, { recursive: true, force: true });
    }
  });

  it('exec refuses an empty command before it looks for the job', async () => {
    await expect(exec({ config: undefined, node: undefined }, [], { SLURM_JOB_ID: '1' })).rejects.toThrow(
      expect.objectContaining({ message: 'jobbox: jobbox exec: no command given after --: ', exitCode: 2 }),
    );
  });
});
