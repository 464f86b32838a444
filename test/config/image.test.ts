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

[image deb12]
ref = registry.example.org/hpc/deb12:latest

[image deb12-mpich]
ref = registry.example.org/hpc/deb12-mpich:4
`,
  'f',
);

describe('resolveImage', () => {
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
    ['short', 'centos:7', 'jobbox: image: no such image alias, only aliases are accepted (allowed: deb12-mpich): centos:7'],
    ['normal', 'registry.example.org/hpc/deb12:latest', 'jobbox: image: no such image alias, only aliases are accepted (allowed: deb12 deb12-mpich): registry.example.org/hpc/deb12:latest'],
    ['normal', 'constructor', 'jobbox: image: no such image alias, only aliases are accepted (allowed: deb12 deb12-mpich): constructor'],
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
    ['normal', 'x'.repeat(65), `jobbox: image: longer than 64 characters: ${'x'.repeat(65)}`],
    ['long', 'deb12', 'jobbox: queue: no such [queue] section in the config (defined: short normal): long'],
  ])('queue %s, image %j is refused', (queue, requested, message) => {
    expect(() => resolveImage(config, queue, requested)).toThrow(expect.objectContaining({ message, exitCode: 99 }));
  });
});
