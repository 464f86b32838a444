// A simulated cluster for the effect layer: per node, an ssh2 server on its own loopback
// address (127.77.x.y: all of 127/8 is loopback on Linux, so neither root nor a network
// namespace is needed) that answers what a start and a teardown send to a node, as the node's
// sshd, shell and dockerd would, and keeps the node's containers as state a test can inspect.
// `docker run` of a job's container starts its "job sshd": another ssh2 server, on the job's
// port, with the host key and the authorized key jobbox wrote into the job dir, so setupJob's
// barrier really logs in.
//
// The sim answers exactly the command lines jobbox sends (src/plan/node.ts, container.ts) and
// fails, as sh or docker would, on anything else: a new command or docker flag must show up as a
// failing test here, never as a sim that quietly agrees.
//
// Used in-process by the unit tests (test/lifecycle/*.sim.test.ts), and by bench P6 in a process
// of its own (bench/p6-sim.ts), so that the jobbox side's memory is measured alone.
import { createHash, createPrivateKey, createPublicKey, type KeyObject, randomBytes, sign, verify } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import ssh2 from 'ssh2';
import type { AuthContext, Connection, ParsedKey, ServerChannel } from 'ssh2';

const { Server, utils } = ssh2;

/** Node i (0-based) of a block of nodes: block 1 is bench P6's; each test file takes its own. */
export function nodeIp(i: number, block = 1): string {
  return `127.77.${block + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

export interface SimOptions {
  /** The nodes' addresses, each a loopback address of its own (see nodeIp). */
  nodes: string[];
  /** Every node's admin sshd port; 0 takes a free one (the cluster's adminPort says which). */
  adminPort: number;
  /** Private key text (OpenSSH, ed25519): the host key of every node's admin sshd. */
  hostKey: string;
  /** Public key text that the admin sshd accepts for `adminUser`. */
  adminPub: string;
  /** The account the admin sshd logs in; `root` on a real node. */
  adminUser?: string;
  /** Every byte a node sends is held back this long: a round trip costs at least that. */
  latencyMs?: number;
}

/** A command's answer: exit code and output. */
export interface Reply {
  code: number;
  stdout?: string;
  stderr?: string;
}

/** What a node received, for `intercept`: `kind` is as in stats() (`run`, `bind`, `ps name`, …). */
export interface SimCommand {
  kind: string;
  argv: string[];
  /** What the command read on stdin (only the bind test reads any). */
  stdin: string;
}

export interface SimContainer {
  /** 64 hex digits; docker prints the first 12. */
  id: string;
  name: string;
  image: string;
  labels: Map<string, string>;
  /** `created`: docker made it but could not start it. */
  state: 'created' | 'running' | 'exited';
  /** The port its sshd listens on, or for a planted container, the port it holds. */
  port: number | undefined;
  /** What `docker logs` prints: the sshd's complaints. */
  logs: string[];
}

/** Per command kind, what was seen between two instants (bench P6's phase timeline). */
export interface SimStats {
  /** kind → [count, first arrival ms, last reply ms], times from t0 (Date.now() clock). */
  commands: Record<string, [number, number, number]>;
  /** Connections that logged in: admin sshd, job sshd. */
  connections: { admin: number; job: number };
  containers: number;
  /** This process's CPU time (user + system) since it started, ms. */
  cpuMs: number;
}

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
/** What deb12's `/usr/sbin/sshd -V` prints. */
export const DEB12_SSHD = 'OpenSSH_9.2p1 Debian-2+deb12u3, OpenSSL 3.0.15 3 Sep 2024';
const DEVICES = ['rdma_cm', 'umad0', 'uverbs0', 'uverbs1', 'issm0'];

// --- one simulated node -------------------------------------------------------------------------

interface JobSshd {
  listener: net.Server;
  sockets: Set<net.Socket>;
}

export class SimNode {
  /** By id. */
  readonly containers = new Map<string, SimContainer>();
  /** Image refs the node holds (a pull, or an implicit one by `docker run`, adds them). */
  readonly images = new Set<string>();
  /** When an image was built, by its repository@digest (`docker images` CreatedAt); unset: SIM_CREATED. */
  readonly created = new Map<string, Date>();
  /** Ports the bind test reports taken: something outside jobbox holds them on the node. */
  readonly busyPorts = new Set<number>();
  /** The filesystem at /sys/fs/cgroup (the probe says): `tmpfs` is cgroup v1. */
  cgroupFs = 'tmpfs';
  /** Character devices under device_dir (the probe lists them); undefined: no such directory. */
  devices: string[] | undefined = [...DEVICES];
  /** The registry is unreachable from this node: pulls fail, and so does a run of an absent image. */
  registryDown = false;
  /** What the image's `/usr/sbin/sshd -V` prints on this node. */
  sshdVersion = DEB12_SSHD;
  /** The runtime fails to start containers with this error: `docker run` leaves them created. */
  startFails: string | undefined;
  /** Answers a command before the sim does (fault injection); undefined lets the sim answer. */
  intercept: ((cmd: SimCommand) => Reply | undefined) | undefined;
  /** Kinds of the commands received, in order of arrival. */
  readonly received: string[] = [];

  /** Directories made on the node (`install -d`): flock needs its lock's. */
  private readonly dirs = new Set<string>();
  private readonly sshds = new Map<string, JobSshd>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private listener: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    readonly ip: string,
    private readonly cluster: Cluster,
  ) {}

  /** Containers holding `name`, any state. */
  named(name: string): SimContainer[] {
    return [...this.containers.values()].filter((c) => c.name === name);
  }

  /** How many commands of `kind` the node received. */
  count(kind: string): number {
    return this.received.filter((k) => k === kind).length;
  }

  /** Puts a container on the node as something else left it: no sshd, though it may hold a port. */
  plant(c: { name: string; labels?: Record<string, string>; state?: SimContainer['state']; port?: number; image?: string }): SimContainer {
    const container: SimContainer = {
      id: randomBytes(32).toString('hex'),
      name: c.name,
      image: c.image ?? 'planted',
      labels: new Map(Object.entries(c.labels ?? {})),
      state: c.state ?? 'running',
      port: c.port,
      logs: [],
    };
    this.containers.set(container.id, container);
    return container;
  }

  /** Down: the admin sshd refuses connections (a node that is off); up: it answers again. */
  async setDown(down: boolean): Promise<void> {
    if (down === (this.listener === undefined)) return;
    if (down) await this.close();
    else await this.listen(this.cluster.adminPort);
  }

  // --- the node's life --------------------------------------------------------------------------

  async listen(port: number): Promise<number> {
    const server = new Server({ hostKeys: [{ key: this.cluster.nodeKey }] }, (client: Connection) => this.admin(client));
    server.on('error', () => {});
    const listener = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      delayWrites(socket, this.cluster.latencyMs);
      server.injectSocket(socket);
    });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: this.ip, port, backlog: 1024 }, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    this.listener = listener;
    return (listener.address() as net.AddressInfo).port;
  }

  /** Closes the admin sshd and every connection to it. */
  async close(): Promise<void> {
    const listener = this.listener;
    this.listener = undefined;
    for (const s of this.sockets) s.destroy();
    if (listener) await new Promise<void>((resolve) => listener.close(() => resolve()));
  }

  /** A container gone as if someone ran `docker rm -f` on it, its sshd with it. */
  remove(id: string): void {
    const c = this.containers.get(id);
    if (c) this.stopSshd(c);
    this.containers.delete(id);
  }

  /** Back to a fresh node: no containers, images, faults or history. */
  clear(): void {
    for (const c of this.containers.values()) this.stopSshd(c);
    this.containers.clear();
    this.images.clear();
    this.created.clear();
    this.busyPorts.clear();
    this.dirs.clear();
    this.locks.clear();
    this.received.length = 0;
    this.devices = [...DEVICES];
    this.cgroupFs = 'tmpfs';
    this.registryDown = false;
    this.sshdVersion = DEB12_SSHD;
    this.startFails = undefined;
    this.intercept = undefined;
  }

  private admin(client: Connection): void {
    const accepted = Date.now();
    client.on('error', () => {});
    client.on('authentication', (ctx) => publicKeyAuth(ctx, this.cluster.adminUser, this.cluster.admin));
    client.on('ready', () => this.cluster.record('connect admin', accepted));
    client.on('session', (accept) => {
      const session = accept();
      session.on('exec', (acceptExec, _reject, info) => {
        const arrival = Date.now();
        const stream = acceptExec();
        this.exec(info.command, stream).then(
          ([kind, reply]) => {
            if (reply.stdout) stream.write(reply.stdout);
            if (reply.stderr) stream.stderr.write(reply.stderr);
            stream.exit(reply.code);
            stream.end();
            this.cluster.record(kind, arrival);
          },
          (err: unknown) => {
            stream.stderr.write(`sim: ${err instanceof Error ? err.stack : String(err)}\n`);
            stream.exit(1);
            stream.end();
          },
        );
      });
    });
  }

  private async exec(command: string, stream: ServerChannel): Promise<[string, Reply]> {
    const argv = unquote(command);
    const kind = kindOf(argv);
    this.received.push(kind);
    // Only the probe reads its stdin; the others would wait for an EOF nobody sends.
    const stdin = kind === 'probe' ? await firstLine(stream) : '';
    const faked = this.intercept?.({ kind, argv, stdin });
    return [kind, faked ?? (await this.shell(argv, stdin))];
  }

  /** One command line, as the node's /bin/sh would run it. */
  private async shell(argv: string[], stdin: string): Promise<Reply> {
    const [cmd = '', ...args] = argv;
    switch (cmd) {
      case 'install': {
        // install -d -m MODE DIR
        if (args.length !== 4 || args[0] !== '-d' || args[1] !== '-m' || !/^[0-7]{3,4}$/.test(args[2]!)) return unsupported(argv);
        this.dirs.add(args[3]!);
        return { code: 0 };
      }
      case 'flock': {
        // flock -w SECONDS LOCKFILE command…: serialized per lock file, as flock(1) does.
        const [w, seconds, lock, ...inner] = args;
        if (w !== '-w' || !/^\d+(\.\d+)?$/.test(seconds ?? '') || !lock || inner.length === 0) return unsupported(argv);
        if (!this.dirs.has(dirname(lock))) return { code: 1, stderr: `flock: cannot open lock file ${lock}: No such file or directory\n` };
        const before = this.locks.get(lock) ?? Promise.resolve();
        const turn = before.then(() => this.shell(inner, stdin));
        this.locks.set(lock, turn.catch(() => {}));
        return turn;
      }
      case 'timeout': {
        // timeout -k KILL SECONDS command…: the simulated commands end on their own.
        const [k, kill, seconds, ...inner] = args;
        if (k !== '-k' || !/^\d+$/.test(kill ?? '') || !/^\d+(\.\d+)?$/.test(seconds ?? '') || inner.length === 0) return unsupported(argv);
        return this.shell(inner, stdin);
      }
      case 'perl': {
        // The probe: the port on stdin, `taken` or `free` on stdout, then device_dir's character
        // devices (`-e`, the script, device_dir, gpu_dir, a GPU queue's mounts). No GPUs here.
        if (args.length < 4 || args[0] !== '-e' || !args[1]!.includes('<STDIN>')) return unsupported(argv);
        const port = /^(\d+)\n?$/.exec(stdin)?.[1];
        if (port === undefined) return { code: 255, stderr: `port: ${stdin}${stdin.endsWith('\n') ? '' : '\n'}` };
        return { code: 0, stdout: `${this.portTaken(Number(port)) ? 'taken' : 'free'}\n${this.cgroupFs}\n${(this.devices ?? []).map((d) => `d ${d}\n`).join('')}` };
      }
      default:
        if (cmd.split('/').at(-1) === 'docker') return this.docker(args);
        return { code: 127, stderr: `sh: 1: ${cmd}: not found\n` };
    }
  }

  /** What the bind test finds: a port jobbox does not know of, or a running container's. */
  private portTaken(port: number): boolean {
    return this.busyPorts.has(port) || [...this.containers.values()].some((c) => c.state === 'running' && c.port === port);
  }

  // --- dockerd ------------------------------------------------------------------------------------

  private async docker(argv: string[]): Promise<Reply> {
    const [verb = '', ...args] = argv;
    if (verb === 'image') {
      const [sub = '', ...rest] = args;
      if (sub !== 'inspect') return dockerUsage(`image ${sub}`, `unknown command "${sub}" for "docker image"`);
      return this.imageInspect(rest);
    }
    const spec = DOCKER_FLAGS[verb];
    if (!spec) return { code: 1, stderr: `docker: '${verb}' is not a docker command.\nSee 'docker --help'\n` };
    const parsed = parseFlags(verb, args, spec);
    if ('code' in parsed) return parsed;
    switch (verb) {
      case 'pull':
        return this.pull(parsed);
      case 'run':
        return this.run(parsed);
      case 'ps':
        return this.ps(parsed);
      case 'inspect':
        return this.inspect(parsed);
      case 'logs':
        return this.logs(parsed);
      case 'images':
        return this.imageTable(parsed);
      case 'rmi':
        return this.rmi(parsed);
      default:
        return this.rm(parsed);
    }
  }

  // The registry's one manifest per tag: its digest is the tag's hash. A pull of a tag also
  // gives the node the image by its repository and digest, as dockerd records RepoDigests.
  private pull({ rest }: Flags): Reply {
    const [ref] = rest;
    if (rest.length !== 1 || !ref) return dockerUsage('pull', '"docker pull" requires exactly 1 argument.');
    if (this.registryDown) return { code: 1, stderr: registryError(ref) };
    const digest = ref.includes('@') ? ref.slice(ref.indexOf('@') + 1) : simDigest(ref);
    this.images.add(ref).add(`${simRepo(ref)}@${digest}`);
    return { code: 0, stdout: `Pulling from ${simRepo(ref)}\nDigest: ${digest}\nStatus: Image is up to date for ${ref}\n${ref}\n` };
  }

  private imageInspect(args: string[]): Reply {
    const parsed = parseFlags('image inspect', args, { value: ['--format', '-f'], bool: [] });
    if ('code' in parsed) return parsed;
    const [ref] = parsed.rest;
    if (parsed.rest.length !== 1 || !ref) return dockerUsage('image inspect', '"docker image inspect" requires at least 1 argument.');
    if (!this.holds(ref)) return { code: 1, stderr: `Error response from daemon: No such image: ${ref}\n` };
    // One image per digest and sshd: an image whose sshd differs is another image, with another id.
    const digest = ref.includes('@') ? ref.slice(ref.indexOf('@') + 1) : simDigest(ref);
    return template(parsed.value('--format') ?? '{{.Id}}', { Id: this.imageId(ref), RepoDigests: [`${simRepo(ref)}@${digest}`] });
  }

  private imageId(ref: string): string {
    return `sha256:${createHash('sha256').update(`${simCanonical(ref)}\0${this.sshdVersion}`).digest('hex')}`;
  }

  /** A copy of a tag is also the image at the tag's digest, as dockerd knows it by its RepoDigests. */
  private holds(ref: string): boolean {
    return this.images.has(ref) || [...this.images].some((r) => simCanonical(r) === simCanonical(ref));
  }

  private async run(f: Flags): Promise<Reply> {
    const [ref, ...args] = f.rest;
    if (!ref) return dockerUsage('run', '"docker run" requires at least 1 argument.');
    // The images here have no ENTRYPOINT: the command is --entrypoint's, then the arguments.
    const entrypoint = f.value('--entrypoint');
    const cmd = entrypoint ? [entrypoint, ...args] : args;
    const envFile = f.value('--env-file');
    if (envFile && !existsSync(envFile)) return dockerUsage('run', `open ${envFile}: no such file or directory`);
    if (!this.holds(ref)) {
      if (f.value('--pull') === 'never') return dockerDaemon('run', `No such image: ${ref}`);
      // docker run pulls what the node lacks.
      if (this.registryDown) return { code: 125, stderr: `Unable to find image '${ref}' locally\ndocker: ${registryError(ref)}See 'docker run --help'.\n` };
      this.images.add(ref);
    }
    if (f.has('--rm')) return this.throwaway(ref, cmd);

    const name = f.value('--name') ?? randomBytes(4).toString('hex');
    const holder = this.named(name)[0];
    if (holder) {
      return dockerDaemon('run', `Conflict. The container name "/${name}" is already in use by container "${holder.id}". You have to remove (or rename) that container to be able to reuse that name.`);
    }
    for (const mount of f.values('--mount')) {
      const source = /(?:^|,)source=([^,]*)/.exec(mount)?.[1];
      if (/(?:^|,)type=bind(?:,|$)/.test(mount) && source !== undefined && !existsSync(source)) {
        return dockerDaemon('run', `invalid mount config for type "bind": bind source path does not exist: ${source}`);
      }
    }
    const container: SimContainer = {
      id: randomBytes(32).toString('hex'),
      name,
      image: ref,
      labels: new Map(f.values('--label').map((l) => splitOnce(l, '='))),
      state: 'running',
      port: undefined,
      logs: [],
    };
    this.containers.set(container.id, container);
    if (this.startFails !== undefined) {
      // A failed start is reported without the usage hint, and leaves the container created.
      container.state = 'created';
      return { code: 125, stderr: `docker: Error response from daemon: ${this.startFails}\n` };
    }
    await this.startSshd(container, cmd);
    // -d returns once the container started; an sshd that exits right after is no failure of the run.
    return { code: 0, stdout: `${container.id}\n` };
  }

  /** The job's container: `/usr/sbin/sshd -D -e -f SSHD_CONFIG` on the job's port. */
  private async startSshd(c: SimContainer, cmd: string[]): Promise<void> {
    const exited = (...lines: string[]) => {
      c.state = 'exited';
      c.logs.push(...lines);
    };
    if (cmd.length !== 5 || cmd.slice(0, 4).join(' ') !== '/usr/sbin/sshd -D -e -f') {
      exited(`sim: only the job's sshd is simulated, not: ${cmd.join(' ')}`);
      return;
    }
    let files: SshdFiles;
    try {
      files = this.cluster.sshdFiles(cmd[4]!);
    } catch (err) {
      exited(`${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    c.port = files.port;
    const cannotBind = [`Bind to port ${files.port} on 0.0.0.0 failed: Address already in use.`, 'Cannot bind any address.'];
    const others = [...this.containers.values()].some((o) => o !== c && o.state === 'running' && o.port === files.port);
    if (this.busyPorts.has(files.port) || others) {
      exited(...cannotBind);
      return;
    }
    try {
      this.sshds.set(c.id, await this.cluster.startJobSshd(this.ip, files));
    } catch (err) {
      exited(...((err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? cannotBind : [String(err)]));
    }
  }

  private stopSshd(c: SimContainer): void {
    const sshd = this.sshds.get(c.id);
    if (!sshd) return;
    this.sshds.delete(c.id);
    sshd.listener.close();
    for (const s of sshd.sockets) s.destroy();
  }

  /** `docker run --rm IMAGE /bin/sh -c SCRIPT`: only the image accounts script is simulated. */
  private throwaway(_ref: string, cmd: string[]): Reply {
    const [sh, c, script = ''] = cmd;
    if (sh !== '/bin/sh' || c !== '-c' || !/^head -n \d+ \/etc\/passwd \/etc\/group\b/.test(script)) {
      return { code: 127, stderr: `sim: this throwaway container is not simulated: ${cmd.join(' ')}\n` };
    }
    // head's own format: a header per file, a blank line between files.
    let out = `==> /etc/passwd <==\n${PASSWD}\n==> /etc/group <==\n${GROUP}`;
    const sshd = /echo "(==> \/usr\/sbin\/sshd -V <==)"; \/usr\/sbin\/sshd -V 2>&1/.exec(script);
    if (sshd) out += `\n${sshd[1]}\n${this.sshdVersion}\n`;
    return { code: 0, stdout: out };
  }

  private ps(f: Flags): Reply {
    if (f.rest.length > 0) return dockerUsage('ps', `"docker ps" accepts no arguments.`);
    let shown = [...this.containers.values()].filter((c) => f.has('--all') || c.state === 'running');
    const names: RegExp[] = [];
    for (const filter of f.values('--filter')) {
      const [key, value] = splitOnce(filter, '=');
      if (key === 'label') {
        const [k, v] = splitOnce(value, '=');
        shown = shown.filter((c) => c.labels.has(k) && (!value.includes('=') || c.labels.get(k) === v));
      } else if (key === 'name') {
        names.push(new RegExp(value));
      } else {
        return { code: 1, stderr: `Error response from daemon: invalid filter '${key}'\n` };
      }
    }
    // Values of one key are alternatives (name), of labels all must hold. docker matches a name
    // with its leading slash and without.
    if (names.length > 0) shown = shown.filter((c) => names.some((re) => re.test(`/${c.name}`) || re.test(c.name)));
    const format = f.value('--format') ?? (f.has('--quiet') ? '{{.ID}}' : undefined);
    if (format === undefined) return { code: 1, stderr: 'sim: docker ps prints only with --quiet or --format here\n' };
    let stdout = '';
    for (const c of shown) {
      const r = template(format, {
        ID: f.has('--no-trunc') ? c.id : c.id.slice(0, 12),
        Names: c.name,
        Image: c.image,
        State: c.state,
        Labels: [...c.labels].map(([k, v]) => `${k}=${v}`).join(','),
        Label: (k: string) => c.labels.get(k) ?? '',
      });
      if (r.code !== 0) return r;
      stdout += r.stdout;
    }
    return { code: 0, stdout };
  }

  private inspect(f: Flags): Reply {
    if (f.rest.length === 0) return dockerUsage('inspect', '"docker inspect" requires at least 1 argument.');
    let stdout = '';
    let stderr = '';
    for (const ref of f.rest) {
      const c = this.find(ref);
      if (!c) {
        stderr += `Error: No such object: ${ref}\n`;
        continue;
      }
      const r = template(f.value('--format') ?? '{{.Id}}', {
        Id: c.id,
        Name: `/${c.name}`,
        State: { Running: c.state === 'running', Status: c.state, OOMKilled: false },
        Config: { Image: c.image, Labels: Object.fromEntries(c.labels) },
        Image: this.imageId(c.image),
      });
      if (r.code !== 0) return r;
      stdout += r.stdout;
    }
    return { code: stderr ? 1 : 0, stdout, stderr };
  }

  /**
   * `docker images --digests --no-trunc --format F`, as docker 28 prints it: per image and
   * repository, a row per tag with the repository's digest, else one per digest with tag <none>.
   */
  private imageTable(f: Flags): Reply {
    if (f.rest.length > 0 || !f.has('--digests') || !f.has('--no-trunc')) return { code: 1, stderr: 'sim: docker images is simulated only with --digests --no-trunc and no filter\n' };
    const format = f.value('--format');
    if (format === undefined) return { code: 1, stderr: 'sim: docker images prints only with --format here\n' };
    let stdout = '';
    for (const [canonical, refs] of this.byImage()) {
      const repo = simRepo(canonical);
      const tags = refs.filter((r) => !r.includes('@')).map((r) => r.slice(repo.length + 1));
      const digest = refs.some((r) => r.includes('@')) ? canonical.slice(repo.length + 1) : '<none>';
      const created = this.created.get(canonical) ?? SIM_CREATED;
      // Go's time.Time.String() in UTC.
      const createdAt = `${created.toISOString().slice(0, 19).replace('T', ' ')} +0000 UTC`;
      for (const tag of tags.length > 0 ? tags : ['<none>']) {
        const r = template(format, { ID: this.imageId(canonical), Repository: repo, Tag: tag, Digest: digest, CreatedAt: createdAt });
        if (r.code !== 0) return r;
        stdout += r.stdout;
      }
    }
    return { code: 0, stdout };
  }

  /** The refs the node holds, by the image (repository@digest) they name: one repository each in the sim. */
  private byImage(): Map<string, string[]> {
    const images = new Map<string, string[]>();
    for (const ref of this.images) {
      const canonical = simCanonical(ref);
      images.set(canonical, [...(images.get(canonical) ?? []), ref]);
    }
    return images;
  }

  /**
   * `docker rmi REF…` without --force (the sim refuses it), as dockerd decides: the last name
   * of an image a container uses (any state) stays; a repository's last tag takes its digest
   * names with it; the image goes with its last name.
   */
  private rmi(f: Flags): Reply {
    if (f.rest.length === 0) return dockerUsage('rmi', '"docker rmi" requires at least 1 argument.');
    let stdout = '';
    let stderr = '';
    for (const ref of f.rest) {
      if (!this.images.has(ref)) {
        stderr += `Error response from daemon: No such image: ${ref}\n`;
        continue;
      }
      const canonical = simCanonical(ref);
      const names = this.byImage().get(canonical)!;
      const user = [...this.containers.values()].find((c) => this.imageId(c.image) === this.imageId(ref));
      if (user && names.filter((n) => !n.includes('@')).length <= 1) {
        stderr += `Error response from daemon: conflict: unable to remove repository reference "${ref}" (must force) - container ${user.id.slice(0, 12)} is using its referenced image ${this.imageId(ref).slice(7, 19)}\n`;
        continue;
      }
      this.images.delete(ref);
      stdout += `Untagged: ${ref}\n`;
      const left = names.filter((n) => n !== ref);
      if (!ref.includes('@') && left.every((n) => n.includes('@'))) {
        for (const n of left) {
          this.images.delete(n);
          stdout += `Untagged: ${n}\n`;
        }
        stdout += `Deleted: ${this.imageId(ref)}\n`;
      } else if (left.length === 0) {
        stdout += `Deleted: ${this.imageId(ref)}\n`;
      }
    }
    return { code: stderr ? 1 : 0, stdout, stderr };
  }

  private logs(f: Flags): Reply {
    const [ref] = f.rest;
    if (f.rest.length !== 1 || !ref) return dockerUsage('logs', '"docker logs" requires exactly 1 argument.');
    const c = this.find(ref);
    if (!c) return { code: 1, stderr: `Error response from daemon: No such container: ${ref}\n` };
    const tail = f.value('--tail');
    const lines = tail === undefined || tail === 'all' ? c.logs : c.logs.slice(-Number(tail));
    // sshd -e logs to stderr, which docker logs hands back as stderr.
    return { code: 0, stderr: lines.map((l) => `${l}\n`).join('') };
  }

  private rm(f: Flags): Reply {
    if (f.rest.length === 0) return dockerUsage('rm', '"docker rm" requires at least 1 argument.');
    let stdout = '';
    let stderr = '';
    for (const ref of f.rest) {
      const c = this.find(ref);
      if (!c) {
        stderr += `Error response from daemon: No such container: ${ref}\n`;
        continue;
      }
      if (c.state === 'running' && !f.has('--force')) {
        stderr += `Error response from daemon: You cannot remove a running container ${c.id}. Stop the container before attempting removal or force remove\n`;
        continue;
      }
      this.stopSshd(c);
      this.containers.delete(c.id);
      stdout += `${ref}\n`;
    }
    return { code: stderr ? 1 : 0, stdout, stderr };
  }

  /** By name, whole id or unique id prefix, as docker resolves a reference. */
  private find(ref: string): SimContainer | undefined {
    const all = [...this.containers.values()];
    const byName = all.find((c) => c.name === ref || `/${c.name}` === ref);
    if (byName) return byName;
    const byId = all.filter((c) => c.id.startsWith(ref));
    return byId.length === 1 ? byId[0] : undefined;
  }
}

// --- the cluster ------------------------------------------------------------------------------------

interface SshdFiles {
  port: number;
  user: string;
  hostKey: ParsedKey;
  authorized: AuthorizedKey;
}

class Cluster {
  readonly nodes: SimNode[];
  readonly nodeKey: ParsedKey;
  readonly admin: AuthorizedKey;
  readonly adminUser: string;
  readonly latencyMs: number;
  adminPort = 0;
  /** kind → [arrival, reply, arrival, reply, …] */
  private readonly events = new Map<string, number[]>();
  /** Parsed keys by their text: a bench run starts thousands of containers with few keys each. */
  private readonly keys = new Map<string, ParsedKey | AuthorizedKey>();

  constructor(options: SimOptions) {
    this.nodeKey = hostKey(options.hostKey);
    this.admin = authorizedKey(options.adminPub, 'admin key');
    this.adminUser = options.adminUser ?? 'root';
    this.latencyMs = options.latencyMs ?? 0;
    this.nodes = options.nodes.map((ip) => new SimNode(ip, this));
  }

  record(kind: string, arrival: number): void {
    let list = this.events.get(kind);
    if (!list) this.events.set(kind, (list = []));
    list.push(arrival, Date.now());
  }

  stats(t0: number, t1: number): SimStats {
    const commands: SimStats['commands'] = {};
    const connections = { admin: 0, job: 0 };
    for (const [kind, list] of this.events) {
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
    const containers = this.nodes.reduce((n, node) => n + node.containers.size, 0);
    const cpu = process.cpuUsage();
    return { commands, connections, containers, cpuMs: (cpu.user + cpu.system) / 1000 };
  }

  clearEvents(): void {
    this.events.clear();
  }

  /** The job dir files the job's sshd reads (the sim is on the same machine as jobbox). */
  sshdFiles(path: string): SshdFiles {
    const conf = new Map<string, string>();
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'No such file or directory' : String(err)}`);
    }
    for (const line of text.split('\n')) {
      const m = /^(\w+)\s+(.*)$/.exec(line.trim());
      if (m && !line.trimStart().startsWith('#')) conf.set(m[1]!, m[2]!);
    }
    const need = (key: string) => {
      const v = conf.get(key);
      if (v === undefined) throw new Error(`${path}: no ${key}`);
      return v;
    };
    const authorizedText = readFileSync(need('AuthorizedKeysFile'), 'utf8');
    // `restrict ssh-ed25519 AAAA… jobbox-job`: options, then type and blob.
    const words = authorizedText.trim().split(/\s+/);
    const at = words.findIndex((w) => /^(ssh-|ecdsa-)/.test(w));
    return {
      port: Number(need('Port')),
      user: need('AllowUsers'),
      hostKey: this.cached(readFileSync(need('HostKey'), 'utf8'), hostKey),
      authorized: this.cached(`${words[at]} ${words[at + 1]}`, (t) => authorizedKey(t, `authorized_keys ${JSON.stringify(authorizedText)}`)),
    };
  }

  private cached<K extends ParsedKey | AuthorizedKey>(text: string, parse: (text: string) => K): K {
    let key = this.keys.get(text) as K | undefined;
    if (!key) {
      if (this.keys.size >= 4096) this.keys.clear();
      this.keys.set(text, (key = parse(text)));
    }
    return key;
  }

  startJobSshd(ip: string, files: SshdFiles): Promise<JobSshd> {
    const server = new Server({ hostKeys: [{ key: files.hostKey }] }, (client: Connection) => {
      const accepted = Date.now();
      client.on('error', () => {});
      // Counted once the server takes the job key: at its PK_OK, where the setup's barrier stops
      // (exec/ssh.ts Session.accepts), or at a whole login.
      let taken = false;
      client.on('authentication', (ctx) => {
        if (!publicKeyAuth(ctx, files.user, files.authorized) || taken) return;
        taken = true;
        this.record('connect job', accepted);
      });
      client.on('session', (_accept, reject) => reject());
    });
    server.on('error', () => {});
    const sockets = new Set<net.Socket>();
    const listener = net.createServer((socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      socket.on('error', () => {});
      delayWrites(socket, this.latencyMs);
      server.injectSocket(socket);
    });
    return new Promise((resolve, reject) => {
      listener.once('error', reject);
      listener.listen({ host: ip, port: files.port, backlog: 1024 }, () => {
        listener.off('error', reject);
        resolve({ listener, sockets });
      });
    });
  }
}

