import { describe, expect, it } from 'vitest';
import { clientEnv, sshArgv } from '../../src/exec/openssh.js';

describe('sshArgv', () => {
  it.each([
    ['a command', [false, []], ['-F', '/j/ssh_config', '-T', '--', 'node1', 'id']],
    ['on a terminal', [true, []], ['-F', '/j/ssh_config', '-tt', '--', 'node1', 'id']],
    [
      'with variables for the session: their names, never their values',
      [false, ['JOBBOX_X11_DISPLAY', 'JOBBOX_X11_XAUTHORITY']],
      ['-F', '/j/ssh_config', '-o', 'SendEnv=JOBBOX_X11_DISPLAY', '-o', 'SendEnv=JOBBOX_X11_XAUTHORITY', '-T', '--', 'node1', 'id'],
    ],
  ] as const)('%s', (_case, [terminal, send], argv) => {
    expect(sshArgv('/j/ssh_config', 'node1', 'id', terminal, [...send])).toEqual(argv);
  });
});

describe('clientEnv', () => {
  it('sets what is sent and removes what is not, keeping the rest', () => {
    const base = { PATH: '/usr/bin', DISPLAY: 'localhost:10.0', JOBBOX_X11_XAUTHORITY: '/users/own' };
    expect(clientEnv(base, { JOBBOX_X11_DISPLAY: 'localhost:10.0', JOBBOX_X11_XAUTHORITY: undefined })).toEqual({
      PATH: '/usr/bin', DISPLAY: 'localhost:10.0', JOBBOX_X11_DISPLAY: 'localhost:10.0',
    });
    // The caller's environment is left as it was.
    expect(base).toEqual({ PATH: '/usr/bin', DISPLAY: 'localhost:10.0', JOBBOX_X11_XAUTHORITY: '/users/own' });
  });
});
