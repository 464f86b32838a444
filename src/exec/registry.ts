// The only code that talks to a registry itself (everything else asks the nodes' engine): one
// manifest HEAD, for the digest a tag names now. The submit uses it to pin a job's image
// (esub, job_submit.lua through `jobbox image resolve`), where no engine runs as the user, and
// every start while it connects to the nodes. node:http, not fetch: fetch's first call loads
// undici (~25 ms of CPU here), which held up the start's connections (bench P1).
import type { IncomingHttpHeaders } from 'node:http';
import { DIGEST, parseUserRef, type UserRef } from '../config/ref.js';
import type { Config } from '../config/types.js';
import { EXIT, JobboxError, printable } from '../errors.js';

// Every manifest kind docker pull accepts, so the registry answers with the digest docker would
// print: an index's for a multi-arch image, else the single manifest's.
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
].join(', ');

export interface RegistryOptions {
  /** Registries spoken to over plain HTTP (config insecure_registries); HTTPS elsewhere. */
  insecure: string[];
  timeoutMs: number;
}

/** manifestDigest of a reference's text, with the config's plain-HTTP registries and its connect_timeout as the deadline. */
export async function registryDigest(config: Pick<Config, 'insecureRegistries' | 'connectTimeoutMs'>, ref: string): Promise<string> {
  const parsed = parseUserRef(ref);
  // An [image] ref parseConfig took always parses; this guards a ref docker reads but the grammar does not.
  if (!parsed) throw new JobboxError('image', 'not a qualified image reference the registry can be asked about', ref);
  return manifestDigest(parsed, { insecure: config.insecureRegistries, timeoutMs: config.connectTimeoutMs });
}

/**
 * The manifest digest `ref` names in its registry now: its tag's, or, for a ref with a digest,
 * that digest once the registry confirms the repository holds it. Anonymous pulls only: a
 * registry that wants a token gets an anonymous one, as docker asks for one (Bearer realm).
 */
export async function manifestDigest(ref: UserRef, opts: RegistryOptions): Promise<string> {
  const slash = ref.repository.indexOf('/');
  const host = ref.repository.slice(0, slash);
  const scheme = opts.insecure.includes(host) ? 'http' : 'https';
  const url = `${scheme}://${host}/v2/${ref.repository.slice(slash + 1)}/manifests/${ref.digest ?? ref.tag}`;
  const subject = `registry ${host}`;
  const shown = ref.digest ? `${ref.repository}@${ref.digest}` : `${ref.repository}:${ref.tag}`;
  // One deadline for the whole question, token included: slurmctld waits for it with its locks held.
  const signal = AbortSignal.timeout(opts.timeoutMs);
  const head = (auth?: string) => send(new URL(url), 'HEAD', { Accept: ACCEPT, ...(auth && { Authorization: auth }) }, signal);
  try {
    let res = await head();
    const challenge = one(res.headers['www-authenticate']);
    if (res.status === 401 && challenge) res = await head(await anonymousToken(challenge, `${scheme}://${host}`, subject, signal));
    if (res.status === 404) throw new JobboxError(subject, ref.digest ? 'has no such manifest in the repository' : 'has no such tag or repository', shown);
    if (res.status === 401 || res.status === 403) throw new JobboxError(subject, `refuses an anonymous pull (HTTP ${res.status}); jobbox pins only images anyone may pull`, shown);
    // No redirect is followed: the digest is the named registry's answer, from nowhere else.
    if (res.status >= 300 && res.status < 400) throw new JobboxError(subject, `redirects elsewhere (HTTP ${res.status}); jobbox takes a digest from the named registry only`, shown, EXIT.transient);
    if (res.status < 200 || res.status >= 300) throw new JobboxError(subject, `answered HTTP ${res.status}`, shown, EXIT.transient);
    const digest = one(res.headers['docker-content-digest']) ?? '';
    if (!DIGEST.test(digest)) throw new JobboxError(subject, 'named no sha256 manifest digest (Docker-Content-Digest)', shown, EXIT.transient);
    if (ref.digest && digest !== ref.digest) throw new JobboxError(subject, `answered with another digest (${digest})`, shown);
    return digest;
  } catch (err) {
    if (err instanceof JobboxError) throw err;
    if (signal.aborted) throw new JobboxError(subject, `did not answer within ${opts.timeoutMs / 1000} s`, url, EXIT.transient);
    const cause = (err as { code?: string }).code ?? (err as Error).name;
    throw new JobboxError(subject, `cannot be reached (${printable(String(cause))})`, url, EXIT.transient);
  }
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  /** Read for a GET only, and only when it is no longer than the request's `max`. */
  body?: string;
}

/**
 * One request on a connection of its own (node's http follows no redirect). A GET's body is
 * read up to `max` bytes; a longer one is dropped unread.
 */
async function send(url: URL, method: 'HEAD' | 'GET', headers: Record<string, string>, signal: AbortSignal, max = 0): Promise<Answer> {
  const { request } = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, signal, agent: false }, (res) => {
      const answer = { status: res.statusCode ?? 0, headers: res.headers };
      if (method === 'HEAD') {
        res.resume();
        resolve(answer);
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= max) chunks.push(chunk);
        else {
          res.destroy();
          resolve(answer);
        }
      });
      res.on('end', () => resolve({ ...answer, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A header node may hand over as a list: the first. */
function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/**
 * `Bearer realm="https://…/token",service="…",scope="…"` → an anonymous token's header. The
 * realm must be HTTPS, or the registry's own origin: a registry cannot send root's client to an
 * address of its choosing over plain HTTP.
 */
async function anonymousToken(challenge: string, origin: string, subject: string, signal: AbortSignal): Promise<string> {
  const params = new Map([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
  const realm = params.get('realm') ?? '';
  let url: URL | undefined;
  try {
    url = new URL(realm);
  } catch {
    url = undefined;
  }
  if (!/^Bearer /i.test(challenge) || !url || (url.protocol !== 'https:' && url.origin !== origin)) {
    throw new JobboxError(subject, 'asks for an authentication jobbox does not do (a Bearer realm over HTTPS, or on the registry itself)', printable(challenge));
  }
  for (const key of ['service', 'scope']) if (params.has(key)) url.searchParams.set(key, params.get(key)!);
  const res = await send(url, 'GET', {}, signal, TOKEN_MAX);
  let token: unknown;
  try {
    const parsed = JSON.parse(res.status >= 200 && res.status < 300 ? (res.body ?? '{}') : '{}') as { token?: unknown; access_token?: unknown };
    token = parsed.token ?? parsed.access_token;
  } catch {
    token = undefined;
  }
  if (typeof token !== 'string' || token === '' || /[\r\n]/.test(token)) throw new JobboxError(subject, `gave no anonymous token (HTTP ${res.status})`, url.origin, EXIT.transient);
  return `Bearer ${token}`;
}

/** A token answer is a small JSON object: more than this is not one. */
const TOKEN_MAX = 64 * 1024;
