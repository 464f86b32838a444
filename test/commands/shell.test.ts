import { describe, expect, it } from 'vitest';
import { exec, shell } from '../../src/commands/shell.js';

describe('jobbox shell and exec', () => {
  it('refuse to run outside a job, with one line', async () => {
    await expect(shell({ config: undefined, node: undefined }, {})).rejects.toThrow(
      expect.objectContaining({ message: 'jobbox: jobbox shell: not inside a job: neither SLURM_JOB_ID nor LSB_JOBID is set (run it in an salloc shell, an srun step or an LSF job): ', exitCode: 2 }),
    );
  });

  it('exec refuses an empty command before it looks for the job', async () => {
    await expect(exec({ config: undefined, node: undefined }, [], { SLURM_JOB_ID: '1' })).rejects.toThrow(
      expect.objectContaining({ message: 'jobbox: jobbox exec: no command given after --: ', exitCode: 2 }),
    );
  });
});
