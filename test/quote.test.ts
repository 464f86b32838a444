import { describe, it, expect } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { quote } from '../src/quote.js';

describe('quote', () => {
  it.each([
    [['docker', 'ps'], 'docker ps'],
    [['docker', 'run', '--name', 'jobbox-4711', '--user', '1000:1000'], 'docker run --name jobbox-4711 --user 1000:1000'],
    [['--mount', 'type=bind,source=/a,target=/b,readonly'], "--mount 'type=bind,source=/a,target=/b,readonly'"],
    [['reg.example.org:5000/hpc/deb12@sha256:ab', '%f\\n'], "reg.example.org:5000/hpc/deb12@sha256:ab '%f\\n'"],
    [['a b'], "'a b'"],
    [["it's"], "'it'\\''s'"],
    [["'"], "''\\'''"],
    [['$(id)'], "'$(id)'"],
    [['`id`'], "'`id`'"],
    [['a;b'], "'a;b'"],
    [['a\nb'], "'a\nb'"],
    [[''], "''"],
    [['a', '', 'b'], "a '' b"],
    [['*'], "'*'"],
    [['~'], "'~'"],
    [['a|b&c>d<e'], "'a|b&c>d<e'"],
    [['{a,b}'], "'{a,b}'"],
    [['"x"'], `'"x"'`],
    [['\\'], "'\\'"],
    [['#c'], "'#c'"],
    [[], ''],
  ])('%j → %s', (argv, text) => {
    expect(quote(argv)).toBe(text);
  });

  // A seeded generator: a failure names an input that reproduces.
  function random(seed: number): () => number {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const ALPHABET = [
    ...'abcXYZ019_-./:=,@%+',
    ...` '"\\$\`!#&*?;|<>(){}[]~^`,
    '\n', '\t', '\r', '\x01', '\x7f', 'é', '€', '😀', '\u00a0',
  ];

  it('round-trips 200 random argv through sh', () => {
    const next = random(4711);
    const pick = (n: number) => Math.floor(next() * n);
    for (let run = 0; run < 200; run++) {
      const args = Array.from({ length: 1 + pick(5) }, () => Array.from({ length: pick(12) }, () => ALPHABET[pick(ALPHABET.length)]!).join(''));
      const out = execFileSync('sh', ['-c', 'printf "%s\\\\0" ' + quote(args)], { encoding: 'utf8' });
      expect(out.split('\0').slice(0, -1), JSON.stringify(args)).toEqual(args);
    }
  });

  it('runs the first word as the command even when it looks like an assignment', () => {
    // Unquoted, `A=b` is an assignment and sh runs nothing (exit 0) instead of the command.
    const r = spawnSync('sh', ['-c', quote(['JOBBOX_NO_SUCH_CMD=1'])], { encoding: 'utf8' });
    expect(r.status).toBe(127);
  });
});
