// The only code that talks ssh to nodes (ssh2, in-process: no ssh children are left behind
// for LSF to wait on). quote(), the one place argv becomes a shell string, is in quote.ts.
import { createPrivateKey, sign } from 'node:crypto';
import ssh2, { type ConnectConfig, type ParsedKey, type PublicKeyAuthMethod } from 'ssh2';

// ssh2 is CommonJS: its classes come off the default export under ESM.
const { Client, utils } = ssh2;
import { EXIT, JobboxError } from '../errors.js';
import type { Result } from '../result.js';
import { quote } from '../quote.js';

export interface Target {
  host: string;
  port: number;
  username: string;
  privateKey: string;
  /** Accepted host keys, as base64 key blobs (the second field of a known_hosts line). */
  hostKeys: string[];
  timeoutMs: number;
}

export class Session {
  private constructor(
    readonly host: string,
    private readonly client: InstanceType<typeof Client>,
  ) {}

  static connect(target: Target): Promise<Session> {
    return new Promise((resolve, reject) => {
      const client: InstanceType<typeof Client> = Session.dial(target, { up: () => resolve(new Session(target.host, client)) }, reject);
    });
  }

  /**
   * Resolves once the sshd at target has shown one of target.hostKeys (its signature checked in
   * the key exchange) and has answered that it takes target.privateKey for target.username: its
   * PK_OK to the key offered without a signature (RFC 4252 §7). It ends there. The signature,
   * and the session sshd forks after it, belong to a real login, which the job makes anyway:
   * this is the setup's barrier, at half the cost of a login on every node. A server that lets
   * the user in without a signature at all has shown the pinned host key too: taken as well.
   */
  static accepts(target: Target): Promise<void> {
    return new Promise((resolve, reject) => {
      const client: InstanceType<typeof Client> = Session.dial(target, { up: () => (client.end(), resolve()), pkOk: true }, reject);
    });
  }

  /**
   * A client on its way to target; `up` runs once it is logged in, or, with `pkOk`, once the
   * server answered PK_OK (the key is offered for that only, and ssh2's request for its signature
   * ends the client instead). Anything else settles as one transient error, once: an error, a
   * close before that point (a peer that sends its version line and hangs up, or disconnects
   * "by application": ssh2 reports neither as an error, and clears its own ready timeout), or
   * no answer within the connect timeout and a little more. A barrier that waits on a client
   * nothing ends would hold the root hook for ever.
   */
  private static dial(target: Target, on: { up: () => void; pkOk?: boolean }, reject: (err: JobboxError) => void): InstanceType<typeof Client> {
    const client = new Client();
    let settled = false;
    const settle = () => {
      settled = true;
      clearTimeout(timer);
    };
    const fail = (problem: string) => {
      if (settled) return;
      settle();
      client.destroy();
      reject(new JobboxError(`ssh ${target.host}:${target.port}`, problem, target.username, EXIT.transient));
    };
    const up = () => {
      if (settled) return;
      settle();
      on.up();
    };
    const timer = setTimeout(() => fail(`no login within ${target.timeoutMs / 1000} s`), target.timeoutMs + DIAL_SLACK_MS);
    const parsed = parsedKey(target.privateKey);
    // ssh2 asks the key for its signature only once the server has answered PK_OK; an Error
    // back sends nothing more (ssh2 then emits it, after this settled).
    const authKey = parsed && on.pkOk ? Object.create(parsed, { sign: { value: () => (up(), new Error('only PK_OK was asked')) } }) as ParsedKey : parsed;
    const publickey: PublicKeyAuthMethod[] = authKey ? [{ type: 'publickey', username: target.username, key: authKey }] : [];
    const config: ConnectConfig = {
      host: target.host,
      port: target.port,
      username: target.username,
      // Publickey straight away: ssh2's default first tries "none", one round trip that never
      // succeeds here. A key ssh2 cannot read goes in as text, for ssh2's own error.
      ...(authKey ? { authHandler: publickey } : { privateKey: target.privateKey }),
      readyTimeout: target.timeoutMs,
      // The host key must be one we pinned; ssh2 hands us the raw key blob.
      hostVerifier: (key: Buffer) => target.hostKeys.includes(key.toString('base64')),
      algorithms: { serverHostKey: ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'rsa-sha2-512', 'rsa-sha2-256'] },
    };
    client
      // For the client's whole life, not once: ending a client that timed out before the
      // handshake (a peer that accepts and says nothing) makes ssh2 emit a second error, and
      // an error with no listener kills the root hook before its rollback (a drained node).
      .on('error', (err) => fail(err.message))
      .on('end', () => fail('the connection closed before the login'))
      .on('close', () => fail('the connection closed before the login'))
      .once('ready', up)
      .connect(config);
    // Without it every exec waits out the peer's delayed ACK: ssh2 writes a request in
    // small packets and Nagle holds each one back until the last is acknowledged. That
    // cost 40 ms per remote command here (bench P1); OpenSSH sets it too.
    client.setNoDelay(true);
    return client;
  }

  /**
   * Runs argv on the node and collects its output; a non-zero exit is a result, not an error.
   * `input`: the command's stdin, for what must not be in its argv, which any user of the node
   * can read in /proc.
   */
  run(argv: string[], timeoutMs: number, input?: string): Promise<Result> {
    const command = quote(argv);
    return new Promise((resolve, reject) => {
      this.client.exec(command, (err, stream) => {
        if (err) {
          reject(new JobboxError(`ssh ${this.host}`, err.message, command, EXIT.transient));
          return;
        }
        let stdout = '';
        let stderr = '';
        let failed = false;
        const fail = (problem: string) => {
          if (failed) return;
          failed = true;
          clearTimeout(timer);
          stream.close();
          reject(new JobboxError(`ssh ${this.host}`, problem, command, EXIT.transient));
        };
        const timer = setTimeout(() => fail(`timed out after ${timeoutMs / 1000} s`), timeoutMs);
        if (input !== undefined) stream.end(input);
        // What a command prints may come from an image a user chose: a root hook keeps no more than this.
        const keep = (text: string, d: Buffer) => {
          if (text.length + d.length > MAX_OUTPUT) fail(`printed more than ${MAX_OUTPUT / 2 ** 20} MiB`);
          return failed ? text : text + d.toString();
        };
        stream.on('data', (d: Buffer) => (stdout = keep(stdout, d)));
        stream.stderr.on('data', (d: Buffer) => (stderr = keep(stderr, d)));
        stream.on('close', (code: number | null) => {
          clearTimeout(timer);
          if (!failed) resolve({ code: code ?? 255, stdout, stderr });
        });
      });
    });
  }

  close(): void {
    this.client.end();
  }
}

