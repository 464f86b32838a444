// LSF (and openlava) job environment → Job. The only code that reads LSB_* variables.
import { JobboxError } from '../errors.js';
import { QUEUE_NAME } from '../config/parse.js';
import type { AccountLookup, Host, Job } from './job.js';

export const HOST_NAME = /^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$/;
const SCHEDULER_VAR = /^(LSB_|LSF_|LS_)/;

export async function lsfJob(env: Record<string, string | undefined>, thisHost: string, lookup: AccountLookup): Promise<Job> {
  const id = required(env, 'LSB_JOBID');
  if (!/^\d{1,20}$/.test(id)) throw new JobboxError('LSB_JOBID', 'must be a decimal job id', id);
  const index = env.LSB_JOBINDEX || '0';
  if (!/^\d{1,10}$/.test(index)) throw new JobboxError('LSB_JOBINDEX', 'must be a decimal array index', index);
  const queue = required(env, 'LSB_QUEUE');
  if (!QUEUE_NAME.test(queue)) throw new JobboxError('LSB_QUEUE', `must match ${QUEUE_NAME.source}`, queue);

  const hosts = firstHostFirst(jobHosts(env), thisHost);
  // sbatchd sets LSB_JOB_EXECUSER when the job starts, over anything submitted with it.
  // USER and LOGNAME travel in the user's own environment and could name anyone.
  const ownerName = required(env, 'LSB_JOB_EXECUSER');
  const owner = await lookup(ownerName);
  if (owner.uid === 0) throw new JobboxError('LSB_JOB_EXECUSER', 'jobs owned by uid 0 are refused', ownerName);

  return {
    scheduler: 'lsf',
    id,
    index: Number(index),
    attempt: hosts[0].name,
    queue,
    owner,
    cwd: env.LS_SUBCWD || owner.home,
    hosts,
    image: env.JOBBOX_IMAGE || undefined,
    env: Object.fromEntries(
      Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && !SCHEDULER_VAR.test(e[0])),
    ),
  };
}

/** `"h3 1 h5 1 h1 2 "` → hosts with slot counts, repeated hosts summed, in first-appearance order. */
export function parseMcpuHosts(text: string): Host[] {
  const words = text.trim().split(/\s+/);
  if (text.trim() === '' || words.length % 2 !== 0) throw new JobboxError('LSB_MCPU_HOSTS', 'must be pairs of "host count"', text);
  const slots = new Map<string, number>();
  for (let i = 0; i < words.length; i += 2) {
    const name = hostName('LSB_MCPU_HOSTS', words[i] ?? '');
    const count = words[i + 1] ?? '';
    if (!/^[1-9]\d{0,5}$/.test(count)) throw new JobboxError('LSB_MCPU_HOSTS', 'slot counts must be positive integers', count);
    slots.set(name, (slots.get(name) ?? 0) + Number(count));
  }
  return [...slots].map(([name, n]) => ({ name, slots: n }));
}

/** `"h1 h1 h5 h3"`, one word per slot → hosts with slot counts, in first-appearance order. */
export function parseLsfHosts(text: string): Host[] {
  if (text.trim() === '') throw new JobboxError('LSB_HOSTS', 'must list at least one host', text);
  const slots = new Map<string, number>();
  for (const word of text.trim().split(/\s+/)) {
    const name = hostName('LSB_HOSTS', word);
    slots.set(name, (slots.get(name) ?? 0) + 1);
  }
  return [...slots].map(([name, n]) => ({ name, slots: n }));
}

