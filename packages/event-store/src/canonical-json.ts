/**
 * Canonical JSON: object keys sorted by code unit, no whitespace, numbers and strings as
 * JSON.stringify prints them. Parsing a canonical string and serialising it again yields the
 * same string, which is what lets any store (and any offline verifier) recompute a hash.
 */

export class NotJsonError extends Error {
  readonly path: string;

  constructor(path: string, reason: string) {
    super(`${path || '(root)'}: ${reason}`);
    this.path = path;
  }
}

const MAX_DEPTH = 64;

export function canonicalJson(value: unknown): string {
  try {
    return fast(value, 0);
  } catch (error) {
    if (error !== NOT_PLAIN_JSON) throw error;
  }
  // Only to name the problem and where it is: the fast path keeps no paths.
  return write(value, '', 0, new Set());
}

const NOT_PLAIN_JSON = Symbol('not plain JSON');

/**
 * Every event is serialised on the append path, so the common case (valid JSON) builds no path
 * strings and tracks no visited set: a cycle shows up as too deep, and anything refused is
 * serialised again by `write`, which says why.
 */
function fast(value: unknown, depth: number): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw NOT_PLAIN_JSON;
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (depth >= MAX_DEPTH) throw NOT_PLAIN_JSON;
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (item === undefined) throw NOT_PLAIN_JSON;
          out += i === 0 ? fast(item, depth + 1) : `,${fast(item, depth + 1)}`;
        }
        return `${out}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) throw NOT_PLAIN_JSON;
      const keys = Object.keys(value).sort();
      let out = '{';
      for (const key of keys) {
        const item = (value as Record<string, unknown>)[key];
        if (item === undefined) continue;
        out += `${out.length === 1 ? '' : ','}${JSON.stringify(key)}:${fast(item, depth + 1)}`;
      }
      return `${out}}`;
    }
    default:
      throw NOT_PLAIN_JSON;
  }
}

function write(value: unknown, path: string, depth: number, seen: Set<object>): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new NotJsonError(path, `${value} is not a finite number`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object':
      if (value === null) return 'null';
      if (depth >= MAX_DEPTH) throw new NotJsonError(path, `nested deeper than ${MAX_DEPTH} levels`);
      if (seen.has(value)) throw new NotJsonError(path, 'circular reference');
      seen.add(value);
      try {
        return Array.isArray(value)
          ? writeArray(value, path, depth, seen)
          : writeObject(value, path, depth, seen);
      } finally {
        seen.delete(value);
      }
    default:
      throw new NotJsonError(path, `${typeof value} is not JSON`);
  }
}

function writeArray(value: unknown[], path: string, depth: number, seen: Set<object>): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i++) {
    if (value[i] === undefined) throw new NotJsonError(`${path}[${i}]`, 'undefined is not JSON');
    parts.push(write(value[i], `${path}[${i}]`, depth + 1, seen));
  }
  return `[${parts.join(',')}]`;
}

function writeObject(value: object, path: string, depth: number, seen: Set<object>): string {
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw new NotJsonError(path, `${proto?.constructor?.name ?? 'object'} is not a plain JSON object`);
  }
  const keys = Object.keys(value).sort();
  const parts: string[] = [];
  for (const key of keys) {
    const item = (value as Record<string, unknown>)[key];
    // Absent and undefined optional fields are the same thing in JSON.
    if (item === undefined) continue;
    parts.push(`${JSON.stringify(key)}:${write(item, path ? `${path}.${key}` : key, depth + 1, seen)}`);
  }
  return `{${parts.join(',')}}`;
}
