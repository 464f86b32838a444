// Everything jobbox knows about LSF (and openlava), pure: the job environment → Job, the
// esub's parameter file, the orphan reaper's bjobs query and its answer. The only code that
// reads LSB_* variables. What runs bjobs is exec/lsf.ts.
import { EXIT, JobboxError, type ExitCode } from '../errors.js';
import type { SubmitSyntax } from '../config/image.js';
import { QUEUE_NAME } from '../config/parse.js';
import { HOST_NAME, type AccountLookup, type Host, type Job, type LsfNest } from '../job/job.js';
import { describeFailure, type Result } from '../result.js';
import { refKey, type Answer, type JobRef, type Verdict } from './answer.js';

/*
 * A hook's outcome is its exit code, which LSF reads as an instruction: a PRE_EXEC that exits
 * 99 (LSB_EXIT_PRE_ABORT) ends the job, any other non-zero requeues it, with no retry limit;
 * an esub rejects the submit with LSB_SUB_ABORT_VALUE (esubFiles). jobbox's errors carry the
 * pre-exec codes (EXIT.permanent, EXIT.transient in errors.ts), chosen where each is raised.
 */

// Set by LSF; everything else in the job's environment is the user's.
const SCHEDULER_VAR = /^(LSB_|LSF_|LS_)/;

/**
 * What a root hook sees of its own host, for the job's containment: its /proc/self/cgroup, and
 * the CPUs a binding may name there (the cpuset of LSF's job cgroup when the hook runs in one
 * there, else the host's online CPUs), in the kernel's list format. A teardown passes no
 * `cpus`: it needs only where the containers went, and no binding may keep it from removing them.
 */
export interface LsfHostFacts {
  procCgroup: string;
  cpus?: (nest: LsfNest | undefined) => Promise<string>;
}

/**
 * The job as a hook on `thisHost` sees it. `facts` (root hooks): the containers then go into
 * per-job cgroups (Job.containment), the first host's nested in LSF's job cgroup when the hook
 * runs in one, and bound to LSB_BIND_CPU_LIST there when it is set.
 */
export async function lsfJob(env: Record<string, string | undefined>, thisHost: string, lookup: AccountLookup, facts?: LsfHostFacts): Promise<Job> {
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

  let containment: Job['containment'];
  if (facts) {
    const nest = lsfNest(facts.procCgroup, id, String(Number(index)));
    containment = { scheduler: 'lsf', ...(nest && { nest }) };
    const list = env.LSB_BIND_CPU_LIST?.trim();
    const cpus = facts.cpus && list ? boundCpus(list, await facts.cpus(nest), hosts[0].name) : undefined;
    if (cpus) hosts[0] = { ...hosts[0], cpus };
  }

  return {
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
    ...(containment && { containment }),
  };
}

// LSF names a job's cgroup job.<id>.<index>.<submit time> below lsf/<cluster> in each
// controller it uses (memory, cpuacct and freezer for tracking and accounting, cpuset for
// affinity). That name is read from IBM's documentation, not seen on an LSF host: a hook that
// finds no such cgroup of its own simply does not nest (docs/cgroups.md).
const CGROUP_PATH = /^(?:\/[A-Za-z0-9_@+=:-][A-Za-z0-9_.@+=:-]*)+$/;

/** An absolute cgroup path of plain names: no `.` or `..` level, nothing a shell or docker reads specially. */
export function isCgroupPath(path: unknown): path is string {
  return typeof path === 'string' && path.length <= 1024 && CGROUP_PATH.test(path);
}

/**
 * /proc/self/cgroup (v1) of a root hook → LSF's cgroup for job `id`, when the hook runs in
 * one: the path down to its `job.<id>.<index>.` level in the memory hierarchy, and every hierarchy
 * where the hook sits in the same cgroup. Only the kernel writes this file, and no user can
 * move a root process between cgroups, so the answer is LSF's.
 */
export function lsfNest(procCgroup: string, id: string, index: string): LsfNest | undefined {
  const lines = procCgroup.split('\n').filter(Boolean).map((l) => {
    const [, , controllers = '', path = ''] = /^(\d+):([^:]*):(.*)$/.exec(l) ?? [];
    return { controllers, path };
  });
  const jobLevel = (path: string) => {
    const parts = path.split('/');
    const at = parts.findIndex((p) => p.startsWith(`job.${id}.${index}.`));
    return at > 0 ? parts.slice(0, at + 1).join('/') : undefined;
  };
  const memory = lines.find((l) => l.controllers.split(',').includes('memory'));
  const path = memory && jobLevel(memory.path);
  if (!isCgroupPath(path)) return undefined;
  // The directory each hierarchy has under /sys/fs/cgroup: `name=systemd` is `systemd`, v2's `unified`.
  const dir = (c: string) => (c === '' ? 'unified' : c.replace(/^name=/, ''));
  return { path, controllers: lines.filter((l) => jobLevel(l.path) === path).map((l) => dir(l.controllers)) };
}

