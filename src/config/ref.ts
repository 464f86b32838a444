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
