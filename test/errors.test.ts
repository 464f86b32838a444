import { describe, it, expect } from 'vitest';
import { EXIT, JobboxError, formatError, printable } from '../src/errors.js';

describe('JobboxError', () => {
  it('has the one shape and defaults to the permanent exit code', () => {
    const err = new JobboxError('config [queue short] memory', 'must be "none"', '12x');
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('JobboxError');
    expect(err.message).toBe('jobbox: config [queue short] memory: must be "none": 12x');
    expect([err.subject, err.problem, err.value, err.exitCode]).toEqual(['config [queue short] memory', 'must be "none"', '12x', 99]);
  });

  it('carries the exit code chosen where it is raised', () => {
    expect(new JobboxError('ssh', 'unreachable', 'n1', EXIT.transient).exitCode).toBe(1);
    expect(new JobboxError('esub', 'rejected', 'x', EXIT.esubReject).exitCode).toBe(97);
    expect(EXIT).toEqual({ usage: 2, permanent: 99, transient: 1, esubReject: 97 });
  });
});

describe('printable', () => {
  it.each([
    ['plain', 'plain'],
    ['a\nb', 'a\\nb'],
    ['nul\0', 'nul\\u0000'],
    ['esc\x1b[31m', 'esc\\u001b[31m'],
    ['"q"', '\\"q\\"'],
    ['back\\slash', 'back\\\\slash'],
  ])('%j → %s', (input, shown) => expect(printable(input)).toBe(shown));

  it('truncates long values and says how long they were', () => {
    expect(printable('x'.repeat(201))).toBe(`${'x'.repeat(200)}… (201 chars)`);
    expect(printable('x'.repeat(200))).toBe('x'.repeat(200));
  });

  it('escapes the value in the message', () => {
    expect(new JobboxError('image', 'bad', 'a\nb').message).toBe('jobbox: image: bad: a\\nb');
  });
});

describe('formatError', () => {
  it('uses the message and code of a JobboxError', () => {
    expect(formatError(new JobboxError('a', 'b', 'c', EXIT.usage))).toEqual({ line: 'jobbox: a: b: c', exitCode: 2 });
  });
  it('turns anything else into a permanent internal error: LSF would requeue exit 1 for ever', () => {
    expect(formatError(new TypeError('boom\n'))).toEqual({ line: 'jobbox: internal: unexpected failure: boom\\n', exitCode: 99 });
    expect(formatError('str')).toEqual({ line: 'jobbox: internal: unexpected failure: str', exitCode: 99 });
  });
});
