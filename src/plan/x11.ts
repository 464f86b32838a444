// X11 for the command in the container (docs/x11.md). The containers run with the node's
// network (--net=host), so a TCP display the node reaches is the container's too: the
// `localhost:10.0` that `bsub -XF`, `ssh -X` or `srun --x11` make on the execution host is a
// listener on the node's loopback. What the session needs is the pair of variables: DISPLAY,
// and XAUTHORITY when the cookie is not in ~/.Xauthority. No X11 forwarding through the job's
// sshd: it would add a second tunnel to a display the container already reaches.
import { containerEnv } from './env.js';

/**
 * The names the run phase hands the X11 variables over in: sent by the ssh client (SendEnv),
 * accepted by the job's sshd (AcceptEnv), applied by the session (X11_SESSION) after the job's
 * own variables, and gone before the user's command runs. Not DISPLAY itself: the session's
 * `. userenv` would put the value the setup saw back over it. JOBBOX_ is a prefix no user
 * variable reaches the container with (plan/env.ts).
 */
export const X11_HANDOFF = { DISPLAY: 'JOBBOX_X11_DISPLAY', XAUTHORITY: 'JOBBOX_X11_XAUTHORITY' } as const;
export const X11_HANDOFF_NAMES: string[] = Object.values(X11_HANDOFF);

/**
 * What the ssh client sends (`send`), from the environment the command is started from (the
 * job starter's, `jobbox shell`'s or `jobbox exec`'s): LSF's -XF may give the job a DISPLAY
 * the setup never saw, and a Slurm step's (`srun --x11`) never reaches the Prolog. DISPLAY and
 * XAUTHORITY travel as a pair: the cookie belongs to the display, so with a DISPLAY here an
 * XAUTHORITY the setup saw is not kept. Without a DISPLAY here nothing is sent and the session
 * keeps the job's variables as the setup wrote them. A name mapped to undefined is not sent,
 * and is removed from the client's environment, so a user's own JOBBOX_X11_* never travels.
 * `refused`: the two, when set, that cannot travel (a newline or NUL, or past ENV_LINE_MAX, as
 * for every variable that reaches the container), for the caller to say so.
 */
export function x11Handoff(env: Record<string, string>): { send: Record<string, string | undefined>; refused: ('DISPLAY' | 'XAUTHORITY')[] } {
  const asked = {
    ...(env.DISPLAY && { DISPLAY: env.DISPLAY }),
    ...(env.XAUTHORITY && { XAUTHORITY: env.XAUTHORITY }),
  };
  const { env: kept, dropped } = containerEnv(asked);
  const display = kept.DISPLAY;
  return {
    send: {
      [X11_HANDOFF.DISPLAY]: display,
      [X11_HANDOFF.XAUTHORITY]: display && kept.XAUTHORITY,
    },
    refused: dropped.filter((name): name is 'DISPLAY' | 'XAUTHORITY' => name === 'DISPLAY' || name === 'XAUTHORITY'),
  };
}

/**
 * Shell text, run in the session after the job's variables and before the user's command, as
 * the owner, in the container. One brace group whose status is 0, to sit in the run phase's
 * `&&` chain. The values are only ever expanded in double quotes and printed with %s.
 *
 * 1. A handed-over DISPLAY replaces the job's, with its XAUTHORITY or none.
 * 2. An XAUTHORITY the container cannot read (a file outside its mounts: Slurm's per-step
 *    file in /tmp, a desktop's /run/user/…) is unset: Xlib then reads ~/.Xauthority, where
 *    sshd's xauth writes the cookie of a forwarded display, instead of failing on a file that
 *    is not there. With a TCP display (`host:N`) the user means X, and gets one line saying
 *    so; with a display on this node (`:0`, `unix:0`, a path) or none, it is unset silently,
 *    since a job submitted from a desktop carries those whether or not it uses X.
 */
export const X11_SESSION = [
  '{ if [ -n "${JOBBOX_X11_DISPLAY-}" ]; then',
  'export DISPLAY="$JOBBOX_X11_DISPLAY";',
  'if [ -n "${JOBBOX_X11_XAUTHORITY-}" ]; then export XAUTHORITY="$JOBBOX_X11_XAUTHORITY"; else unset XAUTHORITY; fi;',
  'fi;',
  'unset JOBBOX_X11_DISPLAY JOBBOX_X11_XAUTHORITY;',
  'if [ -n "${XAUTHORITY-}" ] && [ ! -r "$XAUTHORITY" ]; then',
  'case ${DISPLAY-} in',
  "''|:*|unix:*|/*) ;;",
  "*:*) printf 'jobbox: XAUTHORITY: not readable in the container, X clients read ~/.Xauthority instead: %s\\n' \"$XAUTHORITY\" >&2 ;;",
  'esac;',
  'unset XAUTHORITY;',
  'fi; :; }',
].join(' ');
