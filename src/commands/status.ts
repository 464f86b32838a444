import { configPath, loadConfig } from '../config/load.js';
import { EXIT, JobboxError } from '../errors.js';
import { readStatusFile } from '../exec/jobdir.js';
import { jobLabel, parseJobArg, parseStatus, renderStatus, STATUS_MAX_BYTES, statusPath } from '../plan/status.js';

export interface StatusArgs {
  config: string | undefined;
  job: string;
  index: number | undefined;
  json: boolean;
}

// `jobbox status JOB`, run by a job's owner (or root) on any host that mounts state_dir: how the
// job's last start attempt went, from the record the setup kept (plan/status.ts). It runs as
// the user, with the user's privileges only: the file's mode is what keeps other users out.
// Whether the record is absent or another user's is not told apart: both get the same line.
export async function status(args: StatusArgs, env: NodeJS.ProcessEnv): Promise<void> {
  const job = parseJobArg(args.job, args.index);
  if (!job) throw new JobboxError('status', 'the job must be a job id, or id[index] as LSF names an array element, with --index N agreeing', args.job, EXIT.usage);
  const config = await loadConfig(configPath(args.config, env));
  const uid = process.getuid?.() ?? 0;
  const file = await readStatusFile(statusPath(config.stateDir, job), STATUS_MAX_BYTES);
  // The owner's file, or any for root: a record readable by someone else (a site that changed
  // the modes) is still shown to its owner only.
  const record = file && (uid === 0 || file.uid === uid) ? parseStatus(file.text) : undefined;
  if (!record || record.uid !== file?.uid || record.job !== job.id || record.index !== job.index) {
    const label = jobLabel(job);
    // Exit 1, as grep for no match: nothing to show, not a usage mistake and not a fault.
    throw new JobboxError('status', `job ${label}: not yours, or no start recorded`, label, EXIT.transient);
  }
  // JSON escapes C0 controls; DEL and C1 (U+009B is a one-byte terminal escape) too, as printable() does.
  const json = () => JSON.stringify(record).replace(/[\x7f-\x9f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  process.stdout.write(args.json ? `${json()}\n` : renderStatus(record));
}
