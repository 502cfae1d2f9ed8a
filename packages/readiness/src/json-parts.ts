/**
 * `JSON.stringify(value)` cut into parts of about `size` characters, made one at a time.
 *
 * A mission of 100,000 events has a state of about 18 MB of JSON. Made as one string, then copied
 * to UTF-8 for the database driver and once more by the database, it took three times that in
 * memory for a moment, at the end of every rebuild and at each snapshot of a large mission: the
 * peak of the process. Parts are written one by one, so only a part is ever held.
 *
 * The concatenation of the parts is exactly `JSON.stringify(value)` for plain data (objects,
 * arrays, strings, finite numbers, booleans, null, and undefined members, which are left out as
 * JSON.stringify leaves them). A subtree of up to `LEAF_VALUES` values goes through
 * JSON.stringify whole, which is much faster than walking it here; larger ones are walked. A part
 * is longer than `size` only by the last such subtree (or string) written into it.
 */
const LEAF_VALUES = 2048;

interface Frame {
  readonly node: Record<string, unknown> | readonly unknown[];
  /** The keys to write, for an object; null for an array. */
  readonly keys: string[] | null;
  index: number;
  /** Whether a member has been written yet (a comma goes before the next one). */
  wrote: boolean;
}

export function* jsonParts(
  value: unknown,
  size: number,
  leafValues = LEAF_VALUES,
): Generator<string, void, undefined> {
  if (!(size > 0)) throw new RangeError(`part size must be positive, got ${size}`);
  const isWalked = (v: unknown): v is Record<string, unknown> | readonly unknown[] => walked(v, leafValues);
  if (!isWalked(value)) {
    const whole = JSON.stringify(value) as string | undefined;
    if (whole !== undefined) yield whole;
    return;
  }
  let out = '';
  const stack: Frame[] = [open(value)];
  out += Array.isArray(value) ? '[' : '{';
  while (stack.length > 0) {
    const frame = stack[stack.length - 1] as Frame;
    const { node, keys } = frame;
    const length = keys === null ? (node as readonly unknown[]).length : keys.length;
    if (frame.index >= length) {
      stack.pop();
      out += keys === null ? ']' : '}';
    } else {
      const i = frame.index++;
      const key = keys === null ? null : (keys[i] as string);
      const member = key === null ? (node as readonly unknown[])[i] : (node as Record<string, unknown>)[key];
      const separator = frame.wrote ? ',' : '';
      const label = key === null ? '' : `${JSON.stringify(key)}:`;
      if (isWalked(member)) {
        out += separator + label + (Array.isArray(member) ? '[' : '{');
        frame.wrote = true;
        stack.push(open(member));
      } else {
        const piece = JSON.stringify(member) as string | undefined;
        if (piece !== undefined) {
          out += separator + label + piece;
          frame.wrote = true;
        } else if (key === null) {
          out += `${separator}null`;
          frame.wrote = true;
        }
      }
    }
    if (out.length >= size) {
      yield out;
      out = '';
    }
  }
  if (out.length > 0) yield out;
}

function open(node: Record<string, unknown> | readonly unknown[]): Frame {
  return { node, keys: Array.isArray(node) ? null : Object.keys(node), index: 0, wrote: false };
}

/** Whether a value is an array or plain object of more than `leafValues` values (walked here). */
function walked(value: unknown, leafValues: number): value is Record<string, unknown> | readonly unknown[] {
  if (typeof value !== 'object' || value === null) return false;
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return false;
  return fits(value, leafValues) < 0;
}

/** The budget left after counting the values under `value`, or a negative number once it runs out. */
function fits(value: object, budget: number): number {
  let left = budget;
  if (Array.isArray(value)) {
    left -= value.length;
    for (let i = 0; i < value.length && left >= 0; i++) {
      const item: unknown = value[i];
      if (typeof item === 'object' && item !== null) left = fits(item, left);
    }
    return left;
  }
  for (const key in value) {
    if (--left < 0) return left;
    const item = (value as Record<string, unknown>)[key];
    if (typeof item === 'object' && item !== null) left = fits(item, left);
  }
  return left;
}