export interface SimCluster {
  readonly nodes: SimNode[];
  /** The admin sshd port every node answers on. */
  readonly adminPort: number;
  /** The node at `ip`; throws for an address the cluster does not have. */
  node(ip: string): SimNode;
  /** Every container on every node. */
  containers(): SimContainer[];
  stats(t0: number, t1: number): SimStats;
  /** Every node back to fresh (and up), the command history cleared. */
  reset(): Promise<void>;
  /** Closes every listener and connection, the job sshds' too. */
  stop(): Promise<void>;
}

export async function startSimCluster(options: SimOptions): Promise<SimCluster> {
  const cluster = new Cluster(options);
  const [first, ...rest] = cluster.nodes;
  try {
    if (first) cluster.adminPort = await first.listen(options.adminPort);
    await Promise.all(rest.map((n) => n.listen(cluster.adminPort)));
  } catch (err) {
    await Promise.all(cluster.nodes.map((n) => n.close()));
    throw err;
  }
  const byIp = new Map(cluster.nodes.map((n) => [n.ip, n]));
  return {
    nodes: cluster.nodes,
    adminPort: cluster.adminPort,
    node(ip) {
      const n = byIp.get(ip);
      if (!n) throw new Error(`sim: no node ${ip}`);
      return n;
    },
    containers: () => cluster.nodes.flatMap((n) => [...n.containers.values()]),
    stats: (t0, t1) => cluster.stats(t0, t1),
    async reset() {
      cluster.clearEvents();
      for (const n of cluster.nodes) n.clear();
      await Promise.all(cluster.nodes.map((n) => n.setDown(false)));
    },
    async stop() {
      for (const n of cluster.nodes) n.clear();
      await Promise.all(cluster.nodes.map((n) => n.close()));
    },
  };
}

