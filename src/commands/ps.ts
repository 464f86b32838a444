// `jobbox ps [--nodes HOSTLIST] [--json]`, as root on the admin host (the one that runs gc):
// every jobbox container on the nodes, each beside its attempt's claim, job dir and scheduler
// state, and what `jobbox gc` would do with it. Read-only.
import { configPath, loadConfig } from '../config/load.js';
import { GC_GRACE_S } from '../config/defaults.js';
import { EXIT, JobboxError, noControls } from '../errors.js';
import { ask, jobDirs } from '../lifecycle/gc.js';
import { eachNode } from '../lifecycle/sessions.js';
import { commandFailed } from '../lifecycle/node.js';
import { listClaims } from '../ports/allocator.js';
import { attemptOver, hostfileHosts, jobsToAsk, parseKey, planGc } from '../plan/gc.js';
import { dialect } from '../plan/engine.js';
import { clusterPsArgv, parseClusterPs, planPs, psTable, type ContainerFact } from '../plan/ps.js';
import { refKey } from '../scheduler/answer.js';
import { expandHostlist } from '../scheduler/slurm.js';
import { asRoot, whichScheduler } from './admin.js';

export interface PsArgs {
  config: string | undefined;
  nodes: string | undefined;
  json: boolean;
  scheduler: string | undefined;
}

/** Exit 1 when a node could not be listed or the scheduler not asked: the picture is partial. */
export async function ps(args: PsArgs, env: NodeJS.ProcessEnv): Promise<number> {
  asRoot('ps', 'it reads port_dir and uses the admin ssh key');
  const scheduler = await whichScheduler(args.scheduler, env, 'ps');
  const config = await loadConfig(configPath(args.config, env));
  const [claims, dirs] = await Promise.all([listClaims(config.portDir), jobDirs(config.stateDir)]);
  // Without --nodes: every node a job dir's hostfile names, so a container of an attempt with
  // no dir left is seen only where a live job also runs. --nodes is the full sweep.
  const nodes = args.nodes
    ? [...new Set(expandHostlist(args.nodes, '--nodes'))]
    : [...new Set(dirs.flatMap((d) => (d.hostfile === undefined ? [] : hostfileHosts(d.hostfile) ?? [])))].sort();
  if (nodes.length === 0) throw new JobboxError('ps', 'no job dir names a node, so there is none to ask: give --nodes', config.stateDir, EXIT.usage);

  const listed = await eachNode(config, nodes, async (s) => {
    const argv = [config.engine, ...clusterPsArgv(dialect(config.engine))];
    const r = await s.run(argv, config.connectTimeoutMs);
    if (r.code !== 0) throw commandFailed(s.host, argv, r, 'label=org.jobbox.job');
    return parseClusterPs(s.host, r.stdout);
  });
  const containers: ContainerFact[] = listed.flatMap((r) => (r.ok ? r.value : []));
  const unreachable = nodes.flatMap((node, i) => (listed[i]!.ok ? [] : [{ node, error: (listed[i] as { error: string }).error }]));

  const refs = new Map(jobsToAsk(claims, dirs).map((r) => [refKey(r), r]));
  for (const c of containers) {
    const job = c.key === undefined ? undefined : parseKey(c.key);
    if (job) refs.set(refKey(job), { id: job.id, index: job.index });
  }
  const answers = await ask(scheduler, [...refs.values()], env, config.fanout);
  const nowMs = Date.now();
  const actions = planGc({ scheduler, claims, dirs, answers, nowMs, graceMs: GC_GRACE_S * 1000, sweepNodes: [] });
  const rows = planPs(containers, {
    claimed: new Set(claims.map((c) => c.claim)),
    dirs: new Set(dirs.filter((d) => d.isDirectory).map((d) => d.name)),
    actions: new Map(actions.map((a) => [a.key, a])),
    engine: config.engine,
    over: (key) => {
      const job = parseKey(key);
      return job ? attemptOver(scheduler, answers.get(refKey(job)), job.attempt).over : undefined;
    },
    nowMs,
  });
  const unanswered = [...answers.values()].some((a) => a.kind === 'failed');

  if (args.json) {
    // JSON escapes C0 controls; DEL and C1 too, as in the table.
    process.stdout.write(`${noControls(JSON.stringify({ nodes, unreachable, containers: rows }))}\n`);
  } else {
    process.stdout.write(rows.length > 0 ? `${psTable(rows)}\n` : `jobbox: ps: no jobbox container on ${nodes.join(' ')}\n`);
    for (const u of unreachable) process.stdout.write(`jobbox: ps: ${u.node}: not listed: ${u.error}\n`);
  }
  return unreachable.length > 0 || unanswered ? EXIT.transient : 0;
}
