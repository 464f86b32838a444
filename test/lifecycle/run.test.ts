import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Job } from '../../src/job/job.js';
import { runInFirstContainer } from '../../src/lifecycle/run.js';
import { shellExports } from '../../src/plan/env.js';
import { jobPaths } from '../../src/plan/job-files.js';

const job = (env: Record<string, string> = {}): Job => ({
  id: '4242', index: 7, attempt: 'node1', queue: 'normal', cwd: '/', image: undefined, env,
  owner: { name: 'me', uid: process.getuid!(), gid: process.getgid!(), gids: [], home: '/', shell: '/bin/sh' },
  hosts: [{ name: 'node1', slots: 1 }],
});

describe('runInFirstContainer', () => {
  it('without a running container, names the command that tells why, and sends nothing', async () => {
    const state = await mkdtemp(join(tmpdir(), 'jobbox-run-'));
    try {
      const paths = jobPaths(state, job());
      await expect(runInFirstContainer(job(), paths, { command: 'id' })).rejects.toThrow(
        expect.objectContaining({ message: `jobbox: run: no running job container (pre-exec or Prolog did not finish; see jobbox status 4242[7]): ${paths.dir}`, exitCode: 1 }),
      );
    } finally {
      await rm(state, { recursive: true, force: true });
    }
  });
});

// The run phase against a stand-in `ssh` first on PATH that plays the client and the job's
// sshd: it records its argv and passes on only what SendEnv names (the job's sshd accepts
// exactly those, plan/job-files.ts), then runs the remote command with sh as the session would.
describe('runInFirstContainer: X11 (docs/x11.md)', () => {
  let state: string;
  let bin: string;
  const path = process.env.PATH;
  beforeAll(async () => {
    state = await mkdtemp(join(tmpdir(), 'jobbox-run-x11-'));
    bin = join(state, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'ssh'), `#!/bin/sh
printf '%s\\n' "$@" > "$FAKE_SSH_DIR/argv"
keep=
while [ $# -gt 2 ]; do
  case $1 in -o) case $2 in SendEnv=*) n=\${2#SendEnv=}; eval "s=\\\${$n+x}"; [ -n "$s" ] && eval "keep=\\"\\$keep $n=\\\\\\"\\\\\\$$n\\\\\\"\\""; esac; shift ;; esac
  shift
done
eval "exec env -i PATH=/usr/bin:/bin $keep sh -c \\"\\\$2\\"" >"$FAKE_SSH_DIR/out" 2>&1 </dev/null
`);
    await chmod(join(bin, 'ssh'), 0o755);
    process.env.PATH = `${bin}:${path}`;
    process.env.FAKE_SSH_DIR = state;
  });
  afterAll(async () => {
    process.env.PATH = path;
    delete process.env.FAKE_SSH_DIR;
    await rm(state, { recursive: true, force: true });
  });

  /** Runs `command` as the starter would, with `setupEnv` in the job's userenv and `runEnv` as the starter's own. */
  async function run(setupEnv: Record<string, string>, runEnv: Record<string, string>, command: string) {
    const j = job(runEnv);
    const paths = jobPaths(state, j);
    await mkdir(paths.dir, { recursive: true });
    await writeFile(paths.cwd, `${state}\n`);
    await writeFile(paths.userEnv, shellExports(setupEnv));
    const code = await runInFirstContainer(j, paths, { command });
    const argv = (await readFile(join(state, 'argv'), 'utf8')).split('\n');
    const remote = argv.at(-2)!;
    // The session's pgid file, on this machine's /tmp here.
    await rm(/\/tmp\/\.jobbox-[0-9a-f]+\.pgid/.exec(remote)![0], { force: true });
    return { code, argv: argv.slice(0, -2), remote, out: await readFile(join(state, 'out'), 'utf8') };
  }
  const show = 'printf "%s|%s\\n" "${DISPLAY-unset}" "${XAUTHORITY-unset}"';

  it('the starter\'s DISPLAY and XAUTHORITY reach the command over the one it was set up with, in the client\'s environment, not its command line', async () => {
    const r = await run({ DISPLAY: 'localhost:11.0', FOO: 'bar' }, { DISPLAY: 'localhost:10.0', XAUTHORITY: state }, `${show}; echo $FOO`);
    expect(r).toMatchObject({ code: 0, out: `localhost:10.0|${state}\nbar\n` });
    expect(r.argv).toEqual(['-F', `${state}/4242.7.node1/ssh_config`, '-o', 'SendEnv=JOBBOX_X11_DISPLAY', '-o', 'SendEnv=JOBBOX_X11_XAUTHORITY', '-T', '--', 'node1']);
    expect(r.remote).not.toContain('localhost:10.0');
  });

  it('without a DISPLAY of its own the starter leaves the job\'s as the setup wrote them', async () => {
    const r = await run({ DISPLAY: 'localhost:11.0', XAUTHORITY: state }, {}, show);
    expect(r).toMatchObject({ code: 0, out: `localhost:11.0|${state}\n` });
  });

  it('an XAUTHORITY the container cannot read: one line, and X clients fall back to ~/.Xauthority; the command still runs', async () => {
    const r = await run({}, { DISPLAY: 'localhost:12.0', XAUTHORITY: '/tmp/.Xauthority-jobbox-none' }, show);
    expect(r).toMatchObject({ code: 0, out: 'jobbox: XAUTHORITY: not readable in the container, X clients read ~/.Xauthority instead: /tmp/.Xauthority-jobbox-none\nlocalhost:12.0|unset\n' });
  });

  it('a DISPLAY that cannot travel (a newline) is said in one line, and the command runs without it', async () => {
    const lines: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    try {
      const r = await run({}, { DISPLAY: 'localhost:10.0\nX=1' }, show);
      expect(r).toMatchObject({ code: 0, out: 'unset|unset\n' });
    } finally {
      spy.mockRestore();
    }
    expect(lines).toEqual(['jobbox: DISPLAY: not passed to the container (a newline or NUL in it, or longer than 64 KiB): localhost:10.0\\nX=1\n']);
  });

  it('a user\'s own JOBBOX_X11_* never reaches the session', async () => {
    process.env.JOBBOX_X11_DISPLAY = 'forged:1';
    try {
      const r = await run({}, {}, show);
      expect(r).toMatchObject({ code: 0, out: 'unset|unset\n' });
    } finally {
      delete process.env.JOBBOX_X11_DISPLAY;
    }
  });
});