// --- docker's command line ----------------------------------------------------------------------

interface FlagSpec {
  value: string[];
  bool: string[];
}

// What each verb accepts (a generous part of docker's own flags, short forms included); any
// other flag is refused as docker does, exit 125 with a usage hint.
const DOCKER_FLAGS: Record<string, FlagSpec> = {
  pull: { value: ['--platform'], bool: ['--quiet', '-q', '--all-tags', '-a', '--disable-content-trust'] },
  run: {
    value: [
      '--name', '--label', '-l', '--user', '-u', '--group-add', '--workdir', '-w', '--env-file', '--env', '-e', '--mount',
      '--device', '--cpus', '--memory', '-m', '--memory-swap', '--ulimit', '--pids-limit', '--shm-size', '--cap-drop',
      '--cap-add', '--security-opt', '--net', '--network', '--hostname', '-h', '--volume', '-v', '--tmpfs', '--entrypoint',
      '--log-driver', '--log-opt', '--restart', '--ipc', '--pid', '--stop-signal', '--cgroupns', '--platform', '--pull',
    ],
    bool: ['--detach', '-d', '--init', '--rm', '--read-only', '--interactive', '-i', '--tty', '-t', '--privileged'],
  },
  ps: { value: ['--filter', '-f', '--format'], bool: ['--all', '-a', '--quiet', '-q', '--no-trunc', '--latest', '-l'] },
  inspect: { value: ['--format', '-f', '--type'], bool: ['--size', '-s'] },
  logs: { value: ['--tail', '-n', '--since', '--until'], bool: ['--follow', '-f', '--timestamps', '-t', '--details'] },
  rm: { value: [], bool: ['--force', '-f', '--volumes', '-v', '--link', '-l'] },
  images: { value: ['--filter', '-f', '--format'], bool: ['--all', '-a', '--digests', '--no-trunc', '--quiet', '-q'] },
  // Never --force: jobbox must not have it, so the sim refuses it as an unknown flag.
  rmi: { value: [], bool: ['--no-prune'] },
};

