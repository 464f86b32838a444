import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A config file loadConfig accepts as root: under /run, root-owned 0755 all the way up
 * (/tmp is world-writable, which loadConfig refuses by design). Remove `dir` afterwards.
 */
export async function rootConfig(text: string): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp('/run/jobbox-test-config-');
  const file = join(dir, 'jobbox.ini');
  await writeFile(file, text, { mode: 0o644 });
  return { dir, file };
}
