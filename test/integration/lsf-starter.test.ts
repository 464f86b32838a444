import { beforeAll, describe, expect, it } from 'vitest';
import { submitLsf } from '../harness/lsf/harness.js';
import { containers, lsfFixture, spec, type LsfFixture } from '../support/lsf-fixture.js';
import { REPO, onNode } from '../support/testbed.js';

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
    const old = { ...fx.hooks, jobStarter: `${REPO}/hooks/lsf/starter --config ${fx.configPath} "%USRCMD"` };
    const r = await submitLsf(old, spec({ command: 'echo "a  b"', hosts: ONE }));
    expect(r.starter?.code).toBe(127);
    expect(r.starter?.stderr).toContain('echo a: not found');
  });
});
