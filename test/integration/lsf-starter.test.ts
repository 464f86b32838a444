import { beforeAll, describe, expect, it } from 'vitest';
import { submitLsf } from '../harness/lsf/harness.js';
import { containers, lsfFixture, spec, type LsfFixture } from '../support/lsf-fixture.js';
import { INSTALL, onNode } from '../support/testbed.js';

// The JOB_STARTER line against the harness's job file, which plays openlava's: the line with
// the user's command pasted in place of %USRCMD, read again by /bin/sh (harness README). Every
// command must reach the first container exactly as typed, as LSF runs it without a starter.
let fx: LsfFixture;
beforeAll(async () => {
  fx = await lsfFixture();
});

const ONE = [{ name: 'node1', slots: 1 }];
const run = (command: string, over: Parameters<typeof spec>[0] = {}) => submitLsf(fx.hooks, spec({ command, hosts: ONE, ...over }));

describe('JOB_STARTER = exec …/starter --config F --job-file #%USRCMD', () => {
  const marker = `jobbox-starter-${Date.now()}`;
  it.each([
    ['double quotes keep their spaces', 'echo "a  b"', 'a  b\n'],
    ['a variable set and used in one command', 'X=$HOME; echo "home=$X"', 'home=/home/jbuser1\n'],
    ['single quotes keep $ literal, ; separates', "echo '$HOME'; echo a;echo b", '$HOME\na\nb\n'],
    ['a pipe runs whole in the container', 'cat /proc/1/comm | tr a-z A-Z', 'DOCKER-INIT\n'],
    ['a subshell and &&', '(cd /tmp && pwd) && echo ok', '/tmp\nok\n'],
    ['a redirection writes in the container', `echo hi > /tmp/${marker} && cat /tmp/${marker}`, 'hi\n'],
    ['a command over two lines', 'echo one\necho two', 'one\ntwo\n'],
  ])('%s', async (_case, command, stdout) => {
    const r = await run(command);
    expect(r.preExec.at(-1)?.code, r.preExec.at(-1)?.stderr).toBe(0);
    expect(r.starter).toMatchObject({ code: 0, stdout, stderr: '' });
    expect(r.state).toBe('DONE');
    expect(await containers(r.jobId)).toEqual([]);
  });

  it('the redirection above wrote nothing on the host', async () => {
    await expect(onNode('node1', ['test', '-e', `/tmp/${marker}`])).rejects.toThrow();
  });

  it('the exit status is the command\'s', async () => {
    const r = await run('echo before; exit 7');
    expect(r.starter).toMatchObject({ code: 7, stdout: 'before\n' });
    expect(r.state).toBe('EXIT');
  });

  it('bsub < script: the spooled script runs in the container, with its exit status', async () => {
    const r = await run('', { script: '#!/bin/sh\necho "script in $(cat /proc/1/comm), args: $#"\nexit 3\n' });
    expect(r.starter).toMatchObject({ code: 3, stdout: 'script in docker-init, args: 0\n' });
  });
});

describe('the older line, "%USRCMD" in double quotes, as the harness reproduces it', () => {
  it('splits a quoted command as openlava was measured to (/bin/sh: 1: echo a: not found, exit 127)', async () => {
    const old = { ...fx.hooks, jobStarter: `${INSTALL}/hooks/lsf/starter --config ${fx.configPath} "%USRCMD"` };
    const r = await submitLsf(old, spec({ command: 'echo "a  b"', hosts: ONE }));
    expect(r.starter?.code).toBe(127);
    expect(r.starter?.stderr).toContain('echo a: not found');
  });
});

describe('bsub -Is: the command on a terminal in the first container', () => {
  it('bash gets a pseudo-terminal of the user\'s size that follows a resize; Ctrl-C stops the foreground program, Ctrl-Z and fg work, and the exit status is the shell\'s', async () => {
    const seen: Record<string, string> = {};
    // The user's terminal type travels with the submit environment, as with bsub -Is.
    const r = await run('bash --norc --noprofile', {
      env: { TERM: 'screen' },
      terminal: {
        cols: 100,
        rows: 30,
        drive: async (pane) => {
          // tmux's capture drops trailing blanks: the prompt `bash-5.2$ ` ends a line as `bash-5.2$`.
          const prompt = /bash-[\d.]+\$$/m;
          await pane.waitFor(prompt);
          await pane.keys('tty; stty size; cat /proc/1/comm', 'Enter');
          seen.tty = await pane.waitFor(/docker-init\n.*\$$/);
          await pane.resize(80, 24);
          await pane.keys('clear; stty size', 'Enter');
          seen.resized = await pane.waitFor(/^24 80$/m);
          await pane.keys('sleep 300', 'Enter');
          await pane.waitFor(/\$ sleep 300$/);
          await pane.keys('C-c');
          await pane.keys('echo "after ctrl-c: $?"', 'Enter');
          seen.interrupted = await pane.waitFor(/^after ctrl-c: 130$/m);
          await pane.keys('sleep 301', 'Enter');
          await pane.waitFor(/\$ sleep 301$/);
          await pane.keys('C-z');
          seen.stopped = await pane.waitFor(/Stopped\s+sleep 301/);
          await pane.keys('fg', 'Enter');
          await pane.waitFor(/\$ fg\nsleep 301$/);
          await pane.keys('C-c');
          await pane.keys('exit 5', 'Enter');
        },
      },
    });
    expect(r.starter?.stderr, r.starter?.stdout).toBe('');
    expect(seen.tty).toMatch(/^\/dev\/pts\/\d+\n30 100\ndocker-init$/m);
    expect(seen.resized).toMatch(/^24 80$/m);
    expect(seen.interrupted).toMatch(/^after ctrl-c: 130$/m);
    expect(seen.stopped).toMatch(/Stopped\s+sleep 301/);
    expect(r.starter?.code).toBe(5);
    expect(r.state).toBe('EXIT');
    expect(await containers(r.jobId)).toEqual([]);
  });
});
