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

/**
 * Every event is serialised on the append path, so the common case builds no path strings: the
 * path is kept as a stack of keys and spelt out only for an error, and the containers being
 * written are a short array (JSON is shallow) rather than a set.
 */
export function canonicalJson(value: unknown): string {
  return write(value, [], []);
}

function write(value: unknown, path: Array<string | number>, open: object[]): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw notJson(path, `${value} is not a finite number`);
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'object': {
      if (value === null) return 'null';
      if (open.length >= MAX_DEPTH) throw notJson(path, `nested deeper than ${MAX_DEPTH} levels`);
      if (open.includes(value)) throw notJson(path, 'circular reference');
      open.push(value);
      const text = Array.isArray(value) ? writeArray(value, path, open) : writeObject(value, path, open);
      open.pop();
      return text;
    }
    default:
      throw notJson(path, `${typeof value} is not JSON`);
  }
}

function writeArray(value: unknown[], path: Array<string | number>, open: object[]): string {
  let out = '[';
  for (let i = 0; i < value.length; i++) {
    path.push(i);
    const item: unknown = value[i];
    if (item === undefined) throw notJson(path, 'undefined is not JSON');
    out += i === 0 ? write(item, path, open) : `,${write(item, path, open)}`;
    path.pop();
  }
  return `${out}]`;
}

function writeObject(value: object, path: Array<string | number>, open: object[]): string {
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) {
    throw notJson(path, `${proto?.constructor?.name ?? 'object'} is not a plain JSON object`);
  }
  const keys = Object.keys(value).sort();
  let out = '{';
  for (const key of keys) {
    const item = (value as Record<string, unknown>)[key];
    // Absent and undefined optional fields are the same thing in JSON.
    if (item === undefined) continue;
    path.push(key);
    out += `${out.length === 1 ? '' : ','}${JSON.stringify(key)}:${write(item, path, open)}`;
    path.pop();
  }
  return `${out}}`;
}

function notJson(path: ReadonlyArray<string | number>, reason: string): NotJsonError {
  const spelt = path.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`));
  return new NotJsonError(spelt.join(''), reason);
}
