// Admin image commands, as root on a host that reaches the nodes' admin sshd:
// `jobbox image prefetch <alias> --nodes HOSTLIST` and `jobbox image list --nodes HOSTLIST`.
import type { Logger } from 'pino';
import { configPath, loadConfig } from '../config/load.js';
import { repoOf, runRef } from '../config/ref.js';
import type { Config, Image } from '../config/types.js';
import { EXIT, JobboxError, formatError } from '../errors.js';
import type { Session } from '../exec/ssh.js';
import { ensureImage, firstLine, pinImage } from '../lifecycle/node.js';
import { adminSessions } from '../lifecycle/sessions.js';
import { fanOut } from '../exec/ssh.js';
import { openLog } from '../log.js';
import { imagesArgv, parseImages } from '../plan/node.js';
import { expandHostlist } from '../scheduler/slurm.js';

export interface ImageArgs {
  config: string | undefined;
  /** A hostlist (`node[1-4],gpu1`). */
  nodes: string;
}

function nodesOf(list: string): string[] {
  return [...new Set(expandHostlist(list, '--nodes'))];
}

/**
 * Runs `fn` on every node over its own admin session, at most `fanout` at once, as a job start
 * does: one node's failure is its row, not the command's end.
 */
type Row<R> = { ok: true; value: R } | { ok: false; error: string };

async function eachNode<R>(config: Config, hosts: string[], fn: (s: Session) => Promise<R>, done?: (host: string, row: Row<R>) => void): Promise<Row<R>[]> {
  const settled = await fanOut(hosts, config.fanout, async (host): Promise<Row<R>> => {
    let sessions: Map<string, Session> | undefined;
    let row: Row<R>;
    try {
      sessions = await adminSessions(config, [host]);
      row = { ok: true, value: await fn(sessions.get(host)!) };
    } catch (err) {
      row = { ok: false, error: formatError(err).line.replace(/^jobbox: /, '') };
    } finally {
      for (const s of sessions?.values() ?? []) s.close();
    }
    done?.(host, row);
    return row;
  });
  return settled.map((r) => (r.status === 'fulfilled' ? r.value : { ok: false as const, error: String(r.reason) }));
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
  const [first] = await eachNode(config, [hosts[0]!], (s) => pinImage(s, config, image, log));
  if (!first!.ok) {
    process.stdout.write(`${hosts[0]}  failed  ${first!.error}\n`);
    for (const host of hosts.slice(1)) process.stdout.write(`${host}  skipped  nothing pinned\n`);
    return EXIT.transient;
  }
  const pinned: Image = first!.value;
  process.stdout.write(`${hosts[0]}  pinned  ${runRef(pinned)}\n`);
  // One fan-out over the other nodes, so that at most `fanout` pull at once.
  const rest = await eachNode(config, hosts.slice(1), (s) => ensureImage(s, config, pinned), (host, r) =>
    process.stdout.write(r.ok ? `${host}  ok      ${runRef(pinned)}\n` : `${host}  failed  ${r.error}\n`),
  );
  log.info({ image: image.ref, digest: pinned.digest, nodes: hosts.length, failed: rest.filter((r) => !r.ok).length }, 'image prefetch');
  return rest.every((r) => r.ok) ? 0 : EXIT.transient;
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
