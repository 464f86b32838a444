// Which image a job gets. The request comes from the user (the esub's advisory JOBBOX_IMAGE, a
// constraint, a comment or a flag), so it is checked as attacker data: an alias is only a key
// into the root-owned allow-list, and a user's own reference must parse as a qualified docker
// reference in a repository the queue allows (allowed_repos). Either may carry the digest its
// submit pinned (`deb12@sha256:…`, `reg/projects/app:1.2@sha256:…`).
import { JobboxError } from '../errors.js';
import { DIGEST, parseUserRef, repoAllowed } from './ref.js';
import type { Config, Image, Queue } from './types.js';

const SHELL_META = /[$`;|&<>()'"\\*]/;

export function resolveImage(config: Config, queueName: string, requested: string | undefined): Image {
  const queue = config.queues.get(queueName);
  if (!queue) throw new JobboxError('queue', `no such [queue] section in the config (defined: ${[...config.queues.keys()].join(' ')})`, queueName);
  const name = requested ?? queue.defaultImage;
  const refuse: (problem: string) => never = (problem) => {
    throw new JobboxError('image', problem, name);
  };
  if (name === '') refuse('must not be empty');
  if (name.length > 330) refuse('longer than 330 characters');
  if (name.startsWith('-')) refuse('must not start with "-"');
  if (/[\s\x00-\x1f\x7f]/.test(name)) refuse('must not contain whitespace or control characters');
  if (SHELL_META.test(name)) refuse('must not contain shell metacharacters');
  if (name.includes('/')) return userImage(queue, name, refuse);

  const [alias = '', digest, ...rest] = name.split('@');
  if (alias.length > 64) refuse('an alias is at most 64 characters');
  if (rest.length > 0 || (digest !== undefined && !DIGEST.test(digest))) refuse('a digest after "@" must be sha256: and 64 hex digits');
  const image = config.images.get(alias);
  if (!image) refuse(`no such image alias (${allowed(queue)})`);
  if (!queue.allowedImages.includes(alias)) refuse(`not allowed in queue ${queueName} (${allowed(queue)})`);
  // An [image] ref the admin pinned to a digest runs that digest, whatever a submit says.
  if (digest && image.ref.includes('@') && !image.ref.endsWith(`@${digest}`)) refuse(`the alias is pinned to another digest by the config (${image.ref})`);
  // A digest counts only where the queue pins at submit; elsewhere the start pins the tag.
  return digest && queue.pinAtSubmit ? { ...image, digest } : image;
}

/** A user's own image: no mounts or environment of an [image] section, only the queue's. */
function userImage(queue: Queue, name: string, refuse: (problem: string) => never): Image {
  const ref = parseUserRef(name);
  if (!ref) refuse('not a qualified image reference (registry[:port]/path[:tag][@sha256:…], lowercase)');
  if (!repoAllowed(queue.allowedRepos, ref.repository)) refuse(`repository not allowed in queue ${queue.name} (${allowed(queue)})`);
  const tagged = ref.tag ? `${ref.repository}:${ref.tag}` : `${ref.repository}@${ref.digest}`;
  return { alias: tagged, ref: tagged, ...(ref.digest && { digest: ref.digest }), mounts: [], env: {}, user: true };
}

function allowed(queue: Queue): string {
  const repos = queue.allowedRepos.length > 0 ? `; repositories: ${queue.allowedRepos.join(' ')}` : '';
  return `allowed: ${queue.allowedImages.join(' ')}${repos}`;
}
