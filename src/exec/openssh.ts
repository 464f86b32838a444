// The only code that runs the OpenSSH client. The job starter uses it, as the job owner,
// with the job's own ssh_config: the same file mpirun uses inside the containers.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

/**
 * `terminal`: a pseudo-terminal for the remote command (`-tt`: ours is one, so the user is at it).
 * `sendEnv`: variables the client passes to the session from its own environment (SendEnv): the
 * names only are on the command line, the values never.
 */
export function sshArgv(sshConfig: string, host: string, remote: string, terminal = false, sendEnv: string[] = []): string[] {
  return ['-F', sshConfig, ...sendEnv.flatMap((name) => ['-o', `SendEnv=${name}`]), terminal ? '-tt' : '-T', '--', host, remote];
}

/**
 * The client's environment: ours, with each name of `send` set to its value, or removed when
 * that is undefined, so that SendEnv passes exactly what the caller chose.
 */
export function clientEnv(base: NodeJS.ProcessEnv, send: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env = { ...base };
  for (const [name, value] of Object.entries(send)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

/**
 * Runs `remote` on `host` with stdio streamed, and resolves to its exit code. `onSignal` gets
 * SIGTERM/SIGINT sent to us: OpenSSH cannot forward signals to a non-root sshd, so the caller
 * delivers them over a second session. The client runs in its own process group: a bkill
 * signals the starter's whole group, and a client killed with it would cut the session before
 * the signal is delivered and lose the command's exit status.
 */
export function sshInteractive(
  sshConfig: string,
  host: string,
  remote: string,
  onSignal: (sig: NodeJS.Signals) => Promise<unknown>,
  /** Sent as the session's stdin instead of ours (a batch script to run). */
  input?: string,
  /** Our stdin is a terminal (`bsub -Is`): the remote command gets a pseudo-terminal of its own. */
  terminal = false,
  /** Variables for the session, sent with SendEnv (clientEnv); the job's sshd accepts only those it names in AcceptEnv. */
  send: Record<string, string | undefined> = {},
): Promise<number> {
  const stdin = input === undefined ? 'inherit' : 'pipe';
  // Detached, the client would outlive a SIGKILL of ours (bkill -s KILL) and hold the job's
  // output open until the command ends; the kernel's parent-death signal takes it down with us.
  // The command itself stops when the post-exec or Epilog removes the containers.
  const argv = ['--pdeathsig', 'KILL', '--', 'ssh', ...sshArgv(sshConfig, host, remote, terminal, Object.keys(send))];
  const child = spawn('setpriv', argv, { stdio: [stdin, 'inherit', 'inherit'], detached: true, env: clientEnv(process.env, send) });
  child.stdin?.end(input);
  const delivered: { sig: NodeJS.Signals; done: Promise<unknown> }[] = [];
  const forward = (sig: NodeJS.Signals) => delivered.push({ sig, done: onSignal(sig) });
  // The kernel tells a new terminal size to the terminal's foreground group, ours; the client,
  // in a session of its own, reads the size from its stdin when told, and passes it on.
  const resized = () => child.kill('SIGWINCH');
  process.on('SIGTERM', forward).on('SIGINT', forward);
  if (terminal) process.on('SIGWINCH', resized);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      process.off('SIGTERM', forward).off('SIGINT', forward).off('SIGWINCH', resized);
      void Promise.all(delivered.map((d) => d.done)).then(() => {
        // ssh reports a remote command killed by a signal as 255; say which signal, as a shell does.
        const first = delivered[0];
        if (code === 255 && first) resolve(128 + constants.signals[first.sig]);
        else resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
      });
    });
  });
}

/** Runs `remote` on `host` and waits, output discarded: for the signal-delivery session. */
export function sshQuiet(sshConfig: string, host: string, remote: string): Promise<number> {
  const child = spawn('ssh', sshArgv(sshConfig, host, remote), { stdio: 'ignore' });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 255)).once('error', () => resolve(255)));
}
