import { describe, it, expect } from 'vitest';
import { resolveImage } from '../../src/config/image.js';
import { parseConfig } from '../../src/config/parse.js';
import { LSF_SUBMIT } from '../../src/scheduler/lsf.js';
import { SLURM_SUBMIT } from '../../src/scheduler/slurm.js';

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

describe('a refusal at submit names the next step, in the submit\'s own options', () => {
  const MPICH = 'allowed: deb12-mpich';
  it.each([
    ['short', 'deb12', LSF_SUBMIT, `jobbox: image: not allowed in queue short (${MPICH}); use -q normal or -q pinned, or -a docker-deb12-mpich: deb12`],
    ['short', 'deb12', SLURM_SUBMIT, `jobbox: image: not allowed in queue short (${MPICH}); use -p normal or -p pinned, or -C docker-deb12-mpich: deb12`],
    ['pinned', `deb12-mpich@${DIGEST}`, LSF_SUBMIT, `jobbox: image: not allowed in queue pinned (allowed: deb12); use -q short or -q normal, or -a docker-deb12: deb12-mpich@${DIGEST}`],
    ['short', 'centos:7', LSF_SUBMIT, `jobbox: image: no such image alias (${MPICH}); use -a docker-deb12-mpich: centos:7`],
    ['normal', 'registry.example.org/hpc/deb12:latest', SLURM_SUBMIT, `jobbox: image: repository not allowed in queue normal (${NORMAL}); use -C docker-deb12 or -C docker-deb12-mpich: registry.example.org/hpc/deb12:latest`],
    ['short', 'registry.example.org/projects/x:1', LSF_SUBMIT, `jobbox: image: repository not allowed in queue short (${MPICH}); use -q normal, or -a docker-deb12-mpich: registry.example.org/projects/x:1`],
    // Several queues named (Slurm's -p normal,short): an image one allows may not suit the others.
    ['short', 'deb12', { queue: SLURM_SUBMIT.queue }, `jobbox: image: not allowed in queue short (${MPICH}); use -p normal or -p pinned: deb12`],
    ['long', 'deb12', LSF_SUBMIT, 'jobbox: queue: no such [queue] section in the config (defined: short normal pinned); use -q normal or -q pinned: long'],
    ['long', undefined, LSF_SUBMIT, 'jobbox: queue: no such [queue] section in the config (defined: short normal pinned); use -q short or -q normal or -q pinned: long'],
    ['long', 'centos7', LSF_SUBMIT, 'jobbox: queue: no such [queue] section in the config (defined: short normal pinned): long'],
    ['normal', '$(id)', LSF_SUBMIT, 'jobbox: image: must not contain shell metacharacters: $(id)'],
  ])('queue %s, image %j (%j)', (queue, requested, syntax, message) => {
    expect(() => resolveImage(config, queue, requested, syntax)).toThrow(expect.objectContaining({ message, exitCode: 99 }));
  });

  it('names at most three of each, so the line stays one line', () => {
    const queues = ['a', 'b', 'c', 'd'].map((q) => `[queue ${q}]\ndefault_image = i1\n`).join('');
    const images = ['i1', 'i2', 'i3', 'i4'].map((i) => `[image ${i}]\nref = reg.example.org/${i}\n`).join('');
    const many = parseConfig(`[jobbox]\ndefault_queue = a\n${queues}[queue e]\ndefault_image = i2\nallowed_images = i1 i2 i3 i4\n[queue f]\ndefault_image = i2\n${images}`, 'many.ini');
    expect(() => resolveImage(many, 'f', 'i1', LSF_SUBMIT)).toThrow(
      'jobbox: image: not allowed in queue f (allowed: i2); use -q a or -q b or -q c or …, or -a docker-i2: i1',
    );
    expect(() => resolveImage(many, 'a', 'i3', LSF_SUBMIT)).toThrow('jobbox: image: not allowed in queue a (allowed: i1); use -q e, or -a docker-i1: i3');
    expect(() => resolveImage(many, 'e', 'nope', SLURM_SUBMIT)).toThrow(
      'jobbox: image: no such image alias (allowed: i1 i2 i3 i4); use -C docker-i1 or -C docker-i2 or -C docker-i3 or …: nope',
    );
  });

  it('a start, which names no syntax, keeps the line as it was', () => {
    expect(() => resolveImage(config, 'short', 'deb12')).toThrow(/^jobbox: image: not allowed in queue short \(allowed: deb12-mpich\): deb12$/);
  });
});

describe('an alias the config pins to a digest', () => {
  const pinned = parseConfig(`[jobbox]\ndefault_queue = q\n[queue q]\ndefault_image = a\npin_at_submit = yes\n[image a]\nref = reg.example.org/hpc/a@sha256:${'a'.repeat(64)}\n`, 'p.ini');
  it('runs that digest; a submit naming it is fine, one naming another is refused', () => {
    expect(resolveImage(pinned, 'q', `a@sha256:${'a'.repeat(64)}`).ref).toBe(`reg.example.org/hpc/a@sha256:${'a'.repeat(64)}`);
    expect(() => resolveImage(pinned, 'q', `a@sha256:${'b'.repeat(64)}`)).toThrow(`jobbox: image: the alias is pinned to another digest by the config (reg.example.org/hpc/a@sha256:${'a'.repeat(64)}): a@sha256:${'b'.repeat(64)}`);
  });
});
