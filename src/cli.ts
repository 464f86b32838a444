#!/usr/bin/env node
// The dispatcher: maps subcommands onto src/commands/*, and is the one place an error becomes
// output and an exit code. Command modules are imported inside handlers so each hook loads
// only what it runs.
import { ENGINE, GC_GRACE_S } from './config/defaults.js';
import { EXIT, JobboxError, formatError } from './errors.js';
import { hookEnv, savedEnv } from './hook-env.js';

// package.json's version, written in by the bundler (packaging/bundle.mjs).
declare const JOBBOX_VERSION: string;

// The hooks a scheduler runs for every job, by the name they are called with: `<scheduler>
// <phase hook>`, as in the tree under src/commands/. Both the parser below and the fast path
// at the end dispatch through this table. The root ones take the job's environment from the
// launcher (src/hook-env.ts), never from process.env.
const hooks = {
  'lsf pre-exec': async (config: string | undefined) => {
    const { preExec } = await import('./commands/lsf/pre-exec.js');
    await preExec(config, false, hookEnv('lsf pre-exec'));
  },
  'lsf starter': async (config: string | undefined, command: string[], jobFile = false) => {
    const { starter, starterFromJobFile } = await import('./commands/lsf/starter.js');
    process.exitCode = jobFile ? await starterFromJobFile(config, process.env) : await starter(config, command, process.env);
  },
  'lsf post-exec': async (config: string | undefined) => {
    const { postExec } = await import('./commands/lsf/post-exec.js');
    await postExec(config, hookEnv('lsf post-exec'));
  },
  'slurm prolog': async (config: string | undefined) => {
    const { prolog } = await import('./commands/slurm/prolog.js');
    await prolog(config, hookEnv('slurm prolog'));
  },
  'slurm epilog': async (config: string | undefined) => {
    const { epilog } = await import('./commands/slurm/epilog.js');
    await epilog(config, hookEnv('slurm epilog'));
  },
};
type Hook = keyof typeof hooks;

/**
 * The exact argv the hook shims pass (`lsf pre-exec [--config F]`, `lsf starter [--config F]
 * -- CMD…`, …) needs no parser: yargs costs ~55 ms of every job's start and end (bench P2).
 * Any other shape, --help and --dry-run included, goes through yargs.
 */
function hookCall(argv: string[]): { hook: Hook; config: string | undefined; command: string[]; jobFile?: boolean } | undefined {
  const name = argv.slice(0, 2).join(' ');
  if (!Object.hasOwn(hooks, name)) return undefined;
  let i = 2;
  let config: string | undefined;
  if (argv[i] === '--config' && argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('-')) {
    config = argv[i + 1];
    i += 2;
  }
  const rest = argv.slice(i);
  if (name === 'lsf starter' && rest.length === 1 && rest[0] === '--job-file') return { hook: name, config, command: [], jobFile: true };
  if (name === 'lsf starter') return rest[0] === '--' ? { hook: name, config, command: rest.slice(1) } : undefined;
  return rest.length === 0 ? { hook: name as Hook, config, command: [] } : undefined;
}

// Options two commands share: status and logs name a job alike; gc and ps ask the same scheduler.
const jobPositional = { type: 'string', demandOption: true, describe: 'the job id, or id[index] for an LSF array element' } as const;
const indexOption = { type: 'number', describe: 'the LSF array index (default 0)' } as const;
const schedulerOption = { type: 'string', choices: ['lsf', 'slurm'], describe: 'whom to ask (default: the one whose client, bjobs or scontrol, is on PATH)' } as const;

/** `jobbox slurm batch --script S -- ARGS…`, the wrapped batch script's line. */
const batchOptions = { script: { type: 'string', demandOption: true, describe: 'the wrapped batch script ($0)' } } as const;
async function batchStep(a: Record<string, unknown>): Promise<void> {
  const { batch } = await import('./commands/slurm/batch.js');
  const config = typeof a.config === 'string' ? a.config : undefined;
  process.exitCode = await batch(config, String(a.script), ((a['--'] as unknown[] | undefined) ?? []).map(String), process.env);
}

