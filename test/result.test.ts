import { describe, expect, it } from 'vitest';
import { fromExeca } from '../src/result.js';

describe('fromExeca', () => {
  it.each([
    [{ exitCode: 1, stdout: 'o', stderr: 'e' }, { code: 1, stdout: 'o', stderr: 'e' }],
    [{ exitCode: undefined, code: 'ENOENT', stdout: '', stderr: '' }, { code: undefined, stdout: '', stderr: '', error: 'not found on PATH' }],
    [{ exitCode: undefined, timedOut: true, stdout: '', stderr: '' }, { code: undefined, stdout: '', stderr: '', error: 'timed out after 30 s' }],
    [{ exitCode: undefined, shortMessage: 'killed by SIGKILL', stdout: '', stderr: '' }, { code: undefined, stdout: '', stderr: '', error: 'killed by SIGKILL' }],
  ])('%j', (r, run) => {
    expect(fromExeca(r, 30_000)).toEqual(run);
  });
});
