import { JobboxError } from '../errors.js';
import type { Image } from './types.js';

const REF = /^[a-z0-9][a-z0-9._:/@-]{0,254}$/;

/**
 * A docker reference that names its registry. An unqualified name such as `centos:7` would
 * be pulled from a public registry, so it gets `registry/` in front or is refused.
 */
export function qualifiedRef(ref: string, registry: string, subject: string): string {
  if (!REF.test(ref)) {
    throw new JobboxError(subject, 'not a valid image reference (lowercase [a-z0-9._:/@-], at most 255)', ref);
  }
  const first = ref.split('/')[0] ?? '';
  if (ref.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return ref;
  if (!registry) throw new JobboxError(subject, 'image ref is not qualified with a registry', ref);
  return `${registry}/${ref}`;
}

/** A manifest digest as registries and docker print it. */
export const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** `reg:5000/a/b:tag` or `reg:5000/a/b@sha256:…` → `reg:5000/a/b`, the repository a digest belongs to. */
export function repoOf(ref: string): string {
  const name = ref.includes('@') ? ref.slice(0, ref.indexOf('@')) : ref;
  const colon = name.lastIndexOf(':');
  return colon > name.lastIndexOf('/') ? name.slice(0, colon) : name;
}

/** The ref a job's containers run: the repository at the digest its setup pinned, else the configured ref. */
export function runRef(image: Pick<Image, 'ref' | 'digest'>): string {
  return image.digest ? `${repoOf(image.ref)}@${image.digest}` : image.ref;
}

// Docker's reference grammar (distribution/reference), lowercase: a registry host[:port], then
// path components, then a tag and/or a digest. A user's image is judged against it whole, so
// nothing else (a flag, a `..`, a public hub's implied name) can pass as one.
const LABEL = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
const HOST = `(?:(?:localhost|${LABEL}(?:\\.${LABEL})+)(?::\\d{1,5})?|${LABEL}:\\d{1,5})`;
const COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY = new RegExp(`^${HOST}(?:/${COMPONENT})+$`);
const USER_REF = new RegExp(`^(${HOST}(?:/${COMPONENT})+)(?::([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(sha256:[0-9a-f]{64}))?$`);

/** A repository named with its registry (`reg:5000/projects/app`), as docker's grammar allows it. */
export function isRepository(text: string): boolean {
  return text.length <= 255 && REPOSITORY.test(text);
}

export interface UserRef {
  repository: string;
  /** `latest` when the ref names neither a tag nor a digest, as docker reads it. */
  tag: string | undefined;
  digest: string | undefined;
}

/** `reg:5000/projects/app:1.2[@sha256:…]` → its parts, or undefined when it is no qualified reference. */
export function parseUserRef(text: string): UserRef | undefined {
  const m = text.length <= 330 ? USER_REF.exec(text) : null;
  if (!m || m[1]!.length > 255) return undefined;
  return { repository: m[1]!, tag: m[2] ?? (m[3] ? undefined : 'latest'), digest: m[3] };
}

/**
 * A queue's `allowed_repos` entry admits a repository: `reg/projects/app` exactly that one,
 * `reg/projects/*` every repository below reg/projects, at any depth.
 */
export function repoAllowed(patterns: string[], repository: string): boolean {
  return patterns.some((p) => (p.endsWith('/*') ? repository.startsWith(p.slice(0, -1)) : repository === p));
}
