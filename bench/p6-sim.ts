// P6's simulated nodes: one process, one ssh2 Server per node on its own loopback address
// (127.77.x.y), answering the commands pre-exec and post-exec send as a node's sshd and dockerd
// would, and starting a "job sshd" (another ssh2 Server with the job's host key, on the job's
// port) when asked to `docker run` the job's container. Every byte a node sends is held back
// `latencyMs`: a round trip costs at least that, as on a network with that delay.
// Runs in its own process so that the jobbox side's memory is measured alone.
import { readFileSync } from 'node:fs';
import { createPrivateKey, createPublicKey, type KeyObject, randomBytes, sign, verify } from 'node:crypto';
import net from 'node:net';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ParsedKey } from 'ssh2';
import { nodeIp, type SimReady, type SimStart, type SimStats } from './p6-shared.js';

const { Server, utils } = ssh2;

// Debian 12's own accounts, as `head /etc/passwd /etc/group` prints them from the image.
const PASSWD = `root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
sys:x:3:3:sys:/dev:/usr/sbin/nologin
sync:x:4:65534:sync:/bin:/bin/sync
games:x:5:60:games:/usr/games:/usr/sbin/nologin
man:x:6:12:man:/var/cache/man:/usr/sbin/nologin
lp:x:7:7:lp:/var/spool/lpd:/usr/sbin/nologin
mail:x:8:8:mail:/var/mail:/usr/sbin/nologin
news:x:9:9:news:/var/spool/news:/usr/sbin/nologin
uucp:x:10:10:uucp:/var/spool/uucp:/usr/sbin/nologin
proxy:x:13:13:proxy:/bin:/usr/sbin/nologin
www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
list:x:38:38:Mailing List Manager:/var/list:/usr/sbin/nologin
irc:x:39:39:ircd:/run/ircd:/usr/sbin/nologin
_apt:x:42:65534::/nonexistent:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
sshd:x:100:65534::/run/sshd:/usr/sbin/nologin
`;
const GROUP = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
news:x:9:
uucp:x:10:
man:x:12:
proxy:x:13:
kmem:x:15:
dialout:x:20:
cdrom:x:24:
sudo:x:27:
audio:x:29:
www-data:x:33:
backup:x:34:
operator:x:37:
list:x:38:
irc:x:39:
src:x:40:
shadow:x:42:
utmp:x:43:
video:x:44:
plugdev:x:46:
staff:x:50:
users:x:100:
nogroup:x:65534:
`;
const ACCOUNTS = `==> /etc/passwd <==\n${PASSWD}\n==> /etc/group <==\n${GROUP}`;
const DEVICES = 'rdma_cm\numad0\nuverbs0\nuverbs1\nissm0\n';

interface Reply {
  code: number;
  stdout?: string;
  stderr?: string;
}

interface JobSshd {
  port: number;
  server: InstanceType<typeof Server>;
  listener: net.Server;
  sockets: Set<net.Socket>;
}

interface Container {
  id: string;
  name: string;
  labels: Map<string, string>;
  sshd: JobSshd;
}

interface SimNode {
  ip: string;
  containers: Map<string, Container>;
}

// --- what happened when, for the phase timeline of a run -------------------------------------

const events = new Map<string, number[]>(); // kind → [arrival, reply, arrival, reply, …]
function record(kind: string, arrival: number): void {
  let list = events.get(kind);
  if (!list) events.set(kind, (list = []));
  list.push(arrival, Date.now());
}

function statsBetween(t0: number, t1: number): SimStats {
  const commands: SimStats['commands'] = {};
  const connections = { admin: 0, job: 0 };
  for (const [kind, list] of events) {
    let count = 0;
    let first = Infinity;
    let last = -Infinity;
    for (let i = 0; i < list.length; i += 2) {
      const a = list[i]!;
      if (a < t0 || a > t1) continue;
      count++;
      first = Math.min(first, a);
      last = Math.max(last, list[i + 1]!);
    }
    if (count === 0) continue;
    if (kind === 'connect admin') connections.admin = count;
    if (kind === 'connect job') connections.job = count;
    commands[kind] = [count, first - t0, last - t0];
  }
  let containers = 0;
  for (const n of nodes) containers += n.containers.size;
  const cpu = process.cpuUsage();
  return { commands, connections, containers, cpuMs: (cpu.user + cpu.system) / 1000 };
}

// --- latency ------------------------------------------------------------------------------------

/** Holds back everything written to the socket by `ms`, in order (timers of one duration fire FIFO). */
function delayWrites(socket: net.Socket, ms: number): void {
  socket.setNoDelay(true);
  if (ms <= 0) return;
  const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
  const end = socket.end.bind(socket) as () => net.Socket;
  socket.write = ((chunk: Buffer | string) => {
    const copy = Buffer.from(chunk);
    setTimeout(() => {
      if (!socket.destroyed) write(copy);
    }, ms);
    return true;
  }) as typeof socket.write;
  socket.end = (() => {
    setTimeout(() => {
      if (!socket.destroyed) end();
    }, ms);
    return socket;
  }) as typeof socket.end;
}

// --- the shell words jobbox's quote() makes --------------------------------------------------------

/** POSIX shell words of a command line made of plain words and '…' quoting (what quote() emits). */
function unquote(line: string): string[] {
  const words: string[] = [];
  let word = '';
  let started = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error(`unterminated quote: ${line}`);
      word += line.slice(i + 1, end);
      started = true;
      i = end;
    } else if (c === '\\') {
      word += line[++i] ?? '';
      started = true;
    } else if (c === ' ' || c === '\t' || c === '\n') {
      if (started) words.push(word);
      word = '';
      started = false;
    } else {
      word += c;
      started = true;
    }
  }
  if (started) words.push(word);
  return words;
}

// --- publickey authentication, as sshd does it -------------------------------------------------

// The simulated nodes' crypto shares the machine's two cores with jobbox, where real nodes would
// each bring their own sshd's CPU: keep it as cheap as ssh2 allows. ssh2 signs and verifies with
// PEM text that OpenSSL decodes anew every time; these keys use KeyObjects made once.

interface AuthorizedKey {
  type: string;
  blob: Buffer;
  key: KeyObject;
}

function authorizedKey(text: string, what: string): AuthorizedKey {
  const parsed = parseOne(text, what);
  return { type: parsed.type, blob: parsed.getPublicSSH(), key: createPublicKey(parsed.getPublicPEM()) };
}

/** A host key for ssh2's Server that signs with a KeyObject (ed25519: no hash algorithm). */
function hostKey(text: string): ParsedKey {
  const parsed = parseOne(text, 'host key');
  if (parsed.type !== 'ssh-ed25519') throw new Error(`host key: ed25519 expected, got ${parsed.type}`);
  const key = createPrivateKey(parsed.getPrivatePEM());
  parsed.sign = (data: Buffer | string) => sign(null, Buffer.from(data), key);
  return parsed;
}

function publicKeyAuth(ctx: AuthContext, user: string, key: AuthorizedKey): void {
  if (ctx.method !== 'publickey' || ctx.username !== user) {
    ctx.reject(['publickey']);
    return;
  }
  if (ctx.key.algo !== key.type || !ctx.key.data.equals(key.blob)) {
    ctx.reject(['publickey']);
    return;
  }
  // No signature: the client only asks whether the key would do (SSH_MSG_USERAUTH_PK_OK).
  if (!ctx.signature || !ctx.blob) {
    ctx.accept();
    return;
  }
  if (verify(null, ctx.blob, key.key, ctx.signature)) ctx.accept();
  else ctx.reject(['publickey']);
}

function parseOne(text: string, what: string): ParsedKey {
  const key = utils.parseKey(text);
  if (key instanceof Error) throw new Error(`${what}: ${key.message}`);
  return Array.isArray(key) ? key[0]! : key;
}

// --- the job's container: an sshd on the job's port with the job's host key ---------------------

interface SshdFiles {
  port: number;
  user: string;
  hostKey: ParsedKey;
  authorized: AuthorizedKey;
}
const sshdFiles = new Map<string, SshdFiles>();

/** Reads the job dir files jobbox wrote (the sim is on the same machine), once per job dir. */
function readSshdConfig(path: string): SshdFiles {
  const cached = sshdFiles.get(path);
  if (cached) return cached;
  const conf = new Map<string, string>();
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^(\w+)\s+(.*)$/.exec(line.trim());
    if (m && !line.startsWith('#')) conf.set(m[1]!, m[2]!);
  }
  const authorizedText = readFileSync(conf.get('AuthorizedKeysFile')!, 'utf8');
  const authorized = authorizedText.trim().split(/\s+/);
  const files = {
    port: Number(conf.get('Port')),
    user: conf.get('AllowUsers')!,
    hostKey: hostKey(readFileSync(conf.get('HostKey')!, 'utf8')),
    // "restrict ssh-ed25519 AAAA… jobbox-job"
    authorized: authorizedKey(`${authorized[1]} ${authorized[2]}`, `authorized_keys ${JSON.stringify(authorizedText)}`),
  };
  sshdFiles.set(path, files);
  return files;
}

function startJobSshd(node: SimNode, files: SshdFiles, latencyMs: number): Promise<JobSshd> {
  const server = new Server({ hostKeys: [{ key: files.hostKey }] }, (client: Connection) => {
    const accepted = Date.now();
    client.on('error', () => {});
    client.on('authentication', (ctx) => publicKeyAuth(ctx, files.user, files.authorized));
    client.on('ready', () => record('connect job', accepted));
    client.on('session', (_accept, reject) => reject());
  });
  server.on('error', () => {});
  const sockets = new Set<net.Socket>();
  const listener = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    delayWrites(socket, latencyMs);
    server.injectSocket(socket);
  });
  return new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ host: node.ip, port: files.port, backlog: 1024 }, () => {
      listener.off('error', reject);
      resolve({ port: files.port, server, listener, sockets });
    });
  });
}

function stopJobSshd(sshd: JobSshd): void {
  sshd.listener.close();
  for (const s of sshd.sockets) s.destroy();
}

// --- docker, find, ss, flock --------------------------------------------------------------------

/** `--flag value` pairs of a docker argv, and the first word that is neither. */
function dockerFlags(argv: string[]): { flags: [string, string][]; rest: string[] } {
  const withValue = new Set(['--name', '--label', '--user', '--group-add', '--workdir', '--env-file', '--mount', '--device', '--cpus', '--memory', '--ulimit', '--shm-size', '--cap-drop', '--security-opt', '--filter', '--format', '--tail']);
  const flags: [string, string][] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) break;
    if (withValue.has(a)) flags.push([a, argv[++i] ?? '']);
    else flags.push([a, '']);
  }
  return { flags, rest: argv.slice(i) };
}

function findContainer(node: SimNode, ref: string): Container | undefined {
  for (const c of node.containers.values()) if (c.id.startsWith(ref) || c.name === ref) return c;
  return undefined;
}

async function docker(node: SimNode, argv: string[], latencyMs: number): Promise<[string, Reply]> {
  const [verb = '', ...args] = argv;
  const { flags, rest } = dockerFlags(args);
  const values = (flag: string) => flags.filter(([f]) => f === flag).map(([, v]) => v);
  switch (verb) {
    case 'pull':
      return ['pull', { code: 0, stdout: `${rest[0]}\n` }];
    case 'image':
      return ['inspect', { code: 0, stdout: `sha256:${randomBytes(32).toString('hex')}\n` }];
    case 'ps': {
      const filters = values('--filter');
      const name = filters.find((f) => f.startsWith('name='));
      if (name) {
        // name=^/jobbox-4242$ → jobbox-4242
        const wanted = name.slice('name=^/'.length, -1);
        const c = [...node.containers.values()].find((x) => x.name === wanted);
        return ['ps name', { code: 0, stdout: c ? `${c.id.slice(0, 12)} running ${c.labels.get('org.jobbox.attempt') ?? ''}\n` : '' }];
      }
      const labels = filters.filter((f) => f.startsWith('label=')).map((f) => f.slice('label='.length).split('=') as [string, string]);
      const ids = [...node.containers.values()].filter((c) => labels.every(([k, v]) => c.labels.get(k) === v)).map((c) => c.id.slice(0, 12));
      return ['ps labels', { code: 0, stdout: ids.map((id) => `${id}\n`).join('') }];
    }
    case 'run': {
      if (flags.some(([f]) => f === '--rm')) {
        // The image's accounts: `docker run --rm … head -n 1000000 /etc/passwd /etc/group`.
        return ['accounts', { code: 0, stdout: ACCOUNTS }];
      }
      const name = values('--name')[0] ?? '';
      if (findContainer(node, name)) {
        return ['run', { code: 125, stderr: `docker: Error response from daemon: Conflict. The container name "/${name}" is already in use.\n` }];
      }
      const sshdConfig = rest[rest.indexOf('-f') + 1] ?? '';
      const files = readSshdConfig(sshdConfig);
      let sshd: JobSshd;
      try {
        sshd = await startJobSshd(node, files, latencyMs);
      } catch (err) {
        return ['run', { code: 125, stderr: `docker: sshd: ${(err as Error).message}\n` }];
      }
      const id = randomBytes(32).toString('hex');
      const labels = new Map(values('--label').map((l) => l.split('=', 2) as [string, string]));
      node.containers.set(id, { id, name, labels, sshd });
      return ['run', { code: 0, stdout: `${id}\n` }];
    }
    case 'rm': {
      let stdout = '';
      let stderr = '';
      for (const ref of rest) {
        const c = findContainer(node, ref);
        if (!c) {
          stderr += `Error response from daemon: No such container: ${ref}\n`;
          continue;
        }
        stopJobSshd(c.sshd);
        node.containers.delete(c.id);
        stdout += `${ref}\n`;
      }
      return ['rm', { code: stderr ? 1 : 0, stdout, stderr }];
    }
    case 'logs':
      return ['logs', { code: 0 }];
    default:
      return ['other', { code: 125, stderr: `docker: '${verb}' is not a docker command.\n` }];
  }
}

async function answer(node: SimNode, command: string, latencyMs: number): Promise<[string, Reply]> {
  let argv = unquote(command);
  // flock -w SECONDS LOCKFILE command…
  if (argv[0] === 'flock') argv = argv.slice(4);
  switch (argv[0]) {
    case 'docker':
      return docker(node, argv.slice(1), latencyMs);
    case 'find':
      return ['find', { code: 0, stdout: DEVICES }];
    case 'ss': {
      // ss -Htan 'sport = :30172'
      const port = Number(/:(\d+)$/.exec(argv.at(-1) ?? '')?.[1]);
      const busy = [...node.containers.values()].some((c) => c.sshd.port === port);
      return ['ss', { code: 0, stdout: busy ? `LISTEN 0      128        ${node.ip}:${port}        0.0.0.0:*\n` : '' }];
    }
    default:
      return ['other', { code: 127, stderr: `sh: 1: ${argv[0]}: not found\n` }];
  }
}

// --- the nodes' admin sshd -------------------------------------------------------------------------

const nodes: SimNode[] = [];

async function start(cfg: SimStart): Promise<number> {
  const nodeKey = hostKey(readFileSync(cfg.hostKeyFile, 'utf8'));
  const admin = authorizedKey(readFileSync(cfg.adminPubFile, 'utf8'), 'admin key');
  const listening: Promise<void>[] = [];
  for (let i = 0; i < cfg.nodes; i++) {
    const node: SimNode = { ip: nodeIp(i), containers: new Map() };
    nodes.push(node);
    const server = new Server({ hostKeys: [{ key: nodeKey }] }, (client: Connection) => {
      const accepted = Date.now();
      client.on('error', () => {});
      client.on('authentication', (ctx) => publicKeyAuth(ctx, 'root', admin));
      client.on('ready', () => record('connect admin', accepted));
      client.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acceptExec, _reject, info) => {
          const arrival = Date.now();
          const stream = acceptExec();
          answer(node, info.command, cfg.latencyMs).then(
            ([kind, reply]) => {
              if (reply.stdout) stream.write(reply.stdout);
              if (reply.stderr) stream.stderr.write(reply.stderr);
              stream.exit(reply.code);
              stream.end();
              record(kind, arrival);
            },
            (err: unknown) => {
              stream.stderr.write(`sim: ${String(err)}\n`);
              stream.exit(1);
              stream.end();
            },
          );
        });
      });
    });
    server.on('error', () => {});
    const listener = net.createServer((socket) => {
      socket.on('error', () => {});
      delayWrites(socket, cfg.latencyMs);
      server.injectSocket(socket);
    });
    listening.push(
      new Promise((resolve, reject) => {
        listener.once('error', reject);
        listener.listen({ host: node.ip, port: cfg.adminPort, backlog: 1024 }, () => resolve());
      }),
    );
  }
  await Promise.all(listening);
  return cfg.nodes;
}

process.on('message', (m: SimStart | { stats: [number, number] }) => {
  if ('stats' in m) {
    process.send!(statsBetween(m.stats[0], m.stats[1]));
    return;
  }
  start(m).then(
    (listening) => process.send!({ ready: true, listening } satisfies SimReady),
    (err: unknown) => {
      process.stderr.write(`p6 sim: ${String(err)}\n`);
      process.exit(1);
    },
  );
});
// The bench going away takes the sim with it.
process.on('disconnect', () => process.exit(0));
