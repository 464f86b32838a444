// Which image a job gets. The requested name comes from the user (via the esub's advisory
// JOBBOX_IMAGE or a flag), so it is checked as attacker data and only ever used as a key
// into the root-owned allow-list: a registry ref is never taken from the user.
import { JobboxError } from '../errors.js';
import type { Config, Image } from './types.js';

const SHELL_META = /[$`;|&<>()'"\\*]/;

export function resolveImage(config: Config, queueName: string, requested: string | undefined): Image {
  const queue = config.queues.get(queueName);
  if (!queue) throw new JobboxError('queue', `no such [queue] section in the config (defined: ${[...config.queues.keys()].join(' ')})`, queueName);
  const name = requested ?? queue.defaultImage;
  const refuse: (problem: string) => never = (problem) => {
    throw new JobboxError('image', problem, name);
  };
  if (name === '') refuse('must not be empty');
  if (name.length > 64) refuse('longer than 64 characters');
  if (name.startsWith('-')) refuse('must not start with "-"');
  if (/[\s\x00-\x1f\x7f]/.test(name)) refuse('must not contain whitespace or control characters');
  if (SHELL_META.test(name)) refuse('must not contain shell metacharacters');
  const allowed = `allowed: ${queue.allowedImages.join(' ')}`;
  const image = config.images.get(name);
  if (!image) refuse(`no such image alias, only aliases are accepted (${allowed})`);
  if (!queue.allowedImages.includes(name)) refuse(`not allowed in queue ${queueName} (${allowed})`);
  return image;
}
