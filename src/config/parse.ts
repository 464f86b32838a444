// jobbox.ini → Config, or an error naming the key, the bad value and what is allowed.
// Pure: reading the file and checking who owns it is load.ts's job.
import { posix } from 'node:path';
import ini from 'ini';
import { JobboxError } from '../errors.js';
import { GLOBAL_DEFAULTS, IMAGE_DEFAULTS, QUEUE_DEFAULTS } from './defaults.js';
import { isRepository, qualifiedRef } from './ref.js';
import { LOG_LEVELS, type Config, type Image, type LogLevel, type MemoryPolicy, type Mount, type Queue } from './types.js';

export type { Config, Image, LogLevel, MemoryPolicy, Mount, Queue } from './types.js';

export const QUEUE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;
export const IMAGE_ALIAS = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const ACCOUNT_NAME = /^[a-z_][a-z0-9_.-]{0,31}\$?$/i;

const ENV_KEY = /^env\.(.*)$/s;

type Section = Record<string, string>;

export function parseConfig(text: string, file: string): Config {
  checkLines(text, file);
  const sections = new Map<string, Section>();
  for (const [name, values] of Object.entries(ini.parse(text) as Record<string, Record<string, unknown>>)) {
    // ini turns the values true, false and null into JSON values; checkLines refused the
    // bare `key` that also yields true, so String() gives back exactly what was written.
    sections.set(name, Object.fromEntries(Object.entries(values).map(([k, v]) => [k, String(v)])));
  }

  const g = fill('jobbox', GLOBAL_DEFAULTS, sections.get('jobbox') ?? {});
  const at = (key: string) => `[jobbox] ${key}`;
  const global = {
    engine: must(at('engine'), g.engine, 'a command name or an absolute path of [A-Za-z0-9._/-]', parseEngine),
    registry: must(at('registry'), g.registry, 'empty or a registry host[:port] (lowercase; with a "." or a port, or "localhost")', parseRegistry),
    portRange: must(at('port_range'), g.port_range, 'first-last with 1024 <= first <= last <= 65535', parsePortRange),
    portDir: must(at('port_dir'), g.port_dir, PATH_RULE, absPath),
    stateDir: must(at('state_dir'), g.state_dir, PATH_RULE, absPath),
    logFile: must(at('log_file'), g.log_file, PATH_RULE, absPath),
    logLevel: must(at('log_level'), g.log_level, `one of ${LOG_LEVELS.join(' ')}`, (v) => LOG_LEVELS.find((l): l is LogLevel => l === v)),
    sshUser: must(at('ssh_user'), g.ssh_user, 'an account name', (v) => (ACCOUNT_NAME.test(v) ? v : undefined)),
    sshKey: must(at('ssh_key'), g.ssh_key, PATH_RULE, absPath),
    sshKnownHosts: must(at('ssh_known_hosts'), g.ssh_known_hosts, PATH_RULE, absPath),
    sshPort: must(at('ssh_port'), g.ssh_port, 'an integer from 1 to 65535', (v) => int(v, 1, 65535)),
    connectTimeoutMs: must(at('connect_timeout'), g.connect_timeout, SECONDS_RULE, millis),
    startTimeoutMs: must(at('start_timeout'), g.start_timeout, SECONDS_RULE, millis),
    pullTimeoutMs: must(at('pull_timeout'), g.pull_timeout, SECONDS_RULE, millis),
    pullPolicy: must(at('pull_policy'), g.pull_policy, 'missing or always', (v): 'missing' | 'always' | undefined => (v === 'missing' || v === 'always' ? v : undefined)),
    insecureRegistries: words(g.insecure_registries).map((r) => must(at('insecure_registries'), r, 'registry host[:port] names (lowercase; with a "." or a port, or "localhost")', (v) => (v === '' ? undefined : parseRegistry(v)))),
    fanout: must(at('fanout'), g.fanout, 'an integer from 1 to 4096', (v) => int(v, 1, 4096)),
    deviceDir: must(at('device_dir'), g.device_dir, DEVICE_DIR_RULE, deviceDir),
    gpuDir: must(at('gpu_dir'), g.gpu_dir, DEVICE_DIR_RULE, deviceDir),
    defaultQueue: g.default_queue,
    bpost: must(at('bpost'), g.bpost, `empty, or ${PATH_RULE}`, (v) => (v === '' ? '' : absPath(v))),
    bjobs: must(at('bjobs'), g.bjobs, `empty, or ${PATH_RULE}`, (v) => (v === '' ? '' : absPath(v))),
    metricsDir: must(at('metrics_dir'), g.metrics_dir, `empty, or ${PATH_RULE}`, (v) => (v === '' ? '' : absPath(v))),
  };

  // Images first: queues refer to them.
  const images = new Map<string, Image>();
  const queues = new Map<string, Queue>();
  for (const [section, values] of sections) {
    const [kind, name = ''] = section.split(' ', 2);
    if (kind === 'image') images.set(name, parseImage(name, values, global.registry));
  }
  for (const [section, values] of sections) {
    const [kind, name = ''] = section.split(' ', 2);
    if (kind === 'queue') queues.set(name, parseQueue(name, values, images));
  }
  if (!queues.has(global.defaultQueue)) {
    throw new JobboxError(`config ${at('default_queue')}`, `must name a [queue] section (defined: ${list(queues.keys())})`, global.defaultQueue);
  }
  return { ...global, queues, images };
}

