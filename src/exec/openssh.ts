// The only code that runs the OpenSSH client. The job starter uses it, as the job owner,
// with the job's own ssh_config: the same file mpirun uses inside the containers.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';

export function sshArgv(sshConfig: string, host: string, remote: string): string[] {
  return ['-F', sshConfig, '-T', '--', host, remote];
}

/**
 * Runs `remote` on `host` with stdio streamed, and resolves to its exit code (128+n for a
 * signal, as shells report it). `onSignal` gets SIGTERM/SIGINT sent to us: OpenSSH cannot
 * forward signals to a non-root sshd, so the caller delivers them over a second session.
 */
export function sshInteractive(sshConfig: string, host: string, remote: string, onSignal: (sig: NodeJS.Signals) => void): Promise<number> {
  const child = spawn('ssh', sshArgv(sshConfig, host, remote), { stdio: 'inherit' });
  const forward = (sig: NodeJS.Signals) => onSignal(sig);
  process.on('SIGTERM', forward).on('SIGINT', forward);
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      process.off('SIGTERM', forward).off('SIGINT', forward);
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}

/** Runs `remote` on `host` and waits, output discarded: for the signal-delivery session. */
export function sshQuiet(sshConfig: string, host: string, remote: string): Promise<number> {
  const child = spawn('ssh', sshArgv(sshConfig, host, remote), { stdio: 'ignore' });
  return new Promise((resolve) => child.once('exit', (code) => resolve(code ?? 255)).once('error', () => resolve(255)));
}
