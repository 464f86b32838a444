import { describe, expect, it } from 'vitest';
import { BPOST_MAX, bpostArgv } from '../../src/scheduler/lsf.js';

const BPOST = '/opt/lsf/10.1/linux3.10-glibc2.17-x86_64/bin/bpost';

describe('bpostArgv: a failed start as the job\'s message 0', () => {
  it.each([
    [{ id: '4242', index: 0 }, 'jobbox: nodes: failed on 1 of 3: node3: pull: x', [BPOST, '-i', '0', '-d', 'jobbox: nodes: failed on 1 of 3: node3: pull: x (jobbox status 4242)', '4242']],
    [{ id: '4242', index: 7 }, 'jobbox: image: not allowed in queue short (allowed: deb12-mpich): deb12', [BPOST, '-i', '0', '-d', 'jobbox: image: not allowed in queue short (allowed: deb12-mpich): deb12 (jobbox status 4242[7])', '4242[7]']],
    // An argv word, never a shell string: what the line holds stays one word.
    [{ id: '1', index: 0 }, 'jobbox: x: y: $(id); `id` "q"', [BPOST, '-i', '0', '-d', 'jobbox: x: y: $(id); `id` "q" (jobbox status 1)', '1']],
  ])('%j %s', (job, line, argv) => {
    expect(bpostArgv(BPOST, job, line)).toEqual(argv);
  });

  it(`cuts a long line to LSF's ${BPOST_MAX} characters, keeping the pointer to jobbox status`, () => {
    const text = bpostArgv(BPOST, { id: '4242', index: 0 }, `jobbox: nodes: failed on 64 of 64: ${'node: pull: refused; '.repeat(60)}`)[4]!;
    expect(text).toHaveLength(BPOST_MAX);
    expect(text).toMatch(/^jobbox: nodes: failed on 64 of 64: node: pull: refused; .*… \(jobbox status 4242\)$/);
  });
});
