import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Where a test's files go. As root, under /run: root-owned 0755 all the way up, as loadConfig
 * and the job dir checks demand (/tmp is world-writable, which they refuse by design). As a
 * normal user, the usual temp dir.
 */
export const TEST_PARENT = process.getuid?.() === 0 ? '/run' : tmpdir();

/** A config file loadConfig accepts, as root too. Remove `dir` afterwards. */
export async function rootConfig(text: string): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(TEST_PARENT, 'jobbox-test-config-'));
  const file = join(dir, 'jobbox.ini');
  await writeFile(file, text, { mode: 0o644 });
  return { dir, file };
}
