import { describe, expect, it } from 'vitest';
import { forbiddenKey } from './json-body.js';

describe('forbiddenKey', () => {
  it('finds __proto__, and constructor holding prototype, at any depth', () => {
    expect(forbiddenKey(JSON.parse('{"a":1,"b":[{"c":2},{"__proto__":{}}]}'))).toBe('b[1].__proto__');
    expect(forbiddenKey(JSON.parse('{"b":[{"__proto__":{}}],"__proto__":1}'))).toBe('__proto__');
    expect(forbiddenKey(JSON.parse('{"x":{"constructor":{"prototype":{"p":1}}}}'))).toBe('x.constructor');
    expect(forbiddenKey(JSON.parse('{"constructor":{"name":"not a prototype"},"y":"__proto__"}'))).toBeNull();
    expect(forbiddenKey(JSON.parse('[1,"constructor",null]'))).toBeNull();
  });

  it('walks a body nested as deep as JSON.parse allows without running out of stack', () => {
    const depth = 20_000;
    const deep = JSON.parse(`${'['.repeat(depth)}{"__proto__":0}${']'.repeat(depth)}`);
    expect(forbiddenKey(deep)).toBe(`${'[0]'.repeat(depth)}.__proto__`);
  });
});