// Short forms, to look flags up by their long name.
const LONG: Record<string, string> = {
  '-q': '--quiet', '-a': '--all', '-f': '--filter', '-l': '--label', '-u': '--user', '-w': '--workdir', '-e': '--env',
  '-m': '--memory', '-h': '--hostname', '-v': '--volume', '-d': '--detach', '-i': '--interactive', '-t': '--tty',
  '-n': '--tail', '-s': '--size',
};

interface Flags {
  rest: string[];
  has(flag: string): boolean;
  value(flag: string): string | undefined;
  values(flag: string): string[];
}

function parseFlags(verb: string, args: string[], spec: FlagSpec): Flags | Reply {
  // `docker run` stops at the image: what follows is the container's command.
  const interspersed = verb !== 'run';
  const given: [string, string][] = [];
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('-') || a === '-') {
      rest.push(a);
      if (!interspersed) {
        rest.push(...args.slice(i + 1));
        break;
      }
      continue;
    }
    const eq = a.indexOf('=');
    const flag = eq > 0 ? a.slice(0, eq) : a;
    if (spec.value.includes(flag)) {
      if (eq > 0) given.push([flag, a.slice(eq + 1)]);
      else if (i + 1 < args.length) given.push([flag, args[++i]!]);
      else return dockerUsage(verb, `flag needs an argument: ${flag}`);
    } else if (spec.bool.includes(flag)) {
      given.push([flag, eq > 0 ? a.slice(eq + 1) : 'true']);
    } else {
      return dockerUsage(verb, `unknown flag: ${flag}`);
    }
  }
  // Per verb, a short flag is its long one, except where the verb gives the letter another meaning.
  const canonical = (flag: string) => {
    if (verb === 'rm' && flag === '-f') return '--force';
    if (verb === 'rm' && flag === '-v') return '--volumes';
    if ((verb === 'inspect' || verb === 'image inspect') && flag === '-f') return '--format';
    if (verb === 'logs' && flag === '-f') return '--follow';
    if (verb === 'logs' && flag === '-t') return '--timestamps';
    return LONG[flag] ?? flag;
  };
  const all = given.map(([f, v]): [string, string] => [canonical(f), v]);
  return {
    rest,
    has: (flag) => all.some(([f, v]) => f === flag && v !== 'false'),
    value: (flag) => all.filter(([f]) => f === flag).at(-1)?.[1],
    values: (flag) => all.filter(([f]) => f === flag).map(([, v]) => v),
  };
}

