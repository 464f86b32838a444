// `jobbox image gc`: which of a node's images go, decided from what the node said (its image
// list and the image ids its containers use), as argv and a pure plan; commands/image.ts
// carries it out. Engine commands leave out the engine, as in plan/node.ts.
import { DIGEST, repoAllowed, repoOf } from '../config/ref.js';
import type { Config } from '../config/types.js';
import { EXIT, JobboxError } from '../errors.js';

/**
 * The repositories whose images jobbox manages, and so may remove: those of the configured
 * [image] sections' refs, and those users may name images of (the queues' allowed_repos). Anything else on a node (an admin's own images, another tool's) is
 * never touched. docker prints docker.io's repositories in their short form, so a ref there is
 * never matched, and its images stay: the safe side.
 */
export function managedRepo(config: Pick<Config, 'images' | 'queues'>): (repository: string) => boolean {
  const repos = new Set([...config.images.values()].map((i) => repoOf(i.ref)));
  // Users' own images come from the queues' allowed_repos: jobbox pulled them, jobbox removes them.
  const patterns = [...config.queues.values()].flatMap((q) => q.allowedRepos);
  return (repository) => repos.has(repository) || repoAllowed(patterns, repository);
}

/** The refs the [image] sections name: an image one of them names on a node is the alias's current image there. */
export function aliasRefs(config: Pick<Config, 'images'>): Set<string> {
  return new Set([...config.images.values()].map((i) => i.ref));
}

/** Every image a node holds, one row per name: id, repository, tag, digest, then the image's creation time (spaces in it, so last). */
export function imageTableArgv(): string[] {
  return ['images', '--digests', '--no-trunc', '--format', '{{.ID}} {{.Repository}} {{.Tag}} {{.Digest}} {{.CreatedAt}}'];
}

/** Every container on the node, running or stopped, by full id. */
export function containerIdsArgv(): string[] {
  return ['ps', '--all', '--quiet', '--no-trunc'];
}

/** The image id each container was made from (docker ps prints only the name it was run by). */
export function containerImagesArgv(ids: string[]): string[] {
  return ['inspect', '--type', 'container', '--format', '{{.Image}}', ...ids];
}

/**
 * Removes an image's names, never with --force: docker itself then refuses to drop the last
 * name of an image a container uses, even one made after gc listed the containers. Digest
 * names go before tags: removing a repository's last tag takes its digest names with it, and
 * a name already gone would fail the command.
 */
export function rmiArgv(refs: string[]): string[] {
  return ['rmi', ...refs];
}

/** One row of imageTableArgv's answer. */
export interface ImageTableRow {
  id: string;
  repository: string;
  /** `<none>`: held by digest only. */
  tag: string;
  /** `<none>`: never pushed or pulled. */
  digest: string;
  /** Milliseconds since the epoch. */
  created: number;
}

// Go's time.Time.String(), as `docker images` prints CreatedAt: `2026-05-07 21:09:36 +0000 UTC`.
const CREATED = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.\d+)? ([+-]\d\d)(\d\d)(?: \S+)?$/;

/**
 * imageTableArgv's answer → its rows. A line it cannot read fails the node: gc must not guess
 * which image is newer.
 */
export function parseImageTable(stdout: string): ImageTableRow[] {
  return stdout.split('\n').filter((l) => l.trim()).map((line) => {
    const [id = '', repository = '', tag = '', digest = '', ...rest] = line.trim().split(/\s+/);
    const m = CREATED.exec(rest.join(' '));
    const created = m ? Date.parse(`${m[1]}T${m[2]}${m[3]}:${m[4]}`) : NaN;
    if (!id || Number.isNaN(created)) throw new JobboxError('docker images', 'cannot read the line (id repository tag digest created)', line, EXIT.transient);
    return { id, repository, tag, digest, created };
  });
}

/** What gc does with an image: `tagged`, an alias's tag names it; `kept`, one of the --keep newest. */
export type Fate = 'in-use' | 'tagged' | 'kept' | 'remove';

export interface ImagePlan {
  id: string;
  created: number;
  /** Its names in managed repositories, digests first (rmiArgv). */
  refs: string[];
  fate: Fate;
}

export interface GcInput {
  rows: ImageTableRow[];
  /** Image ids of the node's containers, running or stopped. */
  used: Iterable<string>;
  managed: (repository: string) => boolean;
  /** aliasRefs. */
  named: Set<string>;
  /** Per managed repository, how many of its newest unused images stay besides those in use and those an alias's tag names. */
  keep: number;
}

/**
 * The fate of every image that has a name in a managed repository. An image in use, or named
 * by an alias's tag, stays. Of the others, each repository keeps its `keep` newest (by the
 * image's creation time); an image in two repositories stays when either keeps it. The rest
 * lose their names in managed repositories; one also named elsewhere stays under that name.
 * In order: by repository, then newest first.
 */
export function planImageGc(input: GcInput): ImagePlan[] {
  // Podman's inspect prints a container's image id without its algorithm, docker with it.
  const used = new Set([...input.used].map((id) => (id.includes(':') ? id : `sha256:${id}`)));
  const byId = new Map<string, { id: string; created: number; refs: Set<string>; repos: Set<string> }>();
  for (const r of input.rows) {
    if (!input.managed(r.repository)) continue;
    let image = byId.get(r.id);
    if (!image) byId.set(r.id, (image = { id: r.id, created: r.created, refs: new Set(), repos: new Set() }));
    image.repos.add(r.repository);
    if (DIGEST.test(r.digest)) image.refs.add(`${r.repository}@${r.digest}`);
    if (r.tag !== '<none>') image.refs.add(`${r.repository}:${r.tag}`);
  }
  const newest = (a: { created: number; id: string }, b: { created: number; id: string }) => b.created - a.created || byText(a.id, b.id);
  const images = [...byId.values()].filter((i) => i.refs.size > 0);
  const fate = new Map<string, Fate>();
  for (const i of images) {
    if (used.has(i.id)) fate.set(i.id, 'in-use');
    else if ([...i.refs].some((ref) => input.named.has(ref))) fate.set(i.id, 'tagged');
  }
  const repos = [...new Set(images.flatMap((i) => [...i.repos]))].sort();
  for (const repo of repos) {
    const candidates = images.filter((i) => i.repos.has(repo) && fate.get(i.id) !== 'in-use' && fate.get(i.id) !== 'tagged').sort(newest);
    for (const i of candidates.slice(0, input.keep)) fate.set(i.id, 'kept');
  }
  const first = (i: { repos: Set<string> }) => [...i.repos].sort()[0]!;
  const digestsFirst = (a: string, b: string) => Number(b.includes('@')) - Number(a.includes('@')) || byText(a, b);
  return images
    .sort((a, b) => byText(first(a), first(b)) || newest(a, b))
    .map((i) => ({ id: i.id, created: i.created, refs: [...i.refs].sort(digestsFirst), fate: fate.get(i.id) ?? 'remove' }));
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
