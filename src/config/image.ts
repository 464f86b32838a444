// Which image a job gets. The request comes from the user (the esub's advisory JOBBOX_IMAGE, a
// constraint, a comment or a flag), so it is checked as attacker data: an alias is only a key
// into the root-owned allow-list, and a user's own reference must parse as a qualified docker
// reference in a repository the queue allows (allowed_repos). Either may carry the digest its
// submit pinned (`deb12@sha256:…`, `reg/projects/app:1.2@sha256:…`). At submit a refusal also
// names the next step in the submit's own options: a queue that takes the image, or an image
// the queue takes.
import { JobboxError } from '../errors.js';
import { DIGEST, parseUserRef, repoAllowed } from './ref.js';
import type { Config, Image, Queue } from './types.js';

const SHELL_META = /[$`;|&<>()'"\\*]/;

/**
 * How a submit names a queue and an image (scheduler/lsf.ts LSF_SUBMIT, scheduler/slurm.ts
 * SLURM_SUBMIT). A start judges without one: the job's queue is settled by then.
 */
export interface SubmitSyntax {
  /** `-q normal` */
  queue: (name: string) => string;
  /** `-a docker-deb12`; absent when the job names several queues, where an image one allows may not suit the others. */
  alias?: (alias: string) => string;
}

export function resolveImage(config: Config, queueName: string, requested: string | undefined, syntax?: SubmitSyntax): Image {
  const queue = config.queues.get(queueName);
  if (!queue) {
    const defined = [...config.queues.keys()].join(' ');
    throw new JobboxError('queue', `no such [queue] section in the config (defined: ${defined})${nextStep(config, undefined, requested, syntax)}`, queueName);
  }
  const name = requested ?? queue.defaultImage;
  const hint = () => nextStep(config, queue, name, syntax);
  const refuse: (problem: string) => never = (problem) => {
    throw new JobboxError('image', problem, name);
  };
  if (name === '') refuse('must not be empty');
  if (name.length > 330) refuse('longer than 330 characters');
  if (name.startsWith('-')) refuse('must not start with "-"');
  if (/[\s\x00-\x1f\x7f]/.test(name)) refuse('must not contain whitespace or control characters');
  if (SHELL_META.test(name)) refuse('must not contain shell metacharacters');
  if (name.includes('/')) return userImage(queue, name, refuse, hint);

  const [alias = '', digest, ...rest] = name.split('@');
  if (alias.length > 64) refuse('an alias is at most 64 characters');
  if (rest.length > 0 || (digest !== undefined && !DIGEST.test(digest))) refuse('a digest after "@" must be sha256: and 64 hex digits');
  const image = config.images.get(alias);
  if (!image) refuse(`no such image alias (${allowed(queue)})${hint()}`);
  if (!queue.allowedImages.includes(alias)) refuse(`not allowed in queue ${queueName} (${allowed(queue)})${hint()}`);
  // An [image] ref the admin pinned to a digest runs that digest, whatever a submit says.
  if (digest && image.ref.includes('@') && !image.ref.endsWith(`@${digest}`)) refuse(`the alias is pinned to another digest by the config (${image.ref})`);
  // A digest counts only where the queue pins at submit; elsewhere the start pins the tag.
  return digest && queue.pinAtSubmit ? { ...image, digest } : image;
}

/** A user's own image: no mounts or environment of an [image] section, only the queue's. */
function userImage(queue: Queue, name: string, refuse: (problem: string) => never, hint: () => string): Image {
  const ref = parseUserRef(name);
  if (!ref) refuse('not a qualified image reference (registry[:port]/path[:tag][@sha256:…], lowercase)');
  if (!repoAllowed(queue.allowedRepos, ref.repository)) refuse(`repository not allowed in queue ${queue.name} (${allowed(queue)})${hint()}`);
  const tagged = ref.tag ? `${ref.repository}:${ref.tag}` : `${ref.repository}@${ref.digest}`;
  return { alias: tagged, ref: tagged, ...(ref.digest && { digest: ref.digest }), mounts: [], env: {}, user: true };
}

function allowed(queue: Queue): string {
  const repos = queue.allowedRepos.length > 0 ? `; repositories: ${queue.allowedRepos.join(' ')}` : '';
  return `allowed: ${queue.allowedImages.join(' ')}${repos}`;
}

/** How many choices a hint names before `…`: the line stays one line. */
const SHOWN = 3;

/** `a or b or c or …`; '' for none. */
function choices(items: string[]): string {
  return [...items.slice(0, SHOWN), ...(items.length > SHOWN ? ['…'] : [])].join(' or ');
}

/**
 * `; use -q normal, or -a docker-deb12-mpich`: the other queues that take the request as it is,
 * and the images `queue` takes; '' without a submit's syntax, or with nothing to suggest.
 */
function nextStep(config: Config, queue: Queue | undefined, requested: string | undefined, syntax: SubmitSyntax | undefined): string {
  if (!syntax) return '';
  const steps = [queuesTaking(config, requested, syntax, queue), queue ? imagesOf(queue, syntax) : ''].filter((s) => s !== '');
  return steps.length > 0 ? `; use ${steps.join(', or ')}` : '';
}

/** `-q normal or -q long`: the queues, but `except`, that allow the image a request names (none: their default). */
export function queuesTaking(config: Config, requested: string | undefined, syntax: SubmitSyntax, except?: Queue): string {
  return choices([...config.queues.values()].filter((q) => q !== except && takes(q, requested)).map((q) => syntax.queue(q.name)));
}

/** `-a docker-deb12 or -a docker-deb12-mpich`: the images a queue allows, in the syntax's words; '' when it has none for them. */
export function imagesOf(queue: Queue, syntax: SubmitSyntax): string {
  return syntax.alias ? choices(queue.allowedImages.map(syntax.alias)) : '';
}

/** Whether a queue allows the image a request names; resolveImage judges the rest. */
function takes(queue: Queue, requested: string | undefined): boolean {
  if (requested === undefined) return true;
  if (!requested.includes('/')) return queue.allowedImages.includes(requested.split('@')[0]!);
  const ref = parseUserRef(requested);
  return ref !== undefined && repoAllowed(queue.allowedRepos, ref.repository);
}
