import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { NODES } from '../support/lsf-fixture.js';
import { INSTALL, onNode, testbedStatus, waitFor, type TestbedStatus } from '../support/testbed.js';

// `jobbox exec` and `jobbox shell` from within a real Slurm allocation: salloc on this host,
// srun steps on the nodes, as a user works interactively before submitting a batch job.
const HOME = '/home/jbuser1';
const CLI = `${INSTALL}/dist/cli.js`;
let tb: TestbedStatus;
beforeAll(async () => {
  tb = await testbedStatus();
  expect(tb.slurm).toBe(true);
});

const asUser = (argv: string[]) => ['runuser', '-u', 'jbuser1', '--', 'env', `SLURM_CONF=${tb.slurmConf}`, 'PATH=/usr/bin:/bin', ...argv];
const jobboxContainers = async () => (await Promise.all(NODES.map((n) => onNode(n, ['docker', 'ps', '-aq', '--filter', 'label=org.jobbox.owner=jbuser1'])))).join('').trim();

// The steps run on node1, so the allocation names it: without -w, a node1 still completing the
// last test's job gives an allocation of node2 and node3, where srun -w node1 fails.
describe('jobbox exec and jobbox shell in an salloc allocation', () => {
  it('exec runs a command in the first container, or in --node\'s, with its exit status; the allocation\'s end takes the containers', async () => {
    const inner = [
      `/usr/bin/node ${CLI} exec --config ${tb.config} -- cat /proc/1/comm`,
      `/usr/bin/node ${CLI} exec --config ${tb.config} --node node2 -- sh -c 'echo "on $(hostname) in $(cat /proc/1/comm)"; exit 4'`,
      'echo "exit $?"',
      `/usr/bin/node ${CLI} exec --config ${tb.config} --node node9 -- true`,
    ].join('; ');
    const [cmd, ...args] = asUser(['salloc', '-N2', '-w', 'node1', '-p', 'normal', '-C', 'docker-deb12', 'srun', '-N1', '-n1', '-w', 'node1', 'sh', '-c', inner]);
    const r = await execa(cmd!, args, { cwd: HOME, reject: false });
    expect(r.stdout).toBe('docker-init\non node2 in docker-init\nexit 4');
    expect(r.stderr).toMatch(/^jobbox: --node: not a node of job \d+ \(its nodes: node1 node2\): node9$/m);
    await waitFor('the allocation\'s containers to go', async () => (await jobboxContainers()) === '', 60);
  });

  it('shell opens a login shell on a terminal in the first container (srun --pty)', async () => {
    const session = `jobbox-shell-${process.pid}`;
    const argv = asUser(['salloc', '-N2', '-w', 'node1', '-p', 'normal', '-C', 'docker-deb12', 'srun', '-N1', '-n1', '-w', 'node1', '--pty', '/usr/bin/node', CLI, 'shell', '--config', tb.config]);
    const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    await execa('tmux', ['new-session', '-d', '-s', session, '-x', '100', '-y', '30', `cd ${HOME} && ${quoted}; echo "salloc exit $?"; sleep 600`]);
    const screen = async () => (await execa('tmux', ['capture-pane', '-p', '-t', session], { reject: false })).stdout;
    try {
      // A timeout shows the screen: what salloc, srun or the shell said instead.
      const until = (what: string, test: (text: string) => boolean) =>
        waitFor(what, async () => test(await screen()), 90).catch(async (err: unknown) => {
          throw new Error(`${String(err)}; the screen:\n${await screen()}`);
        });
      await until('a prompt in the container', (text) => /\$$/m.test(text));
      await execa('tmux', ['send-keys', '-t', session, 'tty; stty size; cat /proc/1/comm; exit 3', 'Enter']);
      await until('the shell to end', (text) => /salloc exit/.test(text));
      const text = await screen();
      expect(text).toMatch(/^\/dev\/pts\/\d+\n30 100\ndocker-init$/m);
      expect(text).toMatch(/^salloc exit 3$/m);
    } finally {
      await execa('tmux', ['kill-session', '-t', session], { reject: false });
    }
    await waitFor('the allocation\'s containers to go', async () => (await jobboxContainers()) === '', 60);
  });
});
