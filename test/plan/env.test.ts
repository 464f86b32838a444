import { describe, it, expect } from 'vitest';
import { allowedVariable, containerEnv } from '../../src/plan/env.js';

describe('allowedVariable', () => {
  it.each([
    // loaders, shells, interpreters
    ['LD_PRELOAD', false],
    ['LD_LIBRARY_PATH', false],
    ['LD_AUDIT', false],
    ['BASH_ENV', false],
    ['ENV', false],
    ['IFS', false],
    ['NODE_OPTIONS', false],
    ['PYTHONPATH', false],
    ['PERL5OPT', false],
    ['GCONV_PATH', false],
    ['BASH_FUNC_x%%', false],
    ['BASH_FUNC_x', false],
    // tools on the host side
    ['DOCKER_HOST', false],
    ['DOCKER_CONFIG', false],
    ['SSH_AUTH_SOCK', false],
    ['SSH_CONNECTION', false],
    // scheduler and jobbox
    ['LSB_JOBID', false],
    ['LSF_SERVERDIR', false],
    ['LS_SUBCWD', false],
    ['SLURM_JOB_ID', false],
    ['JOBBOX_X', false],
    ['JOBBOX_HOSTFILE', false],
    // identity comes from the account database
    ['HOME', false],
    ['USER', false],
    ['LOGNAME', false],
    ['PATH', false],
    ['SHELL', false],
    ['TMPDIR', false],
    // not a variable name
    ['A=B', false],
    ['MY-VAR', false],
    ['MY VAR', false],
    [' FOO', false],
    ['1FOO', false],
    ['', false],
    ['FOO\n', false],
    ['X'.repeat(129), false],
    // the user's own
    ['OMP_NUM_THREADS', true],
    ['FOO', true],
    ['MY_VAR', true],
    ['_private', true],
    ['lowercase', true],
    ['OMPI_MCA_btl', true],
    ['LDFLAGS', true],
    ['SSHX', true],
    ['HOMEDIR', true],
    ['X'.repeat(128), true],
  ])('%j → %s', (name, allowed) => {
    expect(allowedVariable(name)).toBe(allowed);
  });
});

describe('containerEnv', () => {
  it('keeps allowed names with single-line values', () => {
    expect(containerEnv({ OMP_NUM_THREADS: '4', FOO: 'a b=c "d" $e', EMPTY: '', TAB: 'a\tb' })).toEqual({
      env: { OMP_NUM_THREADS: '4', FOO: 'a b=c "d" $e', EMPTY: '', TAB: 'a\tb' },
      dropped: [],
    });
  });

  it.each([
    ['newline', 'a\nb'],
    ['trailing newline', 'a\n'],
    ['carriage return', 'a\rb'],
    ['NUL', 'a\0b'],
    ['too long', 'x'.repeat(65537)],
  ])('drops and reports a value with a %s', (_name, value) => {
    expect(containerEnv({ KEEP: '1', BAD: value })).toEqual({ env: { KEEP: '1' }, dropped: ['BAD'] });
  });

  it('drops and reports denied names, in input order', () => {
    expect(containerEnv({ LD_PRELOAD: '/tmp/x.so', FOO: '1', HOME: '/tmp', 'A-B': '2', SLURM_JOB_ID: '7' })).toEqual({
      env: { FOO: '1' },
      dropped: ['LD_PRELOAD', 'HOME', 'A-B', 'SLURM_JOB_ID'],
    });
  });

  it('keeps a value of exactly the limit', () => {
    expect(containerEnv({ BIG: 'x'.repeat(65536) }).dropped).toEqual([]);
  });

  it('does not reach Object.prototype, and loses no name silently', () => {
    // JSON.parse makes "__proto__" an own key, as an environment read into an object can.
    const user = JSON.parse('{"__proto__": "x", "constructor": "y", "FOO": "1"}') as Record<string, string>;
    const { env, dropped } = containerEnv(user);
    expect(Object.getPrototypeOf(env)).toBe(Object.prototype);
    expect(env.constructor).toBe('y');
    expect([...Object.keys(env), ...dropped].sort()).toEqual(Object.keys(user).sort());
  });
});
