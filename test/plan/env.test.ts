import { describe, it, expect } from 'vitest';
import { ENV_LINE_MAX, ENV_TOTAL_MAX, allowedVariable, containerEnv } from '../../src/plan/env.js';

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
    // bash's read-only and behaviour variables would break or redirect the starter's exports.
    ['UID', false],
    ['EUID', false],
    ['PPID', false],
    ['BASH_VERSINFO', false],
    ['TMOUT', false],
    ['EXECIGNORE', false],
    ['FUNCNEST', false],
    ['POSIXLY_CORRECT', false],
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
    // X11: the display and the cookie file of the job's own session (docs/x11.md)
    ['DISPLAY', true],
    ['XAUTHORITY', true],
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
    ['line one byte over 64 KiB', 'x'.repeat(ENV_LINE_MAX - 'BAD=\n'.length + 1)],
    ['line over 64 KiB in UTF-8 bytes, under it in UTF-16 units', 'é'.repeat(40_000)],
    ['line over 64 KiB in 4-byte characters', '😀'.repeat(20_000)],
    ['90 kB value', 'x'.repeat(90_000)],
  ])('drops and reports a value with a %s', (_name, value) => {
    expect(containerEnv({ KEEP: '1', BAD: value })).toEqual({ env: { KEEP: '1' }, dropped: ['BAD'] });
  });

  it('drops and reports denied names, in input order', () => {
    expect(containerEnv({ LD_PRELOAD: '/tmp/x.so', FOO: '1', HOME: '/tmp', 'A-B': '2', SLURM_JOB_ID: '7' })).toEqual({
      env: { FOO: '1' },
      dropped: ['LD_PRELOAD', 'HOME', 'A-B', 'SLURM_JOB_ID'],
    });
  });

  // docker's env-file reader takes a line of NAME=value and its newline up to 65536 bytes (measured).
  it.each([
    ['ASCII', 'x'.repeat(ENV_LINE_MAX - 'BIG=\n'.length)],
    ['2-byte characters', 'é'.repeat((ENV_LINE_MAX - 'BIG=\n'.length - 1) / 2) + 'x'],
  ])('keeps a line of exactly 64 KiB: %s', (_name, value) => {
    expect(Buffer.byteLength(`BIG=${value}\n`)).toBe(ENV_LINE_MAX);
    expect(containerEnv({ BIG: value })).toEqual({ env: { BIG: value }, dropped: [] });
  });

  it('counts the name in the line', () => {
    const value = 'x'.repeat(ENV_LINE_MAX - 'A=\n'.length);
    expect(containerEnv({ A: value, AB: value })).toEqual({ env: { A: value }, dropped: ['AB'] });
  });

  // 40 values of 60 kB: 2.4 MB, more than execve takes with an 8 MiB stack.
  const forty = Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`V${String(i).padStart(2, '0')}`, 'x'.repeat(60_000)]));

  it('keeps the total within ENV_TOTAL_MAX and reports the rest', () => {
    const { env, dropped } = containerEnv({ OMP_NUM_THREADS: '4', ...forty });
    const total = Object.entries(env).reduce((n, [k, v]) => n + Buffer.byteLength(`${k}=${v}\n`), 0);
    expect(total).toBeLessThanOrEqual(ENV_TOTAL_MAX);
    expect(ENV_TOTAL_MAX - total).toBeLessThan(60_005); // as many as fit: one more would not
    expect(Object.keys(env)).toEqual(['OMP_NUM_THREADS', ...Object.keys(forty).slice(0, 17)]);
    expect(dropped).toEqual(Object.keys(forty).slice(17));
  });

  it('keeps the smallest first, so huge variables cannot crowd out small ones', () => {
    const big = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`BIG${i}`, 'x'.repeat(60_000 + i)]));
    const { env, dropped } = containerEnv({ ...big, SMALL: '1', OMP_NUM_THREADS: '4' });
    expect(env).toMatchObject({ SMALL: '1', OMP_NUM_THREADS: '4' });
    expect(Object.keys(env)).toEqual([...Object.keys(big).slice(0, 17), 'SMALL', 'OMP_NUM_THREADS']);
    expect(dropped).toEqual(Object.keys(big).slice(17));
  });

  it('keeps the same variables whatever the input order (ties by name)', () => {
    const entries = Object.entries({ ...forty, A: 'x'.repeat(100), B: 'y'.repeat(100) });
    const reversed = Object.fromEntries([...entries].reverse());
    const a = containerEnv(Object.fromEntries(entries));
    const b = containerEnv(reversed);
    expect(Object.keys(b.env).sort()).toEqual(Object.keys(a.env).sort());
    expect([...b.dropped].sort()).toEqual([...a.dropped].sort());
    expect(a.dropped).toEqual(Object.keys(forty).slice(17));
  });

  it('does not count what it drops for other reasons against the total', () => {
    const { env } = containerEnv({ ...forty, LD_PRELOAD: 'x'.repeat(60_000), MULTI: `${'x'.repeat(60_000)}\n`, HUGE: 'x'.repeat(90_000) });
    expect(Object.keys(env)).toEqual(Object.keys(forty).slice(0, 17));
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