async function main(argv: string[]): Promise<void> {
  const { default: yargs } = await import('yargs');
  await yargs(argv)
    // Everything after `--` is the user's command, never options of ours.
    .parserConfiguration({ 'populate--': true })
    // English whatever the caller's LANG: yargs's translations are not in the bundle.
    .detectLocale(false)
    .scriptName('jobbox')
    .usage('$0 <command>\n\nRuns batch jobs inside per-job containers on every allocated node (LSF and Slurm).')
    .option('config', {
      type: 'string',
      describe: 'config file (else $JOBBOX_CONFIG, else /etc/jobbox/jobbox.ini)',
    })
    .command('image', 'manage images', (y) =>
      y
        .command(
          'import <dir> <ref>',
          'stream a chroot tree into the engine as an image (tar -C dir -c . | docker import -)',
          (c) =>
            c
              .positional('dir', { type: 'string', demandOption: true, describe: 'root of the chroot tree' })
              .positional('ref', { type: 'string', demandOption: true, describe: 'image reference, with its registry' })
              .option('push', { type: 'boolean', default: false, describe: 'push to the registry after import' })
              .option('engine', { type: 'string', default: ENGINE, describe: 'docker-compatible engine CLI' }),
          async (a) => {
            const { imageImport } = await import('./commands/image-import.js');
            await imageImport({ dir: a.dir, ref: a.ref, push: a.push, engine: a.engine, tty: process.stderr.isTTY });
          },
        )
        .command(
          'resolve <image>',
          "judge an image request as a submit does, and print what the job carries: the alias, or the image pinned to its digest where the queue pins at submit or the image is a user's (job_submit.lua runs this: a refusal names the next step in sbatch's options)",
          (c) =>
            c
              .positional('image', { type: 'string', demandOption: true, describe: 'an alias or a reference, optionally @sha256:…' })
              .option('queue', { type: 'string', array: true, demandOption: true, describe: 'each queue (partition) the job may start in' }),
          async (a) => {
            const { imageResolve } = await import('./commands/image-resolve.js');
            await imageResolve(a.image, a.queue, a.config, process.env);
          },
        )
        .command(
          'prefetch <alias>',
          'pin the alias to its digest on the first node, then make every other node hold that digest; a line per node',
          (c) =>
            c
              .positional('alias', { type: 'string', demandOption: true, describe: 'an [image] section of the config' })
              .option('nodes', { type: 'string', demandOption: true, describe: 'the nodes, as a hostlist (node[1-4],gpu1); the first pins the digest' }),
          async (a) => {
            const { imagePrefetch } = await import('./commands/image.js');
            process.exitCode = await imagePrefetch(a.alias, { config: a.config, nodes: a.nodes }, process.env);
          },
        )
        .command(
          'list',
          'which node holds which configured alias, at which digest',
          (c) =>
            c
              .option('nodes', { type: 'string', demandOption: true, describe: 'the nodes, as a hostlist' })
              .option('json', { type: 'boolean', default: false, describe: 'one JSON object: {images: [{node, alias, ref, digest, id}], failed: [{node, error}]}' }),
          async (a) => {
            const { imageList } = await import('./commands/image.js');
            process.exitCode = await imageList({ config: a.config, nodes: a.nodes, json: a.json }, process.env);
          },
        )
        .command(
          'gc',
          "remove, on each node, the images of jobbox's repositories (those of the [image] refs) that no container uses, running or stopped; never with --force",
          (c) =>
            c
              .option('nodes', { type: 'string', demandOption: true, describe: 'the nodes, as a hostlist' })
              .option('keep', { type: 'number', default: 2, describe: "per repository, how many of the newest unused images stay besides those in use and those an alias's tag names on the node; 0: only those" })
              .option('dry-run', { type: 'boolean', default: false, describe: 'say what would be removed; remove nothing' })
              .option('json', { type: 'boolean', default: false, describe: 'one JSON object: {images: [{node, status, refs, id, created, error?}], failed: [{node, error}]}' })
              .epilog(
                'A line per image: node, status, its names in those repositories, id. Status: in-use (a container uses it), tagged (an alias\'s tag names it), ' +
                  'kept (one of the --keep newest), removed, would-remove (--dry-run), failed (the error follows). Newest is by the image\'s creation time. ' +
                  'Only those names go: an image also named elsewhere stays under that name. Then a summary line. Exit 1 when a node or a removal failed. ' +
                  'Prefer this to `docker image prune -a`, which removes every unused image, jobbox\'s repositories or not, the ones a job is about to run too (docs/images.md).',
              ),
          async (a) => {
            const { imageGc } = await import('./commands/image.js');
            process.exitCode = await imageGc({ config: a.config, nodes: a.nodes, keep: a.keep, dryRun: a.dryRun, json: a.json }, process.env);
          },
        )
        .demandCommand(1, 'image: a subcommand is required'),
    )
    .command('config', 'inspect the configuration', (y) =>
      y
        .command(
          'check',
          'parse the config strictly, check its ownership, and print it resolved as JSON',
          () => {},
          async (a) => {
            const { configCheck } = await import('./commands/config-check.js');
            await configCheck(a.config, process.env);
          },
        )
        .demandCommand(1, 'config: a subcommand is required'),
    )
    .command('lsf', 'LSF: the esub, the queue\'s hooks, and installing the esubs', (y) =>
      y
        .command(
          'esub',
          'esub (job owner, at submit): check `bsub -a docker-<alias>` or `-a "docker(<ref>)"` against the queue, pin it where the queue says, pass it to the job',
          (c) => c.option('alias', { type: 'string', describe: 'alias asked for (per-alias esub); else read from LSB_SUB_ADDITIONAL' }),
          async (a) => {
            const { esub } = await import('./commands/lsf/esub.js');
            await esub({ alias: a.alias, config: a.config }, process.env);
          },
        )
        .command(
          'pre-exec',
          'queue PRE_EXEC (root, first host): set the job up, a container on every node, then wait for all',
          (c) => c.option('dry-run', { type: 'boolean', default: false, describe: 'print what is sent to every node, each node\'s docker argv, the ssh_config and the hostfiles; run nothing' }),
          async (a) => {
            if (!a.dryRun) return hooks['lsf pre-exec'](a.config);
            const { preExec } = await import('./commands/lsf/pre-exec.js');
            // Through the hook line (docs/lsf.md's example) the variables are the launcher's data.
            await preExec(a.config, true, savedEnv() ?? process.env);
          },
        )
        .command(
          'starter',
          'JOB_STARTER (job owner, first host): run the user\'s command inside the first container; --job-file: read it from $LSB_JOBFILENAME, as `JOB_STARTER = exec …/starter --config F --job-file \\#%USRCMD` pastes it (docs/lsf.md, "Admin setup"); else `-- <command>`',
          (c) => c.option('job-file', { type: 'boolean', default: false, describe: 'read the command from the job file LSF wrote ($LSB_JOBFILENAME)' }),
          (a) => hooks['lsf starter'](a.config, ((a['--'] as unknown[] | undefined) ?? []).map(String), a.jobFile),
        )
        .command(
          'post-exec',
          'queue POST_EXEC (root, first host): tear the job down, its containers on every node and its port',
          () => {},
          (a) => hooks['lsf post-exec'](a.config),
        )
        .command(
          'install-esubs <dir>',
          'link esub.docker-<alias> for every configured alias, and esub.docker, into LSF_SERVERDIR; remove stale ones',
          (c) =>
            c
              .positional('dir', { type: 'string', demandOption: true, describe: 'LSF_SERVERDIR' })
              .option('master', { type: 'boolean', default: false, describe: 'also install the master esub (openlava)' }),
          async (a) => {
            const { lsfInstallEsubs } = await import('./commands/lsf/install-esubs.js');
            await lsfInstallEsubs({ dir: a.dir, master: a.master, config: a.config }, process.env);
          },
        )
        .demandCommand(1, 'lsf: a subcommand is required'),
    )
    .command('slurm', 'Slurm: job_submit.lua and node features, the Prolog, the batch step, the Epilog', (y) =>
      y
        .command('features', 'print the node Features (docker-<alias>, …) for slurm.conf', () => {}, async (a) => {
          const { features } = await import('./commands/slurm/submit.js');
          await features(a.config, process.env);
        })
        .command('job-submit-lua', 'print a job_submit.lua generated from the config', () => {}, async (a) => {
          const { submitLua } = await import('./commands/slurm/submit.js');
          await submitLua(a.config, process.env);
        })
        .command(
          'prolog',
          'Prolog (root, every node, PrologFlags=Alloc): the batch host sets the job up on all its nodes',
          (c) =>
            c
              .option('dry-run', { type: 'boolean', default: false, describe: 'with --job: print what the Prolog would send to every node, each node\'s docker argv (its cgroup parent), the ssh_config and the hostfiles; run nothing' })
              .option('job', { type: 'string', describe: 'the job id, for --dry-run (the Prolog itself reads SLURM_JOB_ID)' })
              // The Prolog proper reads its job from slurmd's environment, never from an option.
              .check((a) => (a.dryRun === (a.job === undefined) ? 'slurm prolog: --dry-run and --job ID go together' : true)),
          async (a) => {
            if (!a.dryRun) return hooks['slurm prolog'](a.config);
            const { prologDryRun } = await import('./commands/slurm/prolog.js');
            await prologDryRun(a.config, String(a.job), process.env);
          },
        )
        .command(
          'batch',
          'the wrapped batch script (job owner): run the submitted script in the first container',
          batchOptions,
          batchStep,
        )
        // What jobbox 0.1's wrapper runs (scheduler/slurm-submit.ts legacyWrapperScript), for jobs
        // submitted before an upgrade; hidden. Drop it in 0.3.
        .command({ command: 'start', describe: false, builder: batchOptions, handler: batchStep })
        .command('epilog', 'Epilog (root, every node): the batch host tears the job down on all its nodes', () => {}, (a) => hooks['slurm epilog'](a.config))
        .demandCommand(1, 'slurm: a subcommand is required'),
    )
    .command(
      'shell',
      "from within a job (an salloc shell, srun --pty, an LSF job): a login shell on a terminal in the job's first container, or --node's, as its owner",
      (c) => c.option('node', { type: 'string', describe: 'a node of the job (default: its first)' }),
      async (a) => {
        const { shell } = await import('./commands/shell.js');
        process.exitCode = await shell({ config: a.config, node: a.node }, process.env);
      },
    )
    .command(
      'exec',
      "from within a job: run `-- CMD…` in the job's first container, or --node's, as its owner; its output and exit status as if here",
      (c) => c.option('node', { type: 'string', describe: 'a node of the job (default: its first)' }),
      async (a) => {
        const { exec } = await import('./commands/shell.js');
        process.exitCode = await exec({ config: a.config, node: a.node }, ((a['--'] as unknown[] | undefined) ?? []).map(String), process.env);
      },
    )
    .command(
      'status <job>',
      "how the job's last start went (the job's owner, or root): each node's steps, the error; for LSF the job id (LSB_JOBID, or id[index]), for Slurm SLURM_JOB_ID",
      (c) =>
        c
          .positional('job', jobPositional)
          .option('index', indexOption)
          .option('json', { type: 'boolean', default: false, describe: 'print the record as one JSON object' }),
      async (a) => {
        const { status } = await import('./commands/status.js');
        await status({ config: a.config, job: a.job, index: a.index, json: a.json }, process.env);
      },
    )
    .command(
      'logs <job>',
      'the job\'s lines of jobbox\'s log (root): from this host and the job\'s nodes, merged in time order; for LSF the job id or id[index], for Slurm SLURM_JOB_ID',
      (c) =>
        c
          .positional('job', jobPositional)
          .option('index', indexOption)
          .option('nodes', { type: 'string', describe: 'hostlist to read too, e.g. node[1-64] (default: the nodes of the job\'s attempts in state_dir)' })
          .option('json', { type: 'boolean', default: false, describe: 'print the log\'s own JSON lines' }),
      async (a) => {
        const { logs } = await import('./commands/logs.js');
        process.exitCode = await logs({ config: a.config, job: a.job, index: a.index, nodes: a.nodes, json: a.json }, savedEnv() ?? process.env);
      },
    )
    .command(
      'doctor',
      'check nodes before they take jobs (root, admin host): the engine and its cgroup driver, the registry and each image (sshd, /bin/sh), port_dir and state_dir (root\'s, shared), the port range against the ephemeral ports, the devices, memlock, sshd\'s MaxStartups and the clock',
      (c) =>
        c
          .option('nodes', { type: 'string', describe: 'hostlist to check, e.g. node[1-64] (default: this host)' })
          .option('json', { type: 'boolean', default: false, describe: 'print one JSON object: nodes, checks' }),
      async (a) => {
        const { doctor } = await import('./commands/doctor.js');
        process.exitCode = await doctor({ config: a.config, nodes: a.nodes, json: a.json }, savedEnv() ?? process.env);
      },
    )
    .command(
      'ps',
      'every jobbox container on the nodes (root, admin host): its attempt, owner, image, state and age; what is amiss around it (no job dir or port claim, job over); and what jobbox gc would do with it',
      (c) =>
        c
          .option('nodes', { type: 'string', describe: 'hostlist to list, e.g. node[1-64] (default: the nodes the job dirs\' hostfiles name)' })
          .option('json', { type: 'boolean', default: false, describe: 'print one JSON object: nodes, unreachable, containers' })
          .option('scheduler', schedulerOption),
      async (a) => {
        const { ps } = await import('./commands/ps.js');
        process.exitCode = await ps({ config: a.config, nodes: a.nodes, json: a.json, scheduler: a.scheduler }, savedEnv() ?? process.env);
      },
    )
    .command(
      'gc',
      'orphan reaper (root, admin host): reclaim the containers, job dir and port of attempts the scheduler says are over',
      (c) =>
        c
          .option('dry-run', { type: 'boolean', default: false, describe: 'print what would be reclaimed and why; change nothing' })
          .option('grace', { type: 'number', default: GC_GRACE_S, describe: 'seconds a claim and job dir must be unchanged before they are reclaimed' })
          .option('scheduler', schedulerOption)
          .option('nodes', { type: 'string', describe: 'hostlist to sweep for attempts whose job dir has no hostfile, e.g. node[1-64]' }),
      async (a) => {
        const { gc } = await import('./commands/gc.js');
        // An admin may run gc by hand in a shell of their own; the timer runs it through hooks/gc.
        process.exitCode = await gc({ config: a.config, dryRun: a.dryRun, grace: a.grace, scheduler: a.scheduler, nodes: a.nodes }, savedEnv() ?? process.env);
      },
    )
    .demandCommand(1, 'a command is required')
    .strict()
    .version(JOBBOX_VERSION)
    .help()
    .alias('help', 'h')
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((message, err) => {
      if (err) throw err;
      throw new JobboxError('usage', message, argv.join(' '), EXIT.usage);
    })
    .parseAsync();
}

const argv = process.argv.slice(2);
const hook = hookCall(argv);
// Fast path: `--version` is what monitoring and module checks run; it needs no parser.
if (argv.length === 1 && argv[0] === '--version') {
  process.stdout.write(`${JOBBOX_VERSION}\n`);
} else {
  // A hook must end on its own terms even when an error escapes every promise (an emitter's
  // 'error' with no listener): one line, and the code its scheduler reads. A Slurm hook exits 0,
  // as its own failures do: a failing Prolog or Epilog drains the node.
  if (hook) {
    process.once('uncaughtException', (err) => {
      const { line, exitCode } = formatError(err);
      process.stderr.write(`${line}\n`);
      process.exit(hook.hook.startsWith('slurm ') ? 0 : exitCode);
    });
  }
  (hook ? hooks[hook.hook](hook.config, hook.command, hook.jobFile) : main(argv)).catch((err: unknown) => {
    const { line, exitCode } = formatError(err);
    process.stderr.write(`${line}\n`);
    process.exitCode = exitCode;
  });
}
