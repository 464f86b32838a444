// P6's three processes (the bench, the simulated nodes, the jobbox side) share these shapes.
// The simulation itself is test/support/sim-cluster.ts, which the unit tests run in-process.
export { nodeIp, type SimStats } from '../test/support/sim-cluster.js';

/** Bench → sim: listen as `nodes` nodes, answering `adminPort` with `hostKeyFile`, authorizing `adminPub`. */
export interface SimStart {
  nodes: number;
  adminPort: number;
  hostKeyFile: string;
  adminPubFile: string;
  latencyMs: number;
}

/** Sim → bench, once every node listens. */
export interface SimReady {
  ready: true;
  listening: number;
}

/** Bench → worker: one case, run `reps` times (plus one untimed warm-up on `warmupNodes`). */
export interface WorkerJob {
  configText: string;
  configFile: string;
  nodes: number;
  reps: number;
  warmupNodes: number;
  /** Job ids start here, one per repetition, so no two runs share a name or a claim. */
  firstId: number;
}

/** Worker → bench. Times in ms; RSS in MB. */
export interface WorkerResult {
  setup: number[];
  teardown: number[];
  /** process.resourceUsage().maxRSS: the peak of the whole worker process. */
  maxRssMb: number;
  /** Per timed repetition (setup + teardown), the highest process.memoryUsage().rss sampled every 50 ms. */
  repRssMb: number[];
  /** CPU time (user + system) of the worker during each timed setupJob. */
  setupCpu: number[];
  /** RSS once the modules are loaded, before the first job. */
  idleRssMb: number;
  /** Date.now() at the start and end of the last timed setupJob, to line up with the sim's stats. */
  lastSetup: [number, number];
  /** The first failure; the lists above hold the repetitions that completed before it. */
  error?: string;
}
