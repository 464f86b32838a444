// P6's simulated nodes, in a process of their own so that the jobbox side's memory is measured
// alone: a thin shell around test/support/sim-cluster.ts, driven by the bench over IPC.
import { readFileSync } from 'node:fs';
import { nodeIp, type SimCluster, startSimCluster } from '../test/support/sim-cluster.js';
import type { SimReady, SimStart } from './p6-shared.js';

let cluster: SimCluster | undefined;

async function start(m: SimStart): Promise<SimReady> {
  cluster = await startSimCluster({
    nodes: Array.from({ length: m.nodes }, (_, i) => nodeIp(i)),
    adminPort: m.adminPort,
    hostKey: readFileSync(m.hostKeyFile, 'utf8'),
    adminPub: readFileSync(m.adminPubFile, 'utf8'),
    latencyMs: m.latencyMs,
  });
  return { ready: true, listening: cluster.nodes.length };
}

process.on('message', (m: SimStart | { stats: [number, number] }) => {
  if ('stats' in m) {
    process.send!(cluster!.stats(m.stats[0], m.stats[1]));
    return;
  }
  start(m).then(
    (ready) => process.send!(ready),
    (err: unknown) => {
      process.stderr.write(`p6 sim: ${String(err)}\n`);
      process.exit(1);
    },
  );
});
// The bench going away takes the sim with it.
process.on('disconnect', () => process.exit(0));
