// The submit phase, on either scheduler: the image a job asks for is judged against each queue
// it may start in, and pinned to the digest its tag names now where that is the rule (a user's
// own image always; an alias where the queue has pin_at_submit). The answer is what the job
// carries to its start: `alias`, `alias@sha256:…` or `reg/path/app:tag@sha256:…`. LSF's esub
// and Slurm's job_submit.lua (through `jobbox image resolve`) both use it; the root start judges
// the answer again, since the submit's side is the user's to forge.
import { resolveImage, type SubmitSyntax } from '../config/image.js';
import { repoOf } from '../config/ref.js';
import type { Config, Image } from '../config/types.js';
import { registryDigest } from '../exec/registry.js';

/** `syntax`: the submit's own options, for the next step a refusal names. */
export async function submitRequest(config: Config, queues: string[], requested: string | undefined, syntax: SubmitSyntax): Promise<string> {
  // An image one queue allows may not suit the others the job names: a refusal names only queues then.
  const hints = queues.length > 1 ? { queue: syntax.queue } : syntax;
  const images = queues.map((q) => resolveImage(config, q, requested, hints));
  const image = images[0]!;
  // Every queue names the same image (the request is one name), so the first one speaks for all.
  if (!image.user && !queues.some((q) => config.queues.get(q)!.pinAtSubmit)) return image.alias;
  const digest = await pinnedDigest(config, image, requested);
  // A user's `repo@digest` is named by its alias already: the repository is the rest.
  return `${image.alias.split('@')[0]}@${digest}`;
}

/** The digest the job will run: the one the request gave, once the registry confirms it, else the tag's now. */
async function pinnedDigest(config: Config, image: Image, requested: string | undefined): Promise<string> {
  // resolveImage drops an alias's digest in a queue that does not pin; one that does keeps it.
  const given = image.digest ?? /@(sha256:[0-9a-f]{64})$/.exec(requested ?? '')?.[1];
  return registryDigest(config, given ? `${repoOf(image.ref)}@${given}` : image.ref);
}
