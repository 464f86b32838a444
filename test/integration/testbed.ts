import { execa, type Options } from 'execa';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../testbed/testbed.sh', import.meta.url));

export interface TestbedStatus {
  up: boolean;
  dir: string;
  config: string;
  registry: string;
  registryUp: boolean;
  bridgeIp: string;
  nodes: { name: string; ip: string; pid: number; sshd: boolean; dockerd: boolean }[];
}

export function testbed(args: string[], options: Options = {}) {
  return execa('bash', [script, ...args], options);
}

export async function testbedStatus(): Promise<TestbedStatus> {
  const { stdout } = await testbed(['status', '--json']);
  return JSON.parse(String(stdout)) as TestbedStatus;
}

/** Runs argv as root on a node, as a root process there would; rejects on non-zero exit. */
export async function onNode(node: string, argv: string[], options: Options = {}): Promise<string> {
  const { stdout } = await testbed(['exec', node, '--', ...argv], options);
  return String(stdout).trim();
}
