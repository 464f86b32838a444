import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { shellExports } from '../../src/plan/env.js';
import { X11_HANDOFF, X11_HANDOFF_NAMES, X11_SESSION, x11Handoff } from '../../src/plan/x11.js';

describe('x11Handoff: what the ssh client sends, from the environment the command starts in', () => {
  const D = X11_HANDOFF.DISPLAY;
  const X = X11_HANDOFF.XAUTHORITY;
  it.each([
    ['bsub -XF, ssh -X: a forwarded display, the cookie in ~/.Xauthority', { DISPLAY: 'localhost:10.0' }, { [D]: 'localhost:10.0', [X]: undefined }, []],
    ['srun --x11: the display and its per-step cookie file', { DISPLAY: 'localhost:12.0', XAUTHORITY: '/tmp/.Xauthority-Ab12' }, { [D]: 'localhost:12.0', [X]: '/tmp/.Xauthority-Ab12' }, []],
    ['a display on the node', { DISPLAY: ':0', XAUTHORITY: '/home/u/.Xauthority' }, { [D]: ':0', [X]: '/home/u/.Xauthority' }, []],
    ['no display: nothing sent, the job keeps what the setup wrote', { XAUTHORITY: '/home/u/.Xauthority' }, { [D]: undefined, [X]: undefined }, []],
    ['an empty display is none', { DISPLAY: '', XAUTHORITY: '/home/u/x' }, { [D]: undefined, [X]: undefined }, []],
    ['an empty XAUTHORITY is none', { DISPLAY: 'localhost:10.0', XAUTHORITY: '' }, { [D]: 'localhost:10.0', [X]: undefined }, []],
    ['a display with a newline cannot travel (as any variable, plan/env.ts)', { DISPLAY: 'localhost:10.0\nX=1' }, { [D]: undefined, [X]: undefined }, ['DISPLAY']],
    ['an XAUTHORITY with a NUL cannot travel', { DISPLAY: 'localhost:10.0', XAUTHORITY: 'a\0b' }, { [D]: 'localhost:10.0', [X]: undefined }, ['XAUTHORITY']],
    ['a display past the env line limit cannot travel', { DISPLAY: 'x'.repeat(70_000) }, { [D]: undefined, [X]: undefined }, ['DISPLAY']],
    ['other variables are not its business', { DISPLAY: 'h:1', FOO: 'bar\n' }, { [D]: 'h:1', [X]: undefined }, []],
    ['a user\'s own handoff variables are never sent as such', { JOBBOX_X11_DISPLAY: 'forged', JOBBOX_X11_XAUTHORITY: '/x' }, { [D]: undefined, [X]: undefined }, []],
  ])('%s', (_case, env, send, refused) => {
    expect(x11Handoff(env as Record<string, string>)).toEqual({ send, refused });
  });

  it('always names both variables, so the client never passes on a user\'s own of those names', () => {
    expect(Object.keys(x11Handoff({}).send)).toEqual(X11_HANDOFF_NAMES);
    expect(X11_HANDOFF_NAMES).toEqual(['JOBBOX_X11_DISPLAY', 'JOBBOX_X11_XAUTHORITY']);
  });
});