// ini.parse passes over several mistakes in silence: a line it cannot read is skipped, a
// repeated [section] is merged into the first, a repeated key keeps its last value, a bare
// `key` becomes true, `key[]` an array, and [a.b] a nested object. An indented "[section]"
// is not a header at all but a bare key of the previous section. This pass walks the lines
// as ini does (same split, comment rule, regex and unquoting) and refuses all of these, so
// the object ini.parse returns holds, per known section, one scalar per key.
function checkLines(text: string, file: string): void {
  const keysBySection = new Map<string, Set<string>>();
  let keys: Set<string> | undefined;
  let section = '';
  text.split(/\r\n|\r|\n/).forEach((line, i) => {
    if (line === '' || /^\s*[;#]/.test(line) || /^\s*$/.test(line)) return;
    const fail = (problem: string): never => {
      throw new JobboxError(`config ${file}:${i + 1}`, problem, line);
    };
    const m = /^\[([^\]]*)\]\s*$|^([^=]+)(=(.*))?$/i.exec(line);
    if (!m) return fail('line is neither "[section]" nor "key = value"');
    if (m[1] !== undefined) {
      section = ini.unsafe(m[1]);
      if (section.includes('.')) fail('section names must not contain "." (ini would nest them)');
      if (!sectionNameOk(section)) fail(`section must be [jobbox], [queue NAME] (NAME ${QUEUE_NAME.source}) or [image ALIAS] (ALIAS ${IMAGE_ALIAS.source})`);
      if (keysBySection.has(section)) fail(`section [${section}] appears twice`);
      keys = new Set();
      keysBySection.set(section, keys);
      return;
    }
    if (m[3] === undefined) fail('line is neither "[section]" nor "key = value" (a section header must start the line)');
    const key = ini.unsafe(m[2] ?? '');
    if (!keys) return fail('key outside any section (global keys belong in [jobbox])');
    if (!/^[A-Za-z0-9_.]+$/.test(key) || key === '__proto__') fail('not a key name ([A-Za-z0-9_.]+, except __proto__)');
    if (keys.has(key)) fail(`key ${key} appears twice in [${section}]`);
    keys.add(key);
  });
}

function sectionNameOk(name: string): boolean {
  if (name === 'jobbox') return true;
  const m = /^(queue|image) (.*)$/s.exec(name);
  return m?.[1] === 'queue' ? QUEUE_NAME.test(m[2] ?? '') : m?.[1] === 'image' && IMAGE_ALIAS.test(m[2] ?? '');
}

/** Defaults first, then any key the section does not know is an error. */
function fill<K extends string>(section: string, defaults: Record<K, string>, values: Section, extra?: RegExp): Record<K, string> {
  for (const key of Object.keys(values)) {
    if (!Object.hasOwn(defaults, key) && !extra?.test(key)) {
      const allowed = Object.keys(defaults).join(' ') + (extra ? ' env.NAME' : '');
      throw new JobboxError(`config [${section}]`, `unknown key (allowed: ${allowed})`, key);
    }
  }
  return { ...defaults, ...values };
}

function must<T>(where: string, value: string, allowed: string, parse: (v: string) => T | undefined): T {
  const out = parse(value);
  if (out === undefined) throw new JobboxError(`config ${where}`, `must be ${allowed}`, value);
  return out;
}

function parseImage(alias: string, values: Section, registry: string): Image {
  const s = fill(`image ${alias}`, IMAGE_DEFAULTS, values, ENV_KEY);
  const at = (key: string) => `config [image ${alias}] ${key}`;
  if (s.ref === '') throw new JobboxError(at('ref'), 'is required', '');
  const ref = qualifiedRef(s.ref, registry, at('ref'));
  if (ref.length > 255) throw new JobboxError(at('ref'), 'must be at most 255 characters with the registry', ref);

  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(s)) {
    const name = ENV_KEY.exec(key)?.[1];
    if (name === undefined) continue;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new JobboxError(at(key), 'environment names must match ^[A-Za-z_][A-Za-z0-9_]*$', name);
    if (/[\n\r\0]/.test(value)) throw new JobboxError(at(key), 'must not contain newline or NUL characters', value);
    env[name] = value;
  }
  return { alias, ref, mounts: parseMounts(at('mounts'), s.mounts), env };
}

