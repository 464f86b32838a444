import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/parse.js';
import { quote } from '../../src/quote.js';
import { bindTestArgv, nodeSteps, pullArgv } from '../../src/plan/node.js';

const config = parseConfig(
  `
[jobbox]
pull_timeout = 120
device_dir = /dev/infiniband
[queue normal]
default_image = deb12
[image deb12]
ref = reg:5000/hpc/deb12:r1
`,
  'test.ini',
);
const image = config.images.get('deb12')!;
const job = { id: '4711', index: 3, attempt: 'node1' };

describe('nodeSteps', () => {
  it('is every command a node is sent besides docker run, as the dry run prints them', () => {
    expect(nodeSteps(config, job, image)
      .map((s) => `# ${s.when}\n${s.argv[0] === 'perl' ? 'perl -e <BIND_TEST>' : quote(s.argv)}`).join('\n')).toMatchSnapshot();
  });

  it('waits for the pull lock no longer than pull_timeout', () => {
    expect(pullArgv(config, image)).toEqual(['flock', '-w', '120', '/run/jobbox/pull.lock', 'docker', 'pull', '--quiet', 'reg:5000/hpc/deb12:r1']);
  });
});

// The bind test runs on the nodes with perl: checked here against this host's own ports.
describe('bindTestArgv', () => {
  const test = (stdin: string) => execFileSync(bindTestArgv()[0]!, bindTestArgv().slice(1), { input: stdin, encoding: 'utf8' });
  it('says free for a port nothing holds, taken for one a listener holds', async () => {
    const net = await import('node:net');
    const server = net.createServer().listen(0, '0.0.0.0');
    await new Promise((r) => server.once('listening', r));
    const port = (server.address() as { port: number }).port;
    try {
      expect(test(`${port}\n`)).toBe('taken\n');
    } finally {
      server.close();
    }
    await new Promise((r) => server.once('close', r));
    expect(test(`${port}\n`)).toBe('free\n');
  });

  it('refuses anything but a port number on its stdin', () => {
    expect(() => execFileSync('perl', ['-e', bindTestArgv()[2]!], { input: '22; rm -rf /\n', stdio: 'pipe' })).toThrow(/port: 22; rm -rf/);
  });
});
