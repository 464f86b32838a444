// Reaching the job's nodes as the admin, running a step on all of them, and reporting what
// failed where: shared by the setup and the teardown of a job, and the admin commands.
import { readFile } from 'node:fs/promises';
import { CONNECT_JITTER_MS, CONNECT_PAUSE_MS, CONNECT_TRIES } from '../config/defaults.js';
import type { Config } from '../config/types.js';
import { EXIT, JobboxError, formatError, type ExitCode } from '../errors.js';
import { Session, fanOut, knownHostIndex, type Target } from '../exec/ssh.js';

/** Runs one node's step, e.g. to time it (plan/status.ts Timeline); the identity by default. */
export type NodeStep = <R>(host: string, step: () => Promise<R>) => Promise<R>;
const untimed: NodeStep = (_host, step) => step();

/**
 * A session on every host, or one error for those that failed (and none left open). `ready`
 * gets each session as soon as it is up, for work that need not wait for the slowest node.
 */
export async function adminSessions(config: Config, hosts: string[], each: NodeStep = untimed, ready?: (s: Session) => void): Promise<Map<string, Session>> {
  const [privateKey, known] = await Promise.all([readFile(config.sshKey, 'utf8'), readFile(config.sshKnownHosts, 'utf8')]);
  const keysOf = knownHostIndex(known);
  const sessions = new Map<string, Session>();
  const results = await fanOut(hosts, config.fanout, async (host) => {
    const hostKeys = keysOf(host, config.sshPort);
    if (hostKeys.length === 0) throw new JobboxError(`ssh ${host}`, 'no host key in ssh_known_hosts', config.sshKnownHosts, EXIT.transient);
    const target = { host, port: config.sshPort, username: config.sshUser, privateKey, hostKeys, timeoutMs: config.connectTimeoutMs };
    const session = await each(host, () => connectRetrying(target));
    sessions.set(host, session);
    ready?.(session);
  });
  const failed = failures(hosts, results);
  if (failed) {
    for (const s of sessions.values()) s.close();
    throw failed;
  }
  return sessions;
}

/**
 * sshd drops connections beyond MaxStartups (10 by default) before the handshake: when many
 * jobs start at once on one node, that is load, not a dead node. Try again after a random
 * pause; anything else fails at once.
 */
async function connectRetrying(target: Target, tries = CONNECT_TRIES): Promise<Session> {
  for (let i = 1; ; i++) {
    try {
      return await Session.connect(target);
    } catch (err) {
      if (i >= tries || !(err instanceof JobboxError && /before handshake|ECONNRESET/.test(err.problem))) throw err;
      await new Promise((r) => setTimeout(r, CONNECT_PAUSE_MS + Math.random() * CONNECT_JITTER_MS * i));
    }
  }
}

/** The one error for the nodes that failed a step, which also keeps each node's own error (for the start's record). */
export class NodesError extends JobboxError {
  constructor(
    /** Each failed node and its error, without the `jobbox: ` prefix. */
    readonly nodes: { host: string; error: string }[],
    total: number,
    exitCode: ExitCode,
  ) {
    super('nodes', `failed on ${nodes.length} of ${total}`, nodes.map((n) => n.error).join('; '), exitCode);
  }
}

/** One error for all nodes that failed: transient unless every failure is permanent. */
export function failures(hosts: string[], results: PromiseSettledResult<unknown>[]): NodesError | undefined {
  const bad = results.flatMap((r, i) => (r.status === 'rejected' ? [{ host: hosts[i]!, err: r.reason as unknown }] : []));
  if (bad.length === 0) return undefined;
  const permanent = bad.every((b) => b.err instanceof JobboxError && b.err.exitCode === EXIT.permanent);
  const nodes = bad.map((b) => ({ host: b.host, error: (b.err instanceof Error ? b.err.message : String(b.err)).replace(/^jobbox: /, '') }));
  return new NodesError(nodes, hosts.length, permanent ? EXIT.permanent : EXIT.transient);
}

/** Runs `fn` on every host's session, at most `fanout` at once; one error for all that failed. */
export async function onEvery<R>(sessions: Map<string, Session>, hosts: string[], fanout: number, fn: (s: Session, i: number) => Promise<R>): Promise<R[]> {
  const results = await fanOut(hosts, fanout, (h, i) => fn(sessions.get(h)!, i));
  const failed = failures(hosts, results);
  if (failed) throw failed;
  return results.map((r) => (r as PromiseFulfilledResult<R>).value);
}

export type Row<R> = { ok: true; value: R } | { ok: false; error: string };

/**
 * For the admin commands (image, ps, doctor): runs `fn` on every node over its own admin
 * session, at most `fanout` at once, as a job start does: one node's failure is its row, not
 * the command's end.
 */
export async function eachNode<R>(config: Config, hosts: string[], fn: (s: Session) => Promise<R>, done?: (host: string, row: Row<R>) => void): Promise<Row<R>[]> {
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