// LSB_MCPU_HOSTS is always set and has the counts; LSB_HOSTS is dropped by LSF for very long
// lists but gives the order. When both are there, a disagreement means we misread one.
function jobHosts(env: Record<string, string | undefined>): Host[] {
  const mcpu = env.LSB_MCPU_HOSTS?.trim() ? parseMcpuHosts(env.LSB_MCPU_HOSTS) : undefined;
  const lsf = env.LSB_HOSTS?.trim() ? parseLsfHosts(env.LSB_HOSTS) : undefined;
  if (!mcpu && !lsf) throw new JobboxError('LSB_MCPU_HOSTS', 'is not set, nor is LSB_HOSTS', '');
  if (mcpu && lsf) {
    const counts = new Map(mcpu.map((h) => [h.name, h.slots]));
    if (mcpu.length !== lsf.length || lsf.some((h) => counts.get(h.name) !== h.slots)) {
      throw new JobboxError('LSB_HOSTS', `disagrees with LSB_MCPU_HOSTS "${env.LSB_MCPU_HOSTS?.trim()}"`, env.LSB_HOSTS ?? '');
    }
  }
  return lsf ?? mcpu ?? [];
}

// LSF may know a host by its short name while the OS reports the FQDN, or the other way round.
function firstHostFirst(hosts: Host[], thisHost: string): [Host, ...Host[]] {
  const short = (name: string) => name.toLowerCase().split('.')[0];
  const exact = hosts.filter((h) => h.name.toLowerCase() === thisHost.toLowerCase());
  const matches = exact.length > 0 ? exact : hosts.filter((h) => short(h.name) === short(thisHost));
  const me = matches[0];
  if (!me) throw new JobboxError('job hosts', `do not include this host (${hosts.map((h) => h.name).join(' ')})`, thisHost);
  if (matches.length > 1) throw new JobboxError('job hosts', 'include several hosts with this short name', thisHost);
  return [me, ...hosts.filter((h) => h !== me)];
}

function hostName(variable: string, word: string): string {
  if (!HOST_NAME.test(word)) throw new JobboxError(variable, `host names must match ${HOST_NAME.source}`, word);
  return word;
}

function required(env: Record<string, string | undefined>, name: string): string {
  const value = env[name];
  if (!value) throw new JobboxError(name, 'is not set (not running under LSF?)', '');
  return value;
}

// ---- Submit time: the esub's parameter file ----

/**
 * `$LSB_SUB_PARM_FILE` → its variables. LSF writes `NAME=value` lines that the documented
 * esubs source with `. "$LSB_SUB_PARM_FILE"`, with string values double-quoted
 * (`LSB_SUB_QUEUE="short"`), so a quoted value is read by sh's double-quote rules (`\"`, `\\`,
 * `\$`, `` \` `` and line continuation) and may span lines (a command line can). Nothing is
 * expanded. Lines that are not `NAME=` are skipped: a future LSF must not fail every submit.
 */
export function parseParmFile(text: string): Map<string, string> {
  const vars = new Map<string, string>();
  const name = /([A-Za-z_][A-Za-z0-9_]*)=/y;
  let i = 0;
  while (i < text.length) {
    name.lastIndex = i;
    const m = name.exec(text);
    if (!m?.[1]) {
      i = lineEnd(text, i) + 1;
      continue;
    }
    i = name.lastIndex;
    let value = '';
    if (text[i] === '"') {
      for (i += 1; i < text.length && text[i] !== '"'; i += 1) {
        const next = text[i + 1];
        if (text[i] === '\\' && next !== undefined && '"\\$`\n'.includes(next)) {
          if (next !== '\n') value += next;
          i += 1;
        } else {
          value += text[i];
        }
      }
      i = lineEnd(text, i) + 1;
    } else {
      const end = lineEnd(text, i);
      value = text.slice(i, end);
      i = end + 1;
    }
    vars.set(m[1], value);
  }
  return vars;
}

function lineEnd(text: string, from: number): number {
  const end = text.indexOf('\n', from);
  return end === -1 ? text.length : end;
}

/**
 * `bsub -a` values (openlava's `LSB_SUB_ADDITIONAL="docker-deb12 other"`) → the image alias
 * asked for, or undefined when no word starts with `docker-`. Words for other applications
 * belong to other esubs; two docker- words would be two images for one job.
 */
export function requestedAlias(additional: string | undefined): string | undefined {
  const docker = (additional ?? '').split(/\s+/).filter((w) => w.startsWith('docker-'));
  if (docker.length > 1) throw new JobboxError('bsub -a', 'names more than one docker- application, give one image', docker.join(' '));
  return docker[0]?.slice('docker-'.length);
}
