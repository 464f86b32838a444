// `jobbox logs <job>`: the job's lines of jobbox's JSON log from every host that may hold some,
// merged in time order. Pure: the fixed command a node runs, and the merge.
import { noControls } from '../errors.js';

/**
 * Every line of log_file and its rotations (`.1`, `.2.gz`, …) that names the job id, as pino
 * writes it (`"job":"4242"`); the values are positional arguments, never part of the script.
 */
const GREP = `f=$1 pat=$2
for g in "$f" "$f".[0-9]*; do
  [ -f "$g" ] || continue
  case $g in *.gz) gzip -dc -- "$g" ;; *) cat -- "$g" ;; esac
done | grep -F -e "$pat"
exit 0`;

export function logGrepArgv(logFile: string, jobId: string): string[] {
  return ['sh', '-c', GREP, 'jobbox-logs', logFile, `"job":"${jobId}"`];
}

export interface LogLine {
  /** The host whose log file held it. */
  from: string;
  time: number;
  raw: string;
  entry: Record<string, unknown>;
}

/** The job's lines (the array index too), each once, oldest first; what is not our JSON is dropped. */
export function mergeLogs(found: { from: string; text: string }[], job: { id: string; index: number }): LogLine[] {
  const seen = new Set<string>();
  const lines: LogLine[] = [];
  for (const { from, text } of found) {
    for (const raw of text.split('\n')) {
      // The hosts of a job may share one log file (a log on a shared file system): once each.
      if (raw === '' || seen.has(raw)) continue;
      let entry: unknown;
      try {
        entry = JSON.parse(raw);
      } catch {
        continue;
      }
      if (typeof entry !== 'object' || entry === null) continue;
      const e = entry as Record<string, unknown>;
      if (e.job !== job.id || (e.index ?? 0) !== job.index || typeof e.time !== 'number') continue;
      seen.add(raw);
      lines.push({ from, time: e.time, raw, entry: e });
    }
  }
  return lines.sort((a, b) => a.time - b.time);
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
// Said by the line's own columns, or of every line of a job alike.
const SHOWN = new Set(['time', 'level', 'msg', 'job', 'index', 'host', 'pid', 'hostname']);


/** `2026-12-07 16:00:00.123 UTC node1 INFO attempt node1: job torn down on every node {"removed":3}`, escaped. */
export function renderLogLine(l: LogLine): string {
  const e = l.entry;
  const when = new Date(l.time).toISOString().replace('T', ' ').replace('Z', ' UTC');
  const level = LEVELS[Number(e.level)] ?? String(e.level);
  const rest = Object.fromEntries(Object.entries(e).filter(([k]) => !SHOWN.has(k) && k !== 'attempt'));
  const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
  // A log line may carry what a user chose (a job name, a path): no control character reaches the terminal.
  return noControls(`${when} ${l.from} ${level.padEnd(5)} attempt ${String(e.attempt ?? '?')}: ${String(e.msg ?? '')}${extra}`);
}
