// Admin image commands, as root on a host that reaches the nodes' admin sshd:
// `jobbox image prefetch <alias> --nodes HOSTLIST`, `jobbox image list --nodes HOSTLIST` and
// `jobbox image gc --nodes HOSTLIST`.
import type { Logger } from 'pino';
import { configPath, loadConfig } from '../config/load.js';
import { repoOf, runRef } from '../config/ref.js';
import type { Config, Image } from '../config/types.js';
import { EXIT, JobboxError, formatError, printable } from '../errors.js';
import type { Session } from '../exec/ssh.js';
import { commandFailed, ensureImage, firstLine, lines, pinImage } from '../lifecycle/node.js';
import { eachNode } from '../lifecycle/sessions.js';
import { registryDigest } from '../exec/registry.js';
import { openLog } from '../log.js';
import { dialect } from '../plan/engine.js';
import { aliasRefs, containerIdsArgv, containerImagesArgv, type Fate, type GcInput, imageTableArgv, managedRepo, parseImageTable, planImageGc, rmiArgv } from '../plan/image-gc.js';
import { imagesArgv, parseImages } from '../plan/node.js';
import { expandHostlist } from '../scheduler/slurm.js';

export interface ImageArgs {
  config: string | undefined;
  /** A hostlist (`node[1-4],gpu1`). */
  nodes: string;
  /** Redraw a status line while nodes work (prefetch); else only the per-node lines. Default: stdout is a terminal. */
  tty?: boolean;
}

function nodesOf(list: string): string[] {
  return [...new Set(expandHostlist(list, '--nodes'))];
}

/**
 * Pins the alias's tag to its digest on the first node, then makes every other node hold that
 * digest, as a job start would: a node that holds it asks the registry nothing. One line per
 * node as it finishes, then exit 1 if any failed.
 */
export async function imagePrefetch(alias: string, args: ImageArgs, env: NodeJS.ProcessEnv): Promise<number> {
  const hosts = nodesOf(args.nodes);
  const config = await loadConfig(configPath(args.config, env));
  const image = config.images.get(alias);
  if (!image) throw new JobboxError('image prefetch', `no [image ${alias}] in the config (defined: ${[...config.images.keys()].join(' ')})`, alias, EXIT.usage);
  const log: Logger = (await openLog(config.logFile, config.logLevel)).child({ prefetch: alias });
  const out = statusOutput((text) => process.stdout.write(text), args.tty ?? process.stdout.isTTY === true, () => process.stdout.columns || 80);
  out.status(`prefetch ${alias}: pinning on ${hosts[0]}`);
  const [first] = await eachNode(config, [hosts[0]!], (s) => pinImage(s, config, image, log));
  if (!first!.ok) {
    out.line(`${hosts[0]}  failed  ${first!.error}`);
    for (const host of hosts.slice(1)) out.line(`${host}  skipped  nothing pinned`);
    out.end();
    return EXIT.transient;
  }
  const pinned: Image = first!.value;
  out.line(`${hosts[0]}  pinned  ${runRef(pinned)}`);
  let done = 1;
  let failed = 0;
  const busy = new Set<string>();
  const progress = () => out.status(prefetchStatus(alias, done, hosts.length, failed, [...busy]));
  progress();
  // One fan-out over the other nodes, so that at most `fanout` pull at once.
  const rest = await eachNode(config, hosts.slice(1), (s) => {
    busy.add(s.host);
    progress();
    return ensureImage(s, config, pinned);
  }, (host, r) => {
    busy.delete(host);
    done++;
    if (!r.ok) failed++;
    out.line(r.ok ? `${host}  ok      ${runRef(pinned)}` : `${host}  failed  ${r.error}`);
    progress();
  });
  out.end();
  log.info({ image: image.ref, digest: pinned.digest, nodes: hosts.length, failed: rest.filter((r) => !r.ok).length }, 'image prefetch');
  return rest.every((r) => r.ok) ? 0 : EXIT.transient;
}

/** The prefetch's status line: `prefetch deb12: 3/10 nodes, 1 failed, pulling on node4 node5`. */
export function prefetchStatus(alias: string, done: number, total: number, failed: number, busy: string[]): string {
  const shown = busy.length > 8 ? `${busy.slice(0, 8).join(' ')} +${busy.length - 8}` : busy.join(' ');
  return `prefetch ${alias}: ${done}/${total} nodes, ${failed} failed${busy.length > 0 ? `, pulling on ${shown}` : ''}`;
}

/**
 * Lines, and on a terminal a status line kept under them and redrawn in place (cut to the
 * terminal's width, so it never wraps). Elsewhere only the lines, byte for byte: scripts and
 * tests read them.
 */
export function statusOutput(write: (text: string) => void, tty: boolean, columns: () => number) {
  const CLEAR = '\r\x1b[K';
  let status = '';
  return {
    line(text: string): void {
      write(tty ? `${CLEAR}${text}\n${status}` : `${text}\n`);
    },
    status(text: string): void {
      if (!tty) return;
      status = text.slice(0, Math.max(columns() - 1, 20));
      write(`${CLEAR}${status}`);
    },
    end(): void {
      if (tty && status) write(CLEAR);
      status = '';
    },
  };
}

