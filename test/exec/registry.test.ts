import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { manifestDigest } from '../../src/exec/registry.js';
import { fakeRegistry, type FakeRegistry } from '../support/fake-registry.js';

const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
let open: FakeRegistry;
let guarded: FakeRegistry;

beforeAll(async () => {
  open = await fakeRegistry();
  guarded = await fakeRegistry({ token: 'anon' });
  for (const r of [open, guarded]) {
    r.manifests.set('projects/app:1.2', D1);
    r.manifests.set(`projects/app@${D1}`, D1);
  }
});
afterAll(async () => {
  await open.close();
  await guarded.close();
});

const opts = (r: FakeRegistry) => ({ insecure: [r.host], timeoutMs: 2000 });

describe('manifestDigest', () => {
  it('asks for the tag once, with every manifest kind docker accepts, and returns the digest', async () => {
    const before = open.seen.length;
    await expect(manifestDigest({ repository: `${open.host}/projects/app`, tag: '1.2', digest: undefined }, opts(open))).resolves.toBe(D1);
    expect(open.seen.slice(before)).toEqual(['HEAD /v2/projects/app/manifests/1.2']);
  });

  it('confirms a digest the repository holds', async () => {
    await expect(manifestDigest({ repository: `${open.host}/projects/app`, tag: undefined, digest: D1 }, opts(open))).resolves.toBe(D1);
  });

  it('takes an anonymous token where the registry asks for one', async () => {
    await expect(manifestDigest({ repository: `${guarded.host}/projects/app`, tag: '1.2', digest: undefined }, opts(guarded))).resolves.toBe(D1);
    expect(guarded.seen).toContain('GET /token?service=fake&scope=repository%3Aprojects%2Fapp%3Apull');
  });

  it.each([
    ['an unknown tag', { tag: '9', digest: undefined }, undefined, `jobbox: registry HOST: has no such tag or repository: HOST/projects/app:9`, 99],
    ['a digest the repository lacks', { tag: undefined, digest: D2 }, undefined, `jobbox: registry HOST: has no such manifest in the repository: HOST/projects/app@${D2}`, 99],
    ['a registry error', { tag: '1.2', digest: undefined }, 503, 'jobbox: registry HOST: answered HTTP 503: HOST/projects/app:1.2', 1],
    ['a refused pull', { tag: '1.2', digest: undefined }, 403, 'jobbox: registry HOST: refuses an anonymous pull (HTTP 403); jobbox pins only images anyone may pull: HOST/projects/app:1.2', 99],
  ])('refuses %s', async (_case, ref, status, message, exitCode) => {
    open.status = status;
    try {
      await expect(manifestDigest({ repository: `${open.host}/projects/app`, ...ref }, opts(open))).rejects.toThrow(
        expect.objectContaining({ message: message.replaceAll('HOST', open.host), exitCode }),
      );
    } finally {
      open.status = undefined;
    }
  });

  it('follows no redirect: the digest is the named registry\'s own answer', async () => {
    open.redirectTo = 'http://127.0.0.1:9/elsewhere';
    try {
      await expect(manifestDigest({ repository: `${open.host}/projects/app`, tag: '1.2', digest: undefined }, opts(open))).rejects.toThrow(
        `jobbox: registry ${open.host}: redirects elsewhere (HTTP 307); jobbox takes a digest from the named registry only: ${open.host}/projects/app:1.2`,
      );
    } finally {
      open.redirectTo = undefined;
    }
  });

  it('fetches no token from a plain-HTTP realm elsewhere than the registry', async () => {
    const elsewhere = await fakeRegistry({ token: 'anon', realm: 'http://127.0.0.2:9/steal' });
    try {
      elsewhere.manifests.set('projects/app:1.2', D1);
      await expect(manifestDigest({ repository: `${elsewhere.host}/projects/app`, tag: '1.2', digest: undefined }, opts(elsewhere))).rejects.toThrow(
        `jobbox: registry ${elsewhere.host}: asks for an authentication jobbox does not do (a Bearer realm over HTTPS, or on the registry itself): Bearer realm=`,
      );
    } finally {
      await elsewhere.close();
    }
  });

  it('takes no token from an answer longer than a token answer can be', async () => {
    guarded.tokenBody = JSON.stringify({ token: 'anon', pad: 'x'.repeat(70 * 1024) });
    try {
      await expect(manifestDigest({ repository: `${guarded.host}/projects/app`, tag: '1.2', digest: undefined }, opts(guarded))).rejects.toThrow(
        expect.objectContaining({ message: `jobbox: registry ${guarded.host}: gave no anonymous token (HTTP 200): http://${guarded.host}`, exitCode: 1 }),
      );
    } finally {
      guarded.tokenBody = undefined;
    }
  });

  it('gives up at the deadline on a registry that takes the connection and never answers', async () => {
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const host = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      await expect(manifestDigest({ repository: `${host}/projects/app`, tag: '1', digest: undefined }, { insecure: [host], timeoutMs: 300 })).rejects.toThrow(
        expect.objectContaining({ message: `jobbox: registry ${host}: did not answer within 0.3 s: http://${host}/v2/projects/app/manifests/1`, exitCode: 1 }),
      );
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('says a registry that cannot be reached is transient', async () => {
    const closed = await fakeRegistry();
    await closed.close();
    await expect(manifestDigest({ repository: `${closed.host}/projects/app`, tag: '1', digest: undefined }, opts(closed))).rejects.toThrow(
      expect.objectContaining({ message: `jobbox: registry ${closed.host}: cannot be reached (ECONNREFUSED): http://${closed.host}/v2/projects/app/manifests/1`, exitCode: 1 }),
    );
  });
});
