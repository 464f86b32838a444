// A registry's manifest endpoint, on loopback, for unit tests of jobbox's own registry client:
// it answers HEAD /v2/<name>/manifests/<tag or digest> from a table, optionally behind an
// anonymous Bearer token as Docker Hub and Harbor do. The testbed's suites use the real registry.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRegistry {
  host: string;
  /** `name:tag` or `name@digest` → the digest answered. */
  manifests: Map<string, string>;
  /** Requests seen, as `METHOD path`. */
  seen: string[];
  /** When set, every manifest request answers this status. */
  status?: number | undefined;
  /** When set, every manifest request is redirected there (307). */
  redirectTo?: string | undefined;
  /** When set, the token endpoint answers this body instead of a token. */
  tokenBody?: string | undefined;
  close(): Promise<void>;
}

export async function fakeRegistry(opts: { token?: string; realm?: string } = {}): Promise<FakeRegistry> {
  const manifests = new Map<string, string>();
  const seen: string[] = [];
  const reg: Partial<FakeRegistry> = { manifests, seen };
  const server: Server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/token') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return res.end(reg.tokenBody ?? JSON.stringify({ token: `${opts.token}:${url.searchParams.get('scope')}` }));
    }
    const m = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
    if (!m) return res.writeHead(404).end();
    if (opts.token && !req.headers.authorization?.startsWith(`Bearer ${opts.token}:`)) {
      const { port } = server.address() as AddressInfo;
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${opts.realm ?? `http://127.0.0.1:${port}/token`}",service="fake",scope="repository:${m[1]}:pull"` });
      return res.end();
    }
    if (reg.redirectTo) return res.writeHead(307, { Location: reg.redirectTo }).end();
    if (reg.status) return res.writeHead(reg.status).end();
    const key = m[2]!.startsWith('sha256:') ? `${m[1]}@${m[2]}` : `${m[1]}:${m[2]}`;
    const digest = manifests.get(key);
    if (!digest) return res.writeHead(404).end();
    res.writeHead(200, { 'Docker-Content-Digest': digest, 'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json' }).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(reg, {
    host: `127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }) as FakeRegistry;
}