export interface ImageRow {
  node: string;
  alias: string;
  ref: string;
  digest: string;
  id: string;
}

/** Which node holds which configured alias, at which digest: a table, or JSON with --json. */
export async function imageList(args: ImageArgs & { json: boolean }, env: NodeJS.ProcessEnv): Promise<number> {
  const hosts = nodesOf(args.nodes);
  const config = await loadConfig(configPath(args.config, env));
  // Aliases by the repository and tag they name; a copy held only by digest is listed under every alias of its repository.
  const byRef = new Map([...config.images.values()].map((i) => [i.ref, i.alias]));
  const byRepo = new Map<string, string[]>();
  for (const i of config.images.values()) byRepo.set(repoOf(i.ref), [...(byRepo.get(repoOf(i.ref)) ?? []), i.alias]);
  const results = await eachNode(config, hosts, async (s) => {
    const r = await s.run([config.engine, ...imagesArgv()], config.connectTimeoutMs);
    if (r.code !== 0) throw new JobboxError(`${s.host}: ${config.engine} images`, `exit ${r.code}`, firstLine(r.stderr), EXIT.transient);
    return parseImages(r.stdout);
  });
  const rows: ImageRow[] = [];
  const failed: { node: string; error: string }[] = [];
  results.forEach((r, i) => {
    const node = hosts[i]!;
    if (!r.ok) return void failed.push({ node, error: r.error });
    for (const held of r.value) {
      const ref = held.tag === '<none>' ? `${held.repository}@${held.digest}` : `${held.repository}:${held.tag}`;
      const alias = held.tag === '<none>' ? byRepo.get(held.repository)?.join(',') : byRef.get(ref);
      if (alias) rows.push({ node, alias, ref, digest: held.digest, id: held.id });
    }
  });
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ images: rows, failed })}\n`);
  } else {
    for (const r of rows) process.stdout.write(`${r.node}  ${r.alias}  ${r.ref}  ${r.digest}  ${r.id}\n`);
    for (const f of failed) process.stdout.write(`${f.node}  failed  ${f.error}\n`);
  }
  return failed.length === 0 ? 0 : EXIT.transient;
}

export interface GcOptions {
  /** Per managed repository, the newest unused images that stay besides those in use and those an alias's tag names. */
  keep: number;
  dryRun: boolean;
  /** `repo@digest` of the builds the aliases' tags name in the registry now (currentBuilds): they stay on every node, as the tagged ones do. */
  current?: string[];
}

/** What became of an image: its plan's fate, or what its removal did. */
export type GcStatus = Exclude<Fate, 'remove'> | 'removed' | 'would-remove' | 'failed';

export interface GcImage {
  node: string;
  status: GcStatus;
  /** Its names in managed repositories: those a removal removes. */
  refs: string[];
  id: string;
  /** The image's creation time, ISO 8601. */
  created: string;
  /** Why its removal failed. */
  error?: string;
}

export interface GcReport {
  images: GcImage[];
  /** Nodes that could not be asked or answered badly: nothing was removed there after the failure. */
  failed: { node: string; error: string }[];
}

// A container removed since the listing: docker says `No such object`, Podman `no such container`.
const NO_CONTAINER = /No such (?:object|container)/i;

/** One node: list its images, then its containers' images, plan, and remove (unless a dry run), one image at a time. */
async function gcNode(s: Session, config: Config, opts: GcOptions, keepers: Pick<GcInput, 'managed' | 'named'>, log: Logger): Promise<Omit<GcImage, 'node'>[]> {
  const t = config.startTimeoutMs;
  // A name that went between the listing and the rmi (another gc, an admin): already gone is success.
  const gone = dialect(config.engine).imageGone;
  const ask = async (argv: string[]) => {
    const r = await s.run([config.engine, ...argv], t);
    return { r, fail: () => commandFailed(s.host, [config.engine, ...argv], r, s.host) };
  };
  // Images before containers: an image pulled for a container made in between is not on the list.
  const table = await ask(imageTableArgv());
  if (table.r.code !== 0) throw table.fail();
  const rows = parseImageTable(table.r.stdout);
  const ps = await ask(containerIdsArgv());
  if (ps.r.code !== 0) throw ps.fail();
  const ids = lines(ps.r.stdout);
  let used: string[] = [];
  if (ids.length > 0) {
    const images = await ask(containerImagesArgv(ids));
    // A container removed since the listing uses nothing; any other failure leaves gc blind.
    const errors = lines(images.r.stderr);
    if (images.r.code !== 0 && !(errors.length > 0 && errors.every((l) => NO_CONTAINER.test(l)))) throw images.fail();
    used = lines(images.r.stdout);
  }
  const plan = planImageGc({ rows, used, ...keepers, keep: opts.keep });
  const result: Omit<GcImage, 'node'>[] = [];
  for (const p of plan) {
    const image = { refs: p.refs, id: p.id, created: new Date(p.created).toISOString() };
    if (p.fate !== 'remove') {
      result.push({ ...image, status: p.fate });
      continue;
    }
    if (opts.dryRun) {
      result.push({ ...image, status: 'would-remove' });
      continue;
    }
    const rmi = await ask(rmiArgv(p.refs));
    const errors = lines(rmi.r.stderr);
    if (rmi.r.code === 0 || (errors.length > 0 && errors.every((l) => gone.test(l)))) {
      result.push({ ...image, status: 'removed' });
      log.info({ node: s.host, image: p.id, refs: p.refs }, 'image gc: removed');
    } else {
      const error = `${config.engine} rmi: exit ${rmi.r.code}: ${printable(errors.find((l) => !gone.test(l)) ?? '')}`;
      result.push({ ...image, status: 'failed', error });
      log.warn({ node: s.host, image: p.id, refs: p.refs, error }, 'image gc: removal failed');
    }
  }
  return result;
}

/**
 * Removes, on every node, the images of jobbox's repositories that no container uses (plan/image-gc.ts
 * planImageGc), at most `fanout` nodes at once. `each`: a node's images as soon as it is done.
 */
export async function gcNodes(config: Config, hosts: string[], opts: GcOptions, log: Logger, each?: (node: string, images: GcImage[] | { error: string }) => void): Promise<GcReport> {
  // What gc keeps is the same question on every node: answered once.
  const keepers = { managed: managedRepo(config), named: new Set([...aliasRefs(config), ...(opts.current ?? [])]) };
  const rows = await eachNode(config, hosts, (s) => gcNode(s, config, opts, keepers, log), (host, r) =>
    each?.(host, r.ok ? r.value.map((i) => ({ node: host, ...i })) : { error: r.error }),
  );
  const report: GcReport = { images: [], failed: [] };
  rows.forEach((r, i) => {
    const node = hosts[i]!;
    if (r.ok) report.images.push(...r.value.map((image) => ({ node, ...image })));
    else report.failed.push({ node, error: r.error });
  });
  return report;
}

/** A gc line: `node  status  ref[,ref…]  id`, and the error after a failed removal. */
export function gcLine(i: GcImage): string {
  return `${i.node}  ${i.status.padEnd(12)}  ${i.refs.join(',')}  ${i.id}${i.error ? `  ${i.error}` : ''}`;
}

/** The last line: per status, how many images; failures of nodes and of removals count together. */
export function gcSummary(report: GcReport, nodes: number, dryRun: boolean): string {
  const count = (status: GcStatus) => report.images.filter((i) => i.status === status).length;
  const failed = count('failed') + report.failed.length;
  const gone = dryRun ? `would-remove ${count('would-remove')}` : `removed ${count('removed')}`;
  return `${nodes} node${nodes === 1 ? '' : 's'}: ${gone}, in-use ${count('in-use')}, tagged ${count('tagged')}, kept ${count('kept')}, failed ${failed}`;
}

/**
 * What each alias's tag names in its registry now, as `repo@digest`: a node that is not a
 * job's first holds that build by digest only, and no tag there says it is current. Best
 * effort: an alias whose registry does not answer is protected only where its tag is on the node.
 */
async function currentBuilds(config: Config, log: Logger): Promise<string[]> {
  const asked = await Promise.allSettled([...config.images.values()].map(async (image) => `${repoOf(image.ref)}@${await registryDigest(config, image.ref)}`));
  return asked.flatMap((a) => {
    if (a.status === 'fulfilled') return [a.value];
    const line = formatError(a.reason).line;
    process.stderr.write(`${line}; its current build stays only where its tag is\n`);
    log.warn({ err: line }, 'image gc: an alias\'s current digest is unknown');
    return [];
  });
}

/**
 * `jobbox image gc`: a line per image of jobbox's repositories on each node as the node
 * finishes, then a summary; one JSON object with --json. Exit 1 when a node or a removal failed.
 */
export async function imageGc(args: ImageArgs & GcOptions & { json: boolean }, env: NodeJS.ProcessEnv): Promise<number> {
  if (!Number.isInteger(args.keep) || args.keep < 0) {
    throw new JobboxError('image gc', '--keep must be a whole number of images, 0 or more', String(args.keep), EXIT.usage);
  }
  const hosts = nodesOf(args.nodes);
  const config = await loadConfig(configPath(args.config, env));
  const log: Logger = (await openLog(config.logFile, config.logLevel)).child({ imageGc: { keep: args.keep, dryRun: args.dryRun } });
  const print = (node: string, images: GcImage[] | { error: string }) =>
    process.stdout.write(Array.isArray(images) ? images.map((i) => `${gcLine(i)}\n`).join('') : `${node}  failed  ${images.error}\n`);
  const report = await gcNodes(config, hosts, { ...args, current: await currentBuilds(config, log) }, log, args.json ? undefined : print);
  if (args.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`${gcSummary(report, hosts.length, args.dryRun)}\n`);
  const failed = report.failed.length + report.images.filter((i) => i.status === 'failed').length;
  log.info({ nodes: hosts.length, removed: report.images.filter((i) => i.status === 'removed').length, failed }, 'image gc');
  return failed === 0 ? 0 : EXIT.transient;
}
