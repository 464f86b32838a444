// `jobbox doctor [--nodes HOSTLIST] [--json]`, as root on the admin host: checks each node the
// way an admin would before it takes jobs (plan/doctor.ts says what and why), and the registry
// and every configured image once. Changes nothing on the nodes but a throwaway container, and
// pulls nothing but each image on the first node, where the image check needs it.
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { configPath, loadConfig } from '../config/load.js';
import { runRef } from '../config/ref.js';
import type { Image } from '../config/types.js';
import { EXIT, JobboxError, formatError, noControls } from '../errors.js';
import { registryDigest } from '../exec/registry.js';
import { ensureImage, imageAccounts } from '../lifecycle/node.js';
import { eachNode } from '../lifecycle/sessions.js';
import { openLog } from '../log.js';
import { dialect } from '../plan/engine.js';
import { checksTable, engineInfoArgv, factsArgv, judgeEngine, judgeFacts, judgeMemlock, largestMemlock, memlockArgv, parseFacts, sortChecks, type Check } from '../plan/doctor.js';
import { expandHostlist } from '../scheduler/slurm.js';
import { asRoot } from './admin.js';

export interface DoctorArgs {
  config: string | undefined;
  nodes: string | undefined;
  json: boolean;
}

const why = (err: unknown) => formatError(err).line.replace(/^jobbox: /, '');

/** Exit 1 when any check fails; warnings alone leave it 0. */
export async function doctor(args: DoctorArgs, env: NodeJS.ProcessEnv): Promise<number> {
  asRoot('doctor', 'it uses the admin ssh key and checks root-owned dirs');
  const config = await loadConfig(configPath(args.config, env));
  const nodes = args.nodes ? [...new Set(expandHostlist(args.nodes, '--nodes'))] : [hostname()];
  const log = (await openLog(config.logFile, config.logLevel)).child({ doctor: true });
  const rows: Check[] = [];

  // The registry, from here, as a job's start asks it: each image's tag to its digest.
  const pinned: Image[] = [];
  for (const image of config.images.values()) {
    try {
      const digest = await registryDigest(config, image.ref);
      pinned.push({ ...image, digest });
      rows.push({ check: 'registry', node: '-', status: 'ok', detail: `${image.alias}: ${image.ref} is ${digest}` });
    } catch (err) {
      rows.push({ check: 'registry', node: '-', status: 'fail', detail: `${image.alias}: ${why(err)}` });
    }
  }

  // The same for every node: the most memory a queue's container may lock.
  const memlock = largestMemlock(config);
  const d = dialect(config.engine);
  // A marker in each shared dir: a node that sees it sees the same directory.
  const marker = `.jobbox-doctor-${randomBytes(6).toString('hex')}`;
  const markers = [config.portDir, config.stateDir].map((d) => join(d, marker));
  // O_EXCL: never through a name someone planted.
  await Promise.all(markers.map((m) => writeFile(m, '', { mode: 0o600, flag: 'wx' }).catch(() => undefined)));
  try {
    const listed = await eachNode(config, nodes, async (s) => {
      const out: Check[] = [];
      const engine = await s.run([config.engine, ...engineInfoArgv(d)], config.connectTimeoutMs);
      out.push(judgeEngine(s.host, engine.code ?? -1, engine.stdout, engine.stderr));
      const t0 = Date.now();
      const facts = await s.run(factsArgv(config, marker), config.connectTimeoutMs);
      const t1 = Date.now();
      if (facts.code !== 0) throw new JobboxError(`${s.host}: facts`, `exit ${facts.code}`, facts.stderr.trim().split('\n')[0] ?? '');
      const known = parseFacts(facts.stdout);
      out.push(...judgeFacts(config, s.host, known, (t0 + t1) / 2, t1 - t0));
      if (engine.code === 0 && pinned[0] && memlock) {
        const r = await s.run([config.engine, ...memlockArgv(d, known.limits, runRef(pinned[0]), memlock.bytes, `jobbox-check-${randomBytes(6).toString('hex')}`)], config.startTimeoutMs);
        out.push(judgeMemlock(s.host, memlock, r.code ?? -1, r.stdout, r.stderr));
      }
      return out;
    });
    nodes.forEach((node, i) => {
      const r = listed[i]!;
      if (r.ok) rows.push(...r.value);
      else rows.push({ check: 'reach', node, status: 'fail', detail: r.error });
    });

    // Each image on the first node: it must hold what a job needs, sshd and a POSIX shell.
    const [first] = await eachNode(config, [nodes[0]!], async (s) => {
      const out: Check[] = [];
      for (const image of pinned) {
        try {
          const { sshd } = await imageAccounts(s, config, image, log, () => ensureImage(s, config, image));
          out.push({ check: 'image', node: s.host, status: 'ok', detail: `${image.alias}: OpenSSH ${sshd?.major}.${sshd?.minor} and /bin/sh` });
        } catch (err) {
          out.push({ check: 'image', node: s.host, status: 'fail', detail: `${image.alias}: ${why(err)}` });
        }
      }
      return out;
    });
    if (first!.ok) rows.push(...first!.value);
  } finally {
    await Promise.all(markers.map((m) => rm(m, { force: true })));
  }

  const sorted = sortChecks(rows);
  process.stdout.write(args.json ? `${noControls(JSON.stringify({ nodes, checks: sorted }))}\n` : `${checksTable(sorted)}\n`);
  const failed = sorted.filter((r) => r.status === 'fail').length;
  if (!args.json) process.stdout.write(`jobbox: doctor: ${failed === 0 ? 'no check failed' : `${failed} check${failed > 1 ? 's' : ''} failed`} on ${nodes.join(' ')}\n`);
  return failed > 0 ? EXIT.transient : 0;
}

