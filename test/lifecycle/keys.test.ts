import { describe, it, expect } from 'vitest';
import ssh2 from 'ssh2';
import { ed25519KeyPair } from '../../src/lifecycle/keys.js';

describe('ed25519KeyPair', () => {
  // ssh2's own generator makes about 1 key in 256 with a 31-byte public key (mscdex/ssh2#1513);
  // 1000 draws would hit one with probability 0.98.
  it('never returns a key that ssh2 (or OpenSSH) cannot load', async () => {
    for (let i = 0; i < 1000; i++) {
      const pair = await ed25519KeyPair('jobbox-test');
      const [type, blob, comment] = pair.public.split(' ');
      expect(type).toBe('ssh-ed25519');
      expect(comment).toBe('jobbox-test');
      // string "ssh-ed25519" + string <32-byte key>
      expect(Buffer.from(blob!, 'base64').length).toBe(4 + 11 + 4 + 32);
      expect(ssh2.utils.parseKey(pair.private)).not.toBeInstanceOf(Error);
    }
  }, 60_000);
});
