import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import { Session } from '../../src/exec/ssh.js';
import { ed25519KeyPair } from '../../src/lifecycle/keys.js';

const { Server, utils } = ssh2;

type KeyPair = Awaited<ReturnType<typeof ed25519KeyPair>>;
const keys = await Promise.all(['test-host', 'test-user', 'test-other'].map((c) => ed25519KeyPair(c)));

// An in-process sshd that takes one user key, verifies its signature, and answers exec.
describe('Session against an ssh2 server', () => {
  // Top-level await: the keys are made before the tests are collected.
  const [host, user, other] = keys as [KeyPair, KeyPair, KeyPair];
  const authorized = utils.parseKey(user.public) as ssh2.ParsedKey;
  const methods: string[] = [];
  let server: InstanceType<typeof Server>;
  let port = 0;
  const hostKeys = [host.public.split(' ')[1]!];

  beforeAll(async () => {
    server = new Server({ hostKeys: [host.private] }, (client) => {
      client.on('error', () => {});
      client.on('authentication', (ctx) => {
        methods.push(ctx.method);
        if (ctx.method !== 'publickey' || ctx.username !== 'root' || !ctx.key.data.equals(authorized.getPublicSSH())) return ctx.reject(['publickey']);
        if (!ctx.signature || !ctx.blob) return ctx.accept();
        return authorized.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true ? ctx.accept() : ctx.reject(['publickey']);
      });
      client.on('session', (accept) => {
        accept().on('exec', (acceptExec, _reject, info) => {
          const stream = acceptExec();
          stream.write(`ran: ${info.command}\n`);
          stream.exit(3);
          stream.end();
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const target = (privateKey: string, keys = hostKeys) => ({ host: '127.0.0.1', port, username: 'root', privateKey, hostKeys: keys, timeoutMs: 5000 });

  it('logs in with the key (publickey first, no "none" round trip), twice with one parsed key', async () => {
    for (let i = 0; i < 2; i++) {
      methods.length = 0;
      const s = await Session.connect(target(user.private));
      expect(await s.run(['echo', 'a b'], 5000)).toEqual({ code: 3, stdout: "ran: echo 'a b'\n", stderr: '' });
      s.close();
      expect(methods).toEqual(['publickey', 'publickey']); // the query, then the signed request
    }
  });

  it('refuses a host key that is not pinned', async () => {
    await expect(Session.connect(target(user.private, [other.public.split(' ')[1]!]))).rejects.toThrow(/ssh 127\.0\.0\.1:\d+: .*verification failed/i);
  });

  it('fails on a key the server does not take', async () => {
    await expect(Session.connect(target(other.private))).rejects.toThrow(/All configured authentication methods failed/);
  });

  // The setup's barrier: the server's PK_OK to the key, offered without a signature, and no more.
  it('accepts: resolves at the PK_OK, and sends no signed request', async () => {
    methods.length = 0;
    const signatures: boolean[] = [];
    const seen = (client: ssh2.Connection) => client.on('authentication', (ctx) => void signatures.push(ctx.method === 'publickey' && ctx.signature !== undefined));
    server.on('connection', seen);
    try {
      await Session.accepts(target(user.private));
      await new Promise((r) => setTimeout(r, 100));
      expect([methods, signatures]).toEqual([['publickey'], [false]]);
    } finally {
      server.off('connection', seen);
    }
  });

  it('accepts: refuses a host key that is not pinned, and a key the server does not take', async () => {
    await expect(Session.accepts(target(user.private, [other.public.split(' ')[1]!]))).rejects.toThrow(/ssh 127\.0\.0\.1:\d+: .*verification failed/i);
    await expect(Session.accepts(target(other.private))).rejects.toThrow(/All configured authentication methods failed/);
  });

  // A peer the barrier must not wait on for ever: ssh2 reports neither of these as an error,
  // and clears its own ready timeout when they happen.
  it('accepts: a peer that sends its version line and hangs up fails at once', async () => {
    const held: Socket[] = [];
    const liar = createServer((socket) => {
      held.push(socket);
      socket.end('SSH-2.0-OpenSSH_9.2p1\r\n');
    });
    await new Promise<void>((resolve) => liar.listen(0, '127.0.0.1', resolve));
    try {
      const at = { ...target(user.private), port: (liar.address() as AddressInfo).port };
      await expect(Session.accepts(at)).rejects.toThrow(/ssh 127\.0\.0\.1:\d+: the connection closed before the login: root/);
      await expect(Session.connect(at)).rejects.toThrow(/the connection closed before the login/);
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => liar.close(() => resolve()));
    }
  });

  it('accepts: a server with the host key that disconnects at the login fails at once', async () => {
    const rude = new Server({ hostKeys: [host.private] }, (client) => {
      client.on('error', () => {});
      client.on('authentication', () => client.end());
    });
    await new Promise<void>((resolve) => rude.listen(0, '127.0.0.1', resolve));
    try {
      const at = { ...target(user.private), port: (rude.address() as AddressInfo).port };
      await expect(Session.accepts(at)).rejects.toThrow(/the connection closed before the login/);
    } finally {
      await new Promise<void>((resolve) => rude.close(() => resolve()));
    }
  });

  it('fails on a key that cannot be parsed', async () => {
    await expect(Session.connect(target('not a key'))).rejects.toThrow(/Cannot parse privateKey/);
  });

  // Anyone on a node can listen on a port before the job's sshd binds it and then say nothing.
  // The connect times out, ssh2 emits a second error when the client is ended, and that must
  // not kill the process: it is a root hook in the middle of a start.
  it('a peer that accepts and never speaks fails the connect, and nothing is thrown later', async () => {
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const uncaught: unknown[] = [];
    const seen = (err: unknown) => uncaught.push(err);
    process.on('uncaughtException', seen);
    try {
      const silentPort = (silent.address() as AddressInfo).port;
      await expect(Session.connect({ ...target(user.private), port: silentPort, timeoutMs: 300 })).rejects.toThrow(/ssh 127\.0\.0\.1:\d+: Timed out while waiting for handshake/);
      // The late error comes when the peer's side closes.
      for (const socket of held) socket.destroy();
      await new Promise((r) => setTimeout(r, 300));
      expect(uncaught).toEqual([]);
    } finally {
      process.off('uncaughtException', seen);
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
