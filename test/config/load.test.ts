import { describe, it, expect } from 'vitest';
import { configPath } from '../../src/config/load.js';

describe('configPath', () => {
  it.each([
    ['/cli.ini', { JOBBOX_CONFIG: '/env.ini' }, '/cli.ini'],
    [undefined, { JOBBOX_CONFIG: '/env.ini' }, '/env.ini'],
    [undefined, { JOBBOX_CONFIG: '' }, '/etc/jobbox/jobbox.ini'],
    [undefined, {}, '/etc/jobbox/jobbox.ini'],
  ])('--config %s with %j → %s', (cli, env, path) => expect(configPath(cli, env)).toBe(path));

  it('refuses an empty --config', () => {
    expect(() => configPath('', {})).toThrow(expect.objectContaining({ message: 'jobbox: --config: must name a file: ', exitCode: 2 }));
  });
});
