import { describe, it, expect } from 'vitest';
import { fanOut, knownHostIndex } from '../../src/exec/ssh.js';

describe('knownHostIndex', () => {
  const KNOWN = [
    '# admin keys',
    'node1 ssh-ed25519 KEY1',
    'node1 ecdsa-sha2-nistp256 KEY1B',
    '[node2]:2222 ssh-ed25519 KEY2',
    'node3,[node3]:2222,10.0.0.3 ssh-rsa KEY3 root@node3',
    '|1|c2FsdA==|aGFzaA== ssh-ed25519 HASHED',
    '   node4 ssh-ed25519 KEY4   ',
    'node5 ssh-ed25519 KEY5\r',
    'node10 ssh-ed25519 KEY10',
    '#node6 ssh-ed25519 COMMENTED',
    'node7 ssh-ed25519',
    '',
  ].join('\n');

  it.each([
    ['plain name, all its keys', 'node1', 22, ['KEY1', 'KEY1B']],
    ['plain name is port 22 only', 'node1', 2222, []],
    ['[host]:port for another port', 'node2', 2222, ['KEY2']],
    ['[host]:port is not port 22', 'node2', 22, []],
    ['comma patterns, port 22', 'node3', 22, ['KEY3']],
    ['comma patterns, other port', 'node3', 2222, ['KEY3']],
    ['comma patterns, by address', '10.0.0.3', 22, ['KEY3']],
    ['indented line', 'node4', 22, ['KEY4']],
    ['CRLF line', 'node5', 22, ['KEY5']],
    ['no prefix match', 'node', 22, []],
    ['no suffix match', 'node1', 22, ['KEY1', 'KEY1B']],
    ['commented out', 'node6', 22, []],
    ['line without a key', 'node7', 22, []],
    ['unknown host', 'nodeX', 22, []],
  ])('%s: %s:%i', (_name, host, port, keys) => {
    expect(knownHostIndex(KNOWN)(host, port)).toEqual(keys);
  });

  it('never matches hashed entries', () => {
    expect(knownHostIndex(KNOWN)('|1|c2FsdA==|aGFzaA==', 22)).toEqual([]);
  });
});

describe('fanOut', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it.each([1, 3, 8, 50])('never has more than %i in flight, and uses the limit', async (limit) => {
    let inFlight = 0;
    let peak = 0;
    const items = Array.from({ length: 20 }, (_, i) => i);
    const results = await fanOut(items, limit, async (i) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await sleep((i * 7) % 5);
      inFlight--;
      return i * 10;
    });
    expect(peak).toBe(Math.min(limit, items.length));
    expect(results).toEqual(items.map((i) => ({ status: 'fulfilled', value: i * 10 })));
  });

  it('runs every item even when some reject, results in input order', async () => {
    const started: number[] = [];
    const items = [0, 1, 2, 3, 4, 5, 6];
    const results = await fanOut(items, 2, async (i) => {
      started.push(i);
      await sleep(10 - i);
      if (i % 3 === 0) throw new Error(`node${i} down`);
      return `ok${i}`;
    });
    expect(started.sort()).toEqual(items);
    expect(results.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message))).toEqual([
      'node0 down', 'ok1', 'ok2', 'node3 down', 'ok4', 'ok5', 'node6 down',
    ]);
  });

  it('keeps input order when later items finish first', async () => {
    const results = await fanOut([30, 20, 10, 0], 4, async (ms) => {
      await sleep(ms);
      return ms;
    });
    expect(results.map((r) => (r as PromiseFulfilledResult<number>).value)).toEqual([30, 20, 10, 0]);
  });

  it('counts a synchronous throw as that item failing', async () => {
    const results = await fanOut(['a', 'b'], 1, (x) => {
      if (x === 'a') throw new Error('sync');
      return Promise.resolve(x);
    });
    expect(results).toEqual([{ status: 'rejected', reason: new Error('sync') }, { status: 'fulfilled', value: 'b' }]);
  });

  it('returns nothing for no items', async () => {
    expect(await fanOut([], 4, async () => 1)).toEqual([]);
  });
});