function parseQueue(name: string, values: Section, images: Map<string, Image>): Queue {
  const s = fill(`queue ${name}`, QUEUE_DEFAULTS, values);
  const at = (key: string) => `[queue ${name}] ${key}`;
  const defined = `defined: ${list(images.keys())}`;
  if (s.default_image === '') throw new JobboxError(`config ${at('default_image')}`, 'is required', '');
  if (!images.has(s.default_image)) throw new JobboxError(`config ${at('default_image')}`, `must name an [image] section (${defined})`, s.default_image);
  const allowedImages = [...new Set(words(values.allowed_images ?? s.default_image))];
  for (const alias of allowedImages) {
    if (!images.has(alias)) throw new JobboxError(`config ${at('allowed_images')}`, `each must name an [image] section (${defined})`, alias);
  }
  if (!allowedImages.includes(s.default_image)) {
    throw new JobboxError(`config ${at('default_image')}`, `must be one of allowed_images (${list(allowedImages)})`, s.default_image);
  }
  const allowedRepos = [...new Set(words(s.allowed_repos))];
  for (const pattern of allowedRepos) {
    if (!isRepository(pattern.endsWith('/*') ? pattern.slice(0, -2) : pattern)) {
      throw new JobboxError(`config ${at('allowed_repos')}`, 'each must be a repository with its registry (reg:5000/path/app), or one ending in /* for every repository below it', pattern);
    }
  }
  const devices = words(s.devices);
  for (const glob of devices) {
    // umad*/issm* give raw access to the fabric's management layer; only verbs and the RDMA CM are safe to hand out.
    if (!/^(uverbs[A-Za-z0-9_*?-]*|rdma_cm)$/.test(glob)) {
      throw new JobboxError(`config ${at('devices')}`, 'each must be "rdma_cm" or a glob of [A-Za-z0-9_*?-] starting with "uverbs"', glob);
    }
  }
  const gpuDevices = words(s.gpu_devices);
  for (const glob of gpuDevices) {
    // The GPUs themselves (nvidia0, …) come only from the scheduler's allocation.
    if (!/^nvidia[A-Za-z_*?-][A-Za-z0-9_*?-]*$/.test(glob)) {
      throw new JobboxError(`config ${at('gpu_devices')}`, 'each must be a glob of [A-Za-z0-9_*?-] starting with "nvidia" and a non-digit (the GPUs come from the allocation)', glob);
    }
  }
  const gpuMounts = words(s.gpu_mounts);
  for (const path of gpuMounts) {
    if (!mountPath(path)) throw new JobboxError(`config ${at('gpu_mounts')}`, 'each must be an absolute normalized path without "..", ",", ":", whitespace or control characters', path);
  }
  const memory = must(at('memory'), s.memory, '"none", <size> or <size>/slot (size: digits with an optional k, m, g or t)', parseMemory);
  const memlock = must(at('memlock'), s.memlock, '"unlimited" or a size: digits with an optional k, m, g or t', (v) =>
    v === 'unlimited' ? v : size(v));
  // "unlimited" is read as "up to the memory limit"; with none, a job could pin all of the node's RAM.
  if (memlock === 'unlimited' && memory.kind === 'none') {
    throw new JobboxError(`config ${at('memlock')}`, 'must be a size when memory = none (unlimited means up to the memory limit)', memlock);
  }
  return {
    name,
    defaultImage: s.default_image,
    allowedImages,
    allowedRepos,
    pinAtSubmit: must(at('pin_at_submit'), s.pin_at_submit, '"yes" or "no"', (v) => (v === 'yes' ? true : v === 'no' ? false : undefined)),
    mounts: parseMounts(`config ${at('mounts')}`, s.mounts),
    devices,
    gpus: must(at('gpus'), s.gpus, '"none" or "allocated"', (v) => (v === 'none' || v === 'allocated' ? v : undefined)),
    gpuDevices,
    gpuMounts: [...new Set(gpuMounts)],
    cpus: must(at('cpus'), s.cpus, '"slots" or "none"', (v) => (v === 'slots' || v === 'none' ? v : undefined)),
    memory,
    shmSizeBytes: must(at('shm_size'), s.shm_size, 'a size: digits with an optional k, m, g or t', size),
    memlock,
    // No "unlimited": a fork bomb in one container would leave the node unable to fork, sshd
    // and the batch daemons included. Below 64, the job's sshd and MPI launcher could not start.
    pidsLimit: must(at('pids_limit'), s.pids_limit, `an integer from 64 to ${PID_MAX_LIMIT}`, (v) => int(v, 64, PID_MAX_LIMIT)),
  };
}