// The session text, run by real shells as the session runs it: after the job's variables
// (`. userenv`), before the user's command, with what sshd accepted in its environment.
describe('X11_SESSION in the container session', () => {
  const dir = mkdtempSync(join(tmpdir(), 'jobbox-x11-'));
  const readable = join(dir, 'cookie');
  writeFileSync(readable, 'x');
  const unreadable = join(dir, 'no-read');
  writeFileSync(unreadable, 'x');
  chmodSync(unreadable, 0o000);
  const missing = join(dir, 'gone', '.Xauthority');
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const SHELLS = [['dash', '/usr/bin/dash'], ['bash as sh', '/usr/bin/bash']].filter(([, path]) => {
    try {
      execFileSync(path!, ['-c', ':']);
      return true;
    } catch {
      return false;
    }
  });

  /** The session's variables after the step, and its stderr. `job`: what the setup wrote; `sent`: what sshd accepted. */
  function session(shell: string, job: Record<string, string>, sent: Record<string, string | undefined>): { vars: Record<string, string>; stderr: string } {
    const show = ['DISPLAY', 'XAUTHORITY', ...X11_HANDOFF_NAMES].map((v) => `if [ -n "\${${v}+x}" ]; then printf '${v}=%s\\n' "$${v}"; fi`).join('; ');
    const env: Record<string, string> = { PATH: '/usr/bin:/bin' };
    for (const [k, v] of Object.entries(sent)) if (v !== undefined) env[k] = v;
    const r = spawnSync(shell, [...(shell.endsWith('bash') ? ['--posix'] : []), '-c', `${shellExports(job)}${X11_SESSION} && ${show}`], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.status !== 0) throw new Error(`the step failed (${r.status}): ${r.stderr}`);
    const vars = Object.fromEntries(r.stdout.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    return { vars, stderr: r.stderr };
  }

  describe.each(SHELLS)('%s', (_name, shell) => {
    it('a handed-over display replaces the one the setup saw, with its cookie file', () => {
      const r = session(shell!, { DISPLAY: 'localhost:11.0', XAUTHORITY: readable, FOO: '1' }, x11Handoff({ DISPLAY: 'localhost:10.0', XAUTHORITY: readable }).send);
      expect(r).toEqual({ vars: { DISPLAY: 'localhost:10.0', XAUTHORITY: readable }, stderr: '' });
    });

    it('a handed-over display without XAUTHORITY drops the setup\'s: the cookie belongs to the display (Xlib reads ~/.Xauthority)', () => {
      const r = session(shell!, { DISPLAY: 'localhost:11.0', XAUTHORITY: readable }, x11Handoff({ DISPLAY: 'localhost:10.0' }).send);
      expect(r).toEqual({ vars: { DISPLAY: 'localhost:10.0' }, stderr: '' });
    });

    it('nothing handed over: the setup\'s variables stay', () => {
      const r = session(shell!, { DISPLAY: 'localhost:11.0', XAUTHORITY: readable }, x11Handoff({}).send);
      expect(r).toEqual({ vars: { DISPLAY: 'localhost:11.0', XAUTHORITY: readable }, stderr: '' });
    });

    it('no display anywhere: nothing set', () => {
      expect(session(shell!, {}, x11Handoff({}).send)).toEqual({ vars: {}, stderr: '' });
    });

    it.each([
      ['a file outside the container\'s mounts', missing],
      ['a file it may not read', unreadable],
    ])('with a TCP display, an XAUTHORITY naming %s is unset, with one line', (_case, path) => {
      // As root the mode does not stop a read: then only the missing file is a case.
      if (path === unreadable && process.getuid?.() === 0) return;
      const r = session(shell!, {}, x11Handoff({ DISPLAY: 'localhost:12.0', XAUTHORITY: path }).send);
      expect(r).toEqual({
        vars: { DISPLAY: 'localhost:12.0' },
        stderr: `jobbox: XAUTHORITY: not readable in the container, X clients read ~/.Xauthority instead: ${path}\n`,
      });
    });

    it.each([[':0'], ['unix:0'], ['/private/tmp/com.apple.launchd.x/org.xquartz:0'], ['']])('with the display %j, an unreadable XAUTHORITY is unset silently (a desktop submit carries it, X or not)', (display) => {
      const r = session(shell!, { ...(display && { DISPLAY: display }), XAUTHORITY: missing }, x11Handoff({}).send);
      expect(r).toEqual({ vars: display ? { DISPLAY: display } : {}, stderr: '' });
    });

    it('values are data: quotes, $(…), backquotes and spaces arrive as they were and run nothing', () => {
      const display = `h'"$(touch ${dir}/ran)\`touch ${dir}/ran\`:1 ;x`;
      const path = `${dir}/a b'$(touch ${dir}/ran)`;
      const r = session(shell!, {}, x11Handoff({ DISPLAY: display, XAUTHORITY: path }).send);
      expect(r.vars).toEqual({ DISPLAY: display });
      expect(r.stderr).toBe(`jobbox: XAUTHORITY: not readable in the container, X clients read ~/.Xauthority instead: ${path}\n`);
      expect(() => execFileSync('test', ['-e', `${dir}/ran`])).toThrow();
    });

    it('is one command with status 0 in the session\'s && chain, whatever it found', () => {
      const out = execFileSync(shell!, ['-c', `false || true && ${X11_SESSION} && echo next`], { env: { PATH: '/usr/bin:/bin', JOBBOX_X11_DISPLAY: 'h:1', XAUTHORITY: missing }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      expect(out).toBe('next\n');
      const before = execFileSync(shell!, ['-c', `false && ${X11_SESSION} && echo next; echo after`], { env: { PATH: '/usr/bin:/bin' }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
      expect(before).toBe('after\n');
    });
  });
});
