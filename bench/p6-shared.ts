// P6's three processes (the bench, the simulated nodes, the jobbox side) share these shapes.

/** Node i (0-based) of the simulation: its own loopback address (all of 127/8 is loopback on Linux). */
export function nodeIp(i: number): string {
  return `127.77.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`;
}

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

/** Sim → bench on `{ stats: true }`: per command kind, what was seen since the last `{ reset: true }`. */
export interface SimStats {
  /** kind → [count, first arrival ms, last reply ms] (Date.now() clock, shared by all processes here). */
  commands: Record<string, [number, number, number]>;
  /** Connections accepted: admin sshd, job sshd. */
  connections: { admin: number; job: number };
  containers: number;
  /** The sim process's CPU time (user + system) since it started, ms. */
  cpuMs: number;
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
