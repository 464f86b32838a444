import { describe, it, expect } from 'vitest';
import { lookupAccount } from '../../src/exec/accounts.js';

// Runs the real getent and id: root and nobody exist on every Debian system.
describe('lookupAccount', () => {
  it('finds root', async () => {
    expect(await lookupAccount('root')).toMatchObject({ name: 'root', uid: 0, gid: 0, home: '/root' });
  });

  it('finds nobody, without its primary group among the supplementary ones', async () => {
    const owner = await lookupAccount('nobody');
    expect(owner).toMatchObject({ name: 'nobody', uid: 65534, gid: 65534 });
    expect(owner.gids).not.toContain(65534);
  });

  it('refuses an unknown account as permanent', async () => {
    await expect(lookupAccount('no_such_user_jbx')).rejects.toThrow(
      expect.objectContaining({ message: 'jobbox: user: no such account in the account database: no_such_user_jbx', exitCode: 99 }),
    );
  });

  it.each(['-oProxyCommand', '0day', 'a b', 'a\nb', '', 'x'.repeat(33), '../etc'])('refuses the name %j before running anything', async (name) => {
    await expect(lookupAccount(name)).rejects.toThrow('jobbox: user: not a valid account name');
  });
});