// The kernel's ceiling for kernel.pid_max on 64-bit.
const PID_MAX_LIMIT = 4_194_304;

const MOUNT_RULE = 'each must be src[:dst][:ro|:rw] with absolute normalized paths without "..", ",", ":", whitespace or control characters';

function parseMounts(where: string, text: string): Mount[] {
  const mounts: Mount[] = [];
  for (const spec of words(text)) {
    const parts = spec.split(':');
    const mode = parts.length > 1 ? parts.at(-1) : undefined;
    if (mode === 'ro' || mode === 'rw') parts.pop();
    const [source = '', target = source, ...rest] = parts;
    if (rest.length > 0 || !mountPath(source) || !mountPath(target)) throw new JobboxError(where, MOUNT_RULE, spec);
    if (mounts.some((m) => m.target === target)) throw new JobboxError(where, 'mounts the same target twice', target);
    mounts.push({ source, target, readOnly: mode === 'ro' });
  }
  return mounts;
}

const PATH_RULE = 'an absolute path without "..", whitespace or control characters';
const SECONDS_RULE = 'a positive number of seconds';
const SPACE_OR_CONTROL = /[\s\x00-\x1f\x7f]/;

function absPath(v: string): string | undefined {
  return v.startsWith('/') && !SPACE_OR_CONTROL.test(v) && !v.split('/').includes('..') ? v : undefined;
}

// Device dirs become part of docker's --device SRC:DST, where ":" is a separator.
const DEVICE_DIR_RULE = 'an absolute path of [A-Za-z0-9._/-] without ".."';
function deviceDir(v: string): string | undefined {
  return /^\/[A-Za-z0-9._/-]*$/.test(v) ? absPath(v) : undefined;
}

// Paths become part of a docker --mount value, where "," and ":" are separators.
function mountPath(v: string): boolean {
  return absPath(v) !== undefined && !/[,:]/.test(v) && posix.normalize(v) === v && (v === '/' || !v.endsWith('/'));
}

function parseEngine(v: string): string | undefined {
  return /^[A-Za-z0-9_][A-Za-z0-9._-]*$/.test(v) || (/^\/[A-Za-z0-9._/-]+$/.test(v) && absPath(v)) ? v : undefined;
}

// A bare word would not be a registry at all to docker but a namespace on the public hub.
function parseRegistry(v: string): string | undefined {
  if (v === '') return v;
  const ok = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/.test(v) && (/[.:]/.test(v) || v === 'localhost');
  return ok ? v : undefined;
}

function parsePortRange(v: string): { first: number; last: number } | undefined {
  const m = /^(\d+)-(\d+)$/.exec(v);
  const first = int(m?.[1] ?? '', 1024, 65535);
  const last = int(m?.[2] ?? '', 1024, 65535);
  return first !== undefined && last !== undefined && first <= last ? { first, last } : undefined;
}

function parseMemory(v: string): MemoryPolicy | undefined {
  if (v === 'none') return { kind: 'none' };
  const perSlot = /\/slot$/i.test(v);
  const bytes = size(perSlot ? v.slice(0, -'/slot'.length) : v);
  if (bytes === undefined) return undefined;
  return perSlot ? { kind: 'perSlot', bytes } : { kind: 'total', bytes };
}

function size(v: string): number | undefined {
  const m = /^(\d+)([kmgt]?)$/i.exec(v);
  if (!m) return undefined;
  const bytes = Number(m[1]) * 1024 ** 'bkmgt'.indexOf((m[2] || 'b').toLowerCase());
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

function int(v: string, min: number, max: number): number | undefined {
  const n = /^\d{1,10}$/.test(v) ? Number(v) : NaN;
  return n >= min && n <= max ? n : undefined;
}

function millis(v: string): number | undefined {
  const ms = /^\d{1,9}(\.\d+)?$/.test(v) ? Math.round(Number(v) * 1000) : 0;
  return ms > 0 ? ms : undefined;
}

function words(text: string): string[] {
  return text.split(/\s+/).filter((w) => w !== '');
}

function list(names: Iterable<string>): string {
  return [...names].join(' ') || 'none';
}
