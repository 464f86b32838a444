import { describe, it, expect } from 'vitest';
import { resolveImage } from '../../src/config/image.js';
import { parseConfig } from '../../src/config/parse.js';

const config = parseConfig(
  `
[queue short]
default_image = deb12-mpich

[queue normal]
default_image = deb12
allowed_images = deb12 deb12-mpich
allowed_repos = registry.example.org/projects/* registry.example.org/tools/app

[queue pinned]
default_image = deb12
pin_at_submit = yes

[image deb12]
ref = registry.example.org/hpc/deb12:latest

[image deb12-mpich]
ref = registry.example.org/hpc/deb12-mpich:4
`,
  'f',
);

const NORMAL = 'allowed: deb12 deb12-mpich; repositories: registry.example.org/projects/* registry.example.org/tools/app';
const NOT_REF = 'not a qualified image reference (registry[:port]/path[:tag][@sha256:…], lowercase)';
const DIGEST = `sha256:${'ab'.repeat(32)}`;

describe('resolveImage', () => {
  it.each([
    ['registry.example.org/projects/x/app:1.2', { alias: 'registry.example.org/projects/x/app:1.2', ref: 'registry.example.org/projects/x/app:1.2', user: true }],
    ['registry.example.org/projects/app', { ref: 'registry.example.org/projects/app:latest', user: true }],
    [`registry.example.org/tools/app@${DIGEST}`, { ref: `registry.example.org/tools/app@${DIGEST}`, digest: DIGEST, user: true }],
    [`registry.example.org/tools/app:2@${DIGEST}`, { ref: 'registry.example.org/tools/app:2', digest: DIGEST, user: true }],
  ])('a user image in an allowed repository: %s', (requested, expected) => {
    const image = resolveImage(config, 'normal', requested);
    expect(image).toMatchObject({ ...expected, mounts: [], env: {} });
  });

  it('keeps a submit digest only where the queue pins at submit', () => {
    expect(resolveImage(config, 'pinned', `deb12@${DIGEST}`)).toMatchObject({ alias: 'deb12', ref: 'registry.example.org/hpc/deb12:latest', digest: DIGEST });
    expect(resolveImage(config, 'normal', `deb12@${DIGEST}`).digest).toBeUndefined();
    expect(resolveImage(config, 'pinned', 'deb12').digest).toBeUndefined();
  });

  it.each([
    ['short', undefined, 'registry.example.org/hpc/deb12-mpich:4'],
    ['normal', undefined, 'registry.example.org/hpc/deb12:latest'],
    ['normal', 'deb12-mpich', 'registry.example.org/hpc/deb12-mpich:4'],
    ['short', 'deb12-mpich', 'registry.example.org/hpc/deb12-mpich:4'],
  ])('queue %s, image %s → %s', (queue, requested, ref) => {
    expect(resolveImage(config, queue, requested).ref).toBe(ref);
  });

  it.each([
    ['short', 'deb12', 'jobbox: image: not allowed in queue short (allowed: deb12-mpich): deb12'],
    ['short', 'centos:7', 'jobbox: image: no such image alias (allowed: deb12-mpich): centos:7'],
    ['normal', 'registry.example.org/hpc/deb12:latest', `jobbox: image: repository not allowed in queue normal (${NORMAL}): registry.example.org/hpc/deb12:latest`],
    ['normal', 'registry.example.org/tools/app2:1', `jobbox: image: repository not allowed in queue normal (${NORMAL}): registry.example.org/tools/app2:1`],
    ['normal', 'registry.example.org/tools/app/x:1', `jobbox: image: repository not allowed in queue normal (${NORMAL}): registry.example.org/tools/app/x:1`],
    ['normal', 'registry.example.org/projects:1', `jobbox: image: repository not allowed in queue normal (${NORMAL}): registry.example.org/projects:1`],
    ['normal', 'projects/x:1', `jobbox: image: ${NOT_REF}: projects/x:1`],
    ['normal', 'registry.example.org/projects/../x:1', `jobbox: image: ${NOT_REF}: registry.example.org/projects/../x:1`],
    ['normal', 'registry.example.org/projects/x:-1', `jobbox: image: ${NOT_REF}: registry.example.org/projects/x:-1`],
    ['normal', 'registry.example.org/projects//x:1', `jobbox: image: ${NOT_REF}: registry.example.org/projects//x:1`],
    ['normal', 'constructor', `jobbox: image: no such image alias (${NORMAL}): constructor`],
    ['normal', 'deb12@sha256:00', 'jobbox: image: a digest after "@" must be sha256: and 64 hex digits: deb12@sha256:00'],
    ['normal', '', 'jobbox: image: must not be empty: '],
    ['normal', '--privileged', 'jobbox: image: must not start with "-": --privileged'],
    ['normal', 'deb12 --privileged', 'jobbox: image: must not contain whitespace or control characters: deb12 --privileged'],
    ['normal', 'deb12\n', 'jobbox: image: must not contain whitespace or control characters: deb12\\n'],
    ['normal', 'deb12\0', 'jobbox: image: must not contain whitespace or control characters: deb12\\u0000'],
    ['normal', 'deb12\x1b[2J', 'jobbox: image: must not contain whitespace or control characters: deb12\\u001b[2J'],
    ['normal', 'deb12\t', 'jobbox: image: must not contain whitespace or control characters: deb12\\t'],
    ['normal', '$(id)', 'jobbox: image: must not contain shell metacharacters: $(id)'],
    ['normal', '`id`', 'jobbox: image: must not contain shell metacharacters: `id`'],
    ['normal', 'a;b', 'jobbox: image: must not contain shell metacharacters: a;b'],
    ['normal', 'a|b', 'jobbox: image: must not contain shell metacharacters: a|b'],
    ['normal', 'a&b', 'jobbox: image: must not contain shell metacharacters: a&b'],
    ['normal', 'a<b>', 'jobbox: image: must not contain shell metacharacters: a<b>'],
    ['normal', "a'b", "jobbox: image: must not contain shell metacharacters: a'b"],
    ['normal', 'a"b', 'jobbox: image: must not contain shell metacharacters: a\\"b'],
    ['normal', 'a\\b', 'jobbox: image: must not contain shell metacharacters: a\\\\b'],
    ['normal', 'deb*', 'jobbox: image: must not contain shell metacharacters: deb*'],
    ['normal', 'x'.repeat(65), `jobbox: image: an alias is at most 64 characters: ${'x'.repeat(65)}`],
    ['normal', 'x'.repeat(331), `jobbox: image: longer than 330 characters: ${'x'.repeat(200)}… (331 chars)`],
    ['long', 'deb12', 'jobbox: queue: no such [queue] section in the config (defined: short normal pinned): long'],
  ])('queue %s, image %j is refused', (queue, requested, message) => {
    expect(() => resolveImage(config, queue, requested)).toThrow(expect.objectContaining({ message, exitCode: 99 }));
  });
});

describe('an alias the config pins to a digest', () => {
  const pinned = parseConfig(`[jobbox]\ndefault_queue = q\n[queue q]\ndefault_image = a\npin_at_submit = yes\n[image a]\nref = reg.example.org/hpc/a@sha256:${'a'.repeat(64)}\n`, 'p.ini');
  it('runs that digest; a submit naming it is fine, one naming another is refused', () => {
    expect(resolveImage(pinned, 'q', `a@sha256:${'a'.repeat(64)}`).ref).toBe(`reg.example.org/hpc/a@sha256:${'a'.repeat(64)}`);
    expect(() => resolveImage(pinned, 'q', `a@sha256:${'b'.repeat(64)}`)).toThrow(`jobbox: image: the alias is pinned to another digest by the config (reg.example.org/hpc/a@sha256:${'a'.repeat(64)}): a@sha256:${'b'.repeat(64)}`);
  });
});
