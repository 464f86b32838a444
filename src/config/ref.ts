import { JobboxError } from '../errors.js';

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