/**
 * LSB_BIND_CPU_LIST → the first host's cores, checked against `allowed`. LSF sets it for a job
 * it binds (for a multi-host job it binds nothing and the list is the first host's), but a user
 * may export it where LSF does not: then it can only narrow the container to CPUs it could use
 * anyway, and a list naming others would fail at docker run on every requeue, so it is refused.
 */
export function boundCpus(list: string | undefined, allowed: string, host: string): string | undefined {
  if (!list?.trim()) return undefined;
  const want = cpuList('LSB_BIND_CPU_LIST', list.trim());
  const have = cpuList('allowed CPUs', allowed.trim());
  const outside = [...want].filter((c) => !have.has(c));
  if (outside.length > 0) throw new JobboxError('LSB_BIND_CPU_LIST', `names CPUs outside those the job may use on ${host} (${allowed.trim()})`, list);
  return [...want].sort((a, b) => a - b).join(',');
}

/** The kernel's CPU list format (`0-3,8,10-11`) → the CPU numbers; anything else is refused. */
export function cpuList(subject: string, text: string): Set<number> {
  if (text.length > 4096 || !/^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*$/.test(text)) {
    throw new JobboxError(subject, 'must be a CPU list such as 0-3,8', text);
  }
  const cpus = new Set<number>();
  let spanned = 0;
  for (const part of text.split(',')) {
    const [a, b = a] = part.split('-').map(Number) as [number, number?];
    // Overlapping ranges must not make a short text a long loop.
    spanned += b - a + 1;
    if (b < a || b > 65535 || spanned > 65536) throw new JobboxError(subject, 'must be a CPU list such as 0-3,8', text);
    for (let c = a; c <= b; c += 1) cpus.add(c);
  }
  return cpus;
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

/** bsub's words for a queue and an alias, in the next step a refusal at submit names. */
export const LSF_SUBMIT: SubmitSyntax = { queue: (name) => `-q ${name}`, alias: (alias) => `-a docker-${alias}` };

/**
 * `bsub -a` values (openlava's `LSB_SUB_ADDITIONAL="docker-deb12 other"`) → the image asked
 * for, or undefined when no word is jobbox's: `docker-<alias>` names an alias, and
 * `docker(<ref>)` (LSF's esub arguments) an alias or a user's own reference, each with an
 * optional `@sha256:…`. Words for other applications belong to other esubs; two of jobbox's
 * would be two images for one job.
 */
export function requestedImage(additional: string | undefined): string | undefined {
  const docker = (additional ?? '').split(/\s+/).filter((w) => w.startsWith('docker-') || w.startsWith('docker('));
  if (docker.length > 1) throw new JobboxError('bsub -a', 'names more than one docker application, give one image', docker.join(' '));
  const word = docker[0];
  if (word === undefined || word.startsWith('docker-')) return word?.slice('docker-'.length);
  const arg = /^docker\(([^(),]*)\)$/.exec(word)?.[1];
  if (!arg) throw new JobboxError('bsub -a', 'docker takes one argument, the image: docker(reg:5000/path/app:tag)', word);
  return arg;
}

/**
 * The parameter file's text → the queue the job was submitted to (undefined: the default one)
 * and the image it asks for: `perAlias`, the name the per-alias esub was run by, else what
 * `bsub -a` says.
 */
export function esubRequest(parmText: string, perAlias: string | undefined): { queue: string | undefined; alias: string | undefined } {
  const parm = parseParmFile(parmText);
  return { queue: parm.get('LSB_SUB_QUEUE') || undefined, alias: perAlias ?? requestedImage(parm.get('LSB_SUB_ADDITIONAL')) };
}

// ---- The job starter: the user's command, as typed ----

/**
 * The JOB_STARTER flag that makes the starter read the user's command from the job file. LSF
 * pastes the starter line into the job file with the command in place of %USRCMD, and /bin/sh
 * reads that file again: any quoting in the line is undone by the command's own. Behind
 * `--job-file #`, sh sees the command as a comment and runs only the starter (`exec`, so no
 * line after it runs on the host either); the starter takes the command text from the file.
 */
export const JOB_FILE_FLAG = '--job-file';

// openlava's job file (lsbatch.h: CMDSTART, WAITCLEANCMD): the user input section is the
// starter line with the command pasted in, then these lines.
const CMD_START = '\n# LSBATCH: User input\n';
const CMD_END = '\nExitStat=$?\nwait\n# LSBATCH: End user input\n';
// `bsub < script`: the section first writes the script out in a here-document.
const SCRIPT_END = '\n_USER_SCRIPT_\n';

/**
 * `$LSB_JOBFILENAME`'s text → the user's command exactly as submitted: what follows
 * `--job-file #` on the starter's line, up to the end of the user input section. The file is
 * the owner's and the starter runs as the owner, so it is the owner's own command either way.
 */
export function jobFileCommand(text: string): string {
  const start = text.indexOf(CMD_START);
  const end = text.lastIndexOf(CMD_END);
  if (start === -1 || end < start) throw new JobboxError('LSB_JOBFILENAME', 'has no "# LSBATCH: User input" section', '');
  let section = text.slice(start + CMD_START.length, end);
  if (section.startsWith('( cat <<_USER_\\SCRIPT_\n') && section.includes(SCRIPT_END)) section = section.slice(section.indexOf(SCRIPT_END) + SCRIPT_END.length);
  const marker = `${JOB_FILE_FLAG} #`;
  const at = section.indexOf(marker);
  if (at === -1) throw new JobboxError('LSB_JOBFILENAME', `the starter line does not end in "${marker}%USRCMD"`, section.split('\n', 1)[0]!);
  const command = section.slice(at + marker.length);
  if (command.trim() === '') throw new JobboxError('LSB_JOBFILENAME', 'holds no command after the starter', section.split('\n', 1)[0]!);
  return command;
}

// ---- Post-exec: how the job ended ----

/** What the post-exec is told of the job's end, for the log. */
export function lsfJobEnd(env: Record<string, string | undefined>): { exitStatus: string | undefined; requeued: boolean } {
  return { exitStatus: env.LSB_JOBEXIT_STAT, requeued: env.LSB_JOBPEND !== undefined };
}

// ---- The esub's files and its answer ----

export interface EsubFiles {
  /** LSB_SUB_PARM_FILE: the submit's options; unset when lsrun or lsgrun run the esub. */
  parmFile: string | undefined;
  /** LSB_SUB_MODIFY_ENVFILE: where variables for the job's environment are appended. */
  envFile: string | undefined;
  /**
   * The exit code bsub takes as a rejection: LSB_SUB_ABORT_VALUE (97 in every LSF and
   * openlava). ExitCode lists jobbox's own codes, and this one is LSF's to choose.
   */
  rejectCode: ExitCode;
}

export function esubFiles(env: Record<string, string | undefined>): EsubFiles {
  const named = env.LSB_SUB_ABORT_VALUE ?? '';
  const code = /^[1-9]\d{0,2}$/.test(named) && Number(named) <= 255 ? Number(named) : EXIT.esubReject;
  return { parmFile: env.LSB_SUB_PARM_FILE || undefined, envFile: env.LSB_SUB_MODIFY_ENVFILE || undefined, rejectCode: code as ExitCode };
}

// ---- The orphan reaper's question: bjobs ----

/** LSF's `-o` fields: the job id, the array index (0 for a plain job) and the status. */
export const BJOBS_FORMAT = 'jobid jobindex stat';

/** How bjobs names a job on its command line: `123`, or `123[4]` for an array element. */
export const bjobsName = (ref: JobRef): string => (ref.index > 0 ? `${ref.id}[${ref.index}]` : ref.id);

/**
 * `bjobs -noheader -a -o BJOBS_FORMAT <names>` → an answer for every ref. A job is unknown
 * only when bjobs says `Job <name> is not found`; any stderr line we do not recognize, or no
 * exit code, fails the whole query.
 */
export function parseBjobs(refs: JobRef[], run: Result): Map<string, Answer> {
  const answers = new Map<string, Answer>();
  const failAll = (reason: string) => new Map(refs.map((r): [string, Answer] => [refKey(r), { kind: 'failed', reason }]));
  if (run.error || run.code === undefined) return failAll(describeFailure('bjobs', run));
  const notFound = new Set<string>();
  for (const line of run.stderr.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const m = /^Job <(\d+)(?:\[(\d+)\])?> is not found\.?$/.exec(line);
    if (!m) return failAll(describeFailure('bjobs', { ...run, stderr: line }));
    notFound.add(refKey({ id: m[1]!, index: Number(m[2] ?? 0) }));
  }
  for (const line of run.stdout.split('\n')) {
    // LSB_BJOBS_DISPLAY_ENH=Y prints the id as `123[4]`.
    const m = /^(\d+)(?:\[\d+\])?\s+(\d+)\s+([A-Z]+)\s*$/.exec(line.trim());
    if (m) answers.set(refKey({ id: m[1]!, index: Number(m[2]) }), { kind: 'record', state: m[3]! });
  }
  return new Map(
    refs.map((r): [string, Answer] => {
      const key = refKey(r);
      const found = answers.get(key);
      if (found) return [key, found];
      if (notFound.has(key)) return [key, { kind: 'unknown' }];
      return [key, { kind: 'failed', reason: run.code === 0 ? 'bjobs: no line for the job' : describeFailure('bjobs', run) }];
    }),
  );
}

/** One bjobs for all the jobs: `-a` keeps finished ones (DONE, EXIT) until LSF cleans them. Names are decimal ids with an optional [index], never options: bjobs takes no `--`. */
export function bjobsArgv(refs: JobRef[]): string[] {
  return ['bjobs', '-noheader', '-a', '-o', BJOBS_FORMAT, ...refs.map(bjobsName)];
}

const LSF_OVER = new Set(['DONE', 'EXIT']);

/** Whether an LSF job in `state` is over; LSF has no attempt counter to compare. */
export function lsfRecordOver(state: string): Verdict {
  return { over: LSF_OVER.has(state), why: `job is ${state}` };
}

// ---- bpost: a failed start, where the job's owner looks ----

/** IBM's limit on `bpost -d` (the message description). */
export const BPOST_MAX = 512;

/**
 * `bpost -i 0 -d TEXT JOB`, run as root by the pre-exec: message 0 of the job, which `bjobs -l`
 * shows its owner under EXTERNAL MESSAGES and `bread`/`bstatus` print. A pre-exec's output goes
 * to /dev/null and `bhist -l` shows only its exit code, so this is how a PEND or EXIT job says
 * why. Message 0 is what `bstatus -d` sets too: a later post replaces it.
 */
export function bpostArgv(bpost: string, job: JobRef, line: string): string[] {
  const hint = ` (jobbox status ${bjobsName(job)})`;
  const text = line.length + hint.length <= BPOST_MAX ? `${line}${hint}` : `${line.slice(0, BPOST_MAX - hint.length - 1)}…${hint}`;
  return [bpost, '-i', '0', '-d', text, bjobsName(job)];
}

// ---- bjobs: the GPUs a job got on each host, for the pre-exec ----

/**
 * `bjobs -o gpu_alloc -json JOB`, run as root by the pre-exec of a queue that passes GPUs.
 * mbatchd fixes the allocation at dispatch; the job's environment (CUDA_VISIBLE_DEVICES) names
 * only the first host's GPUs, and a user may export it at submit, so it is never read
 * (docs/gpus.md has the sources).
 */
export function gpuAllocArgv(bjobs: string, job: JobRef): string[] {
  return [bjobs, '-o', 'gpu_alloc', '-json', bjobsName(job)];
}

const GPU_ALLOC = 'bjobs -o gpu_alloc';

/**
 * gpuAllocArgv's answer → the GPU ids on each of `hosts` (ascending, each once: LSF repeats an
 * id for every task that uses it). `{"RECORDS":[{"GPU_ALLOC":"hostA:0,1;hostB:1"}]}`; an empty
 * or `-` allocation is a job without GPUs. A host outside the job is refused: the answer is
 * then not this job's.
 */
export function parseGpuAlloc(stdout: string, hosts: string[]): Map<string, number[]> {
  let alloc: unknown;
  try {
    alloc = (JSON.parse(stdout) as { RECORDS?: { GPU_ALLOC?: unknown }[] }).RECORDS?.[0]?.GPU_ALLOC;
  } catch {
    alloc = undefined;
  }
  if (typeof alloc !== 'string') throw new JobboxError(GPU_ALLOC, 'no GPU_ALLOC in its answer', stdout.trim().slice(0, 200), EXIT.transient);
  const gpus = new Map<string, number[]>();
  if (alloc.trim() === '' || alloc.trim() === '-') return gpus;
  for (const part of alloc.split(';').filter(Boolean)) {
    const m = /^([^:\s]+):(\d{1,4}(?:,\d{1,4})*)$/.exec(part.trim());
    if (!m) throw new JobboxError(GPU_ALLOC, 'unreadable host:ids', part, EXIT.permanent);
    if (!hosts.includes(m[1]!)) throw new JobboxError(GPU_ALLOC, `names a host outside the job (${hosts.join(' ')})`, m[1]!, EXIT.permanent);
    const ids = new Set([...(gpus.get(m[1]!) ?? []), ...m[2]!.split(',').map(Number)]);
    gpus.set(m[1]!, [...ids].sort((a, b) => a - b));
  }
  return gpus;
}
