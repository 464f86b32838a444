import { describe, expect, it } from 'vitest';
import { parseSavedEnv } from '../src/hook-env.js';

// What dist/jobbox-hook writes on fd 3: every environment string with its NUL, as the kernel
// gave them, so the job's variables arrive as data, byte for byte.
describe('parseSavedEnv', () => {
  const saved = (...entries: string[]) => Buffer.from(entries.map((e) => `${e}\0`).join(''));

  it.each<[string, Buffer, Record<string, string>]>([
    ['plain variables', saved('A=1', 'B=two words'), { A: '1', B: 'two words' }],
    ['values with =, newlines and shell text', saved('X=a=b', 'Y=line1\nline2', 'Z=$(id);`id`'), { X: 'a=b', Y: 'line1\nline2', Z: '$(id);`id`' }],
    ['an empty value', saved('EMPTY='), { EMPTY: '' }],
    ['an entry without = is no variable', saved('NOEQUALS', '=nameless', 'A=1'), { A: '1' }],
    ['the first of two same names wins, as getenv() returns it', saved('A=first', 'A=second'), { A: 'first' }],
    ['nothing saved', Buffer.alloc(0), {}],
  ])('%s', (_case, data, expected) => {
    expect(parseSavedEnv(data)).toEqual(expected);
  });

  it('keeps __proto__ a plain variable, never the object\'s prototype', () => {
    const env = parseSavedEnv(saved('__proto__=x', 'A=1'));
    expect(Object.getPrototypeOf(env)).toBe(Object.prototype);
    expect(env.A).toBe('1');
  });
});
