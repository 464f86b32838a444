// `jobbox logs <job> [--nodes HOSTLIST] [--json]`, as root: the job's lines of jobbox's log from
// this host and from every node that may hold some, merged in time order (plan/logs.ts). The
// nodes: --nodes, else those the job's dirs and its start record name.
import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { execFile } from 'node:child_process';
import { configPath, loadConfig } from '../config/load.js';
import { EXIT, JobboxError, noControls } from '../errors.js';
import { readJobFile } from '../exec/jobdir.js';
import { eachNode } from '../lifecycle/sessions.js';
import { hostfileHosts, parseKey } from '../plan/gc.js';
import { logGrepArgv, mergeLogs, renderLogLine } from '../plan/logs.js';
import { jobLabel, parseJobArg } from '../plan/status.js';
import { expandHostlist } from '../scheduler/slurm.js';
import { asRoot } from './admin.js';

export interface LogsArgs {
  config: string | undefined;
  job: string;
  index: number | undefined;
  nodes: string | undefined;
  json: boolean;
}

/** The hosts of the job's attempts that state_dir still holds (a running or orphaned job). */
async function jobHosts(stateDir: string, job: { id: string; index: number }): Promise<string[]> {
  const hosts = new Set<string>();
  for (const name of await readdir(stateDir).catch(() => [] as string[])) {
    const k = parseKey(name);
    if (k?.id !== job.id || k.index !== job.index) continue;
    for (const h of hostfileHosts((await readJobFile(join(stateDir, name, 'hostfile')).catch(() => undefined)) ?? '') ?? []) hosts.add(h);
  }
  return [...hosts];
}

/** Exit 1 when a node could not be read, or no line was found. */
export async function logs(args: LogsArgs, env: NodeJS.ProcessEnv): Promise<number> {
  asRoot('logs', 'the log is root\'s alone (0600)');
  const job = parseJobArg(args.job, args.index);
  if (!job) throw new JobboxError('logs', 'the job must be a job id, or id[index] as LSF names an array element, with --index N agreeing', args.job, EXIT.usage);
  const config = await loadConfig(configPath(args.config, env));
  const self = hostname();
  const nodes = (args.nodes ? [...new Set(expandHostlist(args.nodes, '--nodes'))] : await jobHosts(config.stateDir, job)).filter((n) => n !== self);

  // This host's own log, by the same script as the nodes' (its argv is `sh -c SCRIPT …`).
  const local = await promisify(execFile)('/bin/sh', logGrepArgv(config.logFile, job.id).slice(1), { maxBuffer: 256 << 20 }).then((r) => r.stdout);
  const read = await eachNode(config, nodes, async (s) => {
    const r = await s.run(logGrepArgv(config.logFile, job.id), config.startTimeoutMs);
    if (r.code !== 0) throw new JobboxError(`${s.host}: logs`, `exit ${r.code}`, r.stderr.trim().split('\n')[0] ?? '');
    return r.stdout;
  });
  const found = [{ from: self, text: local }, ...nodes.flatMap((from, i) => (read[i]!.ok ? [{ from, text: (read[i] as { value: string }).value }] : []))];
  const lines = mergeLogs(found, job);
  for (const l of lines) process.stdout.write(`${args.json ? noControls(l.raw) : renderLogLine(l)}\n`);
  const failed = nodes.flatMap((n, i) => (read[i]!.ok ? [] : [`${n}: ${(read[i] as { error: string }).error}`]));
  for (const f of failed) process.stderr.write(`jobbox: logs: not read: ${f}\n`);
  if (lines.length === 0) {
    const hint = args.nodes ? '' : ' (once the job is gone, name its first host with --nodes: jobbox status shows it)';
    process.stderr.write(`jobbox: logs: no line of job ${jobLabel(job)} in ${config.logFile} on ${[self, ...nodes].join(' ')}${hint}\n`);
  }
  return failed.length > 0 || lines.length === 0 ? EXIT.transient : 0;
}