/** An error of docker's own command line: exit 125 with its usage hint (jobbox reads it as permanent). */
function dockerUsage(verb: string, problem: string): Reply {
  return { code: 125, stderr: `docker: ${problem}\nSee 'docker ${verb} --help'.\n` };
}

/** The daemon's refusal to create a container: docker prints the usage hint after it too. */
function dockerDaemon(verb: string, problem: string): Reply {
  return { code: 125, stderr: `docker: Error response from daemon: ${problem}\nSee 'docker ${verb} --help'.\n` };
}

/** Every image's creation time unless a test sets its own (SimNode.created). */
const SIM_CREATED = new Date('2026-01-01T00:00:00Z');

/** A ref as repository@digest. */
function simCanonical(ref: string): string {
  return ref.includes('@') ? ref : `${simRepo(ref)}@${simDigest(ref)}`;
}

/** The registry's manifest digest of a tag ref (the sim's registry never moves a tag). */
export function simDigest(ref: string): string {
  return `sha256:${createHash('sha256').update(`manifest of ${ref}`).digest('hex')}`;
}

function simRepo(ref: string): string {
  const at = ref.indexOf('@');
  if (at >= 0) return ref.slice(0, at);
  const colon = ref.lastIndexOf(':');
  return colon > ref.lastIndexOf('/') ? ref.slice(0, colon) : ref;
}