/** Past the connect timeout, ssh2's own (readyTimeout): the last word on a client nothing else ends. */
const DIAL_SLACK_MS = 1000;

/** The most a remote command's stdout or stderr may print (an image's account files, a node's image list). */
const MAX_OUTPUT = 16 * 2 ** 20;

const parsedKeys = new Map<string, ParsedKey | undefined>();

/**
 * A private key parsed once per process, not once per connection (a start connects twice to
 * every node, with the same admin key and the same job key). ssh2 signs with the key's PEM text,
 * which OpenSSL decodes anew for every signature; an ed25519 key signs with a KeyObject instead.
 */
function parsedKey(text: string): ParsedKey | undefined {
  if (parsedKeys.has(text)) return parsedKeys.get(text);
  const parsed = utils.parseKey(text);
  const key = parsed instanceof Error ? undefined : Array.isArray(parsed) ? parsed[0] : parsed;
  const usable = key?.isPrivateKey() ? key : undefined;
  if (usable?.type === 'ssh-ed25519') {
    const keyObject = createPrivateKey(usable.getPrivatePEM());
    usable.sign = (data: Buffer | string) => sign(null, Buffer.from(data), keyObject);
  }
  if (parsedKeys.size >= 16) parsedKeys.clear();
  parsedKeys.set(text, usable);
  return usable;
}

/**
 * Looks hosts up in a known_hosts text (plain host patterns; hashed entries are not supported).
 * The text is read once: a start asks for every node of the job, and a site's file lists them all.
 */
export function knownHostIndex(text: string): (host: string, port: number) => string[] {
  const byName = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const [patterns, , blob] = line.trim().split(/\s+/);
    if (!patterns || !blob || patterns.startsWith('#') || patterns.startsWith('|')) continue;
    for (const p of new Set(patterns.split(','))) {
      const keys = byName.get(p);
      if (keys) keys.push(blob);
      else byName.set(p, [blob]);
    }
  }
  return (host, port) => [...(byName.get(port === 22 ? host : `[${host}]:${port}`) ?? [])];
}

/**
 * Runs fn for every item with at most `limit` in flight, and waits for all of them: a
 * failure on one node never abandons the others half-done.
 */
export async function fanOut<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<PromiseSettledResult<R>[]> {
  const results: PromiseSettledResult<R>[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = { status: 'fulfilled', value: await fn(items[i]!, i) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