function registryError(ref: string): string {
  const registry = ref.includes('/') ? ref.split('/')[0] : 'registry-1.docker.io';
  return `Error response from daemon: Get "https://${registry}/v2/": dial tcp: connect: connection refused\n`;
}

function unsupported(argv: string[]): Reply {
  return { code: 2, stderr: `sim: not a command line jobbox sends: ${argv.join(' ')}\n` };
}

/**
 * A Go template of docker's `--format`, the little of it jobbox uses: `{{.Field.Field}}` and
 * `{{.Label "key"}}`, each evaluated against `data`, with a newline after each item as docker prints.
 */
function template(format: string, data: Record<string, unknown>): Reply {
  let failed: string | undefined;
  const out = format.replace(/\{\{\s*(.*?)\s*\}\}/g, (_all, expr: string) => {
    const json = /^json\s+\.(\w+)$/.exec(expr);
    if (json) return JSON.stringify(data[json[1]!] ?? null);
    const call = /^\.(\w+)\s+"([^"]*)"$/.exec(expr);
    if (call) {
      const fn = data[call[1]!];
      if (typeof fn === 'function') return String((fn as (k: string) => unknown)(call[2]!));
      failed ??= expr;
      return '';
    }
    if (!/^(\.\w+)+$/.test(expr)) {
      failed ??= expr;
      return '';
    }
    let value: unknown = data;
    for (const field of expr.split('.').slice(1)) {
      if (value === null || typeof value !== 'object' || !(field in value)) {
        failed ??= expr;
        return '';
      }
      value = (value as Record<string, unknown>)[field];
    }
    if (typeof value === 'function' || (value !== null && typeof value === 'object')) {
      failed ??= expr;
      return '';
    }
    return String(value);
  });
  if (failed !== undefined) return { code: 1, stderr: `template: :1: executing "" at <${failed}>: can't evaluate field\n` };
  return { code: 0, stdout: `${out}\n` };
}

function splitOnce(text: string, sep: string): [string, string] {
  const i = text.indexOf(sep);
  return i < 0 ? [text, ''] : [text.slice(0, i), text.slice(i + 1)];
}

/** The kind a command counts as, in stats() and `received`. */
function kindOf(argv: string[]): string {
  const [cmd = '', ...args] = argv;
  if (cmd === 'install') return 'mkdir';
  if (cmd === 'flock') return kindOf(args.slice(3));
  if (cmd === 'timeout') return kindOf(args.slice(3));
  if (cmd === 'perl') return 'probe';
  if (cmd.split('/').at(-1) !== 'docker') return cmd;
  const [verb = '', sub] = args;
  if (verb === 'image') return `image ${sub ?? ''}`.trim();
  if (verb === 'run') return args.includes('--rm') ? 'accounts' : 'run';
  if (verb === 'ps') return args.some((a) => a.startsWith('name=')) ? 'ps name' : 'ps labels';
  return verb;
}

/** Resolves with the first line the client writes on stdin (newline included), or all of it at EOF. */
function firstLine(stream: ServerChannel): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const done = () => {
      stream.off('data', data);
      resolve(text);
    };
    const data = (d: Buffer) => {
      text += d.toString();
      const nl = text.indexOf('\n');
      if (nl >= 0) {
        text = text.slice(0, nl + 1);
        done();
      }
    };
    stream.on('data', data);
    stream.once('end', done);
    stream.once('close', done);
  });
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

// --- publickey authentication, as sshd does it -------------------------------------------------

// In bench P6 the simulated nodes' crypto shares the machine's cores with jobbox, where real
// nodes would each bring their own sshd's CPU: keep it as cheap as ssh2 allows. ssh2 signs and
// verifies with PEM text that OpenSSL decodes anew every time; these keys use KeyObjects made once.

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

/** Answers one authentication request as sshd would; true when it took the key. */
function publicKeyAuth(ctx: AuthContext, user: string, key: AuthorizedKey): boolean {
  if (ctx.method !== 'publickey' || ctx.username !== user || ctx.key.algo !== key.type || !ctx.key.data.equals(key.blob)) {
    ctx.reject(['publickey']);
    return false;
  }
  // No signature: the client only asks whether the key would do (SSH_MSG_USERAUTH_PK_OK).
  const ok = !ctx.signature || !ctx.blob || verify(null, ctx.blob, key.key, ctx.signature);
  if (ok) ctx.accept();
  else ctx.reject(['publickey']);
  return ok;
}

function parseOne(text: string, what: string): ParsedKey {
  const key = utils.parseKey(text);
  if (key instanceof Error) throw new Error(`${what}: ${key.message}`);
  return Array.isArray(key) ? key[0]! : key;
}
