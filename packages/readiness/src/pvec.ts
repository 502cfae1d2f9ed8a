/**
 * A persistent vector (a bit-partitioned trie of 32-wide arrays with a tail, after Clojure's
 * PersistentVector) made of plain arrays and objects, so a state holding it stays JSON data.
 *
 * Nothing is ever mutated after it is built: `push` copies the tail (at most 32 slots) and, every
 * 32 pushes, one path of the trie (log32 n nodes). Old versions stay valid and unchanged, which
 * is what `evolve` needs to be pure without copying whole timelines on every event. The shape
 * depends only on the elements, so two vectors holding the same items serialise to the same bytes.
 */

const BITS = 5;
const WIDTH = 1 << BITS;
const MASK = WIDTH - 1;

type Node = unknown[];

export interface PVec<T> {
  /** Number of items. */
  readonly n: number;
  /** Level of the root: 5 when the trie holds at most 32 leaves, then 10, 15, ... */
  readonly s: number;
  /** Root node: its children are leaves (32 items each) when `s` is 5, else nodes one level down. */
  readonly r: readonly unknown[];
  /** The last 1 to 32 items (empty only for the empty vector). */
  readonly t: readonly T[];
  /** Phantom marker so that a PVec<A> is not assignable to a PVec<B>. */
  readonly __item?: T;
}

const EMPTY: PVec<never> = Object.freeze({ n: 0, s: BITS, r: Object.freeze([]), t: Object.freeze([]) });

export function emptyVec<T>(): PVec<T> {
  return EMPTY as PVec<T>;
}

function tailOffset(n: number): number {
  return n < WIDTH ? 0 : ((n - 1) >>> BITS) << BITS;
}

export function vecGet<T>(vec: PVec<T>, index: number): T {
  if (index < 0 || index >= vec.n || !Number.isInteger(index)) {
    throw new RangeError(`index ${index} out of range 0..${vec.n - 1}`);
  }
  if (index >= tailOffset(vec.n)) {
    return vec.t[index - tailOffset(vec.n)] as T;
  }
  let node = vec.r as Node;
  for (let level = vec.s; level > 0; level -= BITS) {
    node = node[(index >>> level) & MASK] as Node;
  }
  return node[index & MASK] as T;
}

/**
 * The array holding `index` and the position of `index` in it: the items of one leaf (or of the
 * tail) can then be read with plain array access, for scans.
 */
export function vecChunk<T>(
  vec: PVec<T>,
  index: number,
): { readonly items: readonly T[]; readonly at: number } {
  const offset = tailOffset(vec.n);
  if (index >= offset) {
    return { items: vec.t, at: index - offset };
  }
  let node = vec.r as Node;
  for (let level = vec.s; level > 0; level -= BITS) {
    node = node[(index >>> level) & MASK] as Node;
  }
  return { items: node as T[], at: index & MASK };
}

export function vecLast<T>(vec: PVec<T>): T | undefined {
  return vec.n === 0 ? undefined : vec.t[vec.t.length - 1];
}

function newPath(level: number, node: Node): Node {
  return level === 0 ? node : [newPath(level - BITS, node)];
}

function pushTail(count: number, level: number, parent: Node, tail: Node): Node {
  const subIndex = ((count - 1) >>> level) & MASK;
  const copy = parent.slice();
  if (level === BITS) {
    copy[subIndex] = tail;
  } else {
    const child = parent[subIndex] as Node | undefined;
    copy[subIndex] =
      child === undefined ? newPath(level - BITS, tail) : pushTail(count, level - BITS, child, tail);
  }
  return copy;
}

export function vecPush<T>(vec: PVec<T>, item: T): PVec<T> {
  const { n, s, r, t } = vec;
  if (n - tailOffset(n) < WIDTH) {
    return { n: n + 1, s, r, t: [...t, item] };
  }
  // The tail is full: it moves into the trie and a new tail starts.
  const full = t as Node;
  if (n >>> BITS > 1 << s) {
    return { n: n + 1, s: s + BITS, r: [r, newPath(s, full)], t: [item] };
  }
  return { n: n + 1, s, r: pushTail(n, s, r as Node, full), t: [item] };
}

/** Builds the same trie `push` would build, in O(n). */
export function vecFromArray<T>(items: readonly T[]): PVec<T> {
  const n = items.length;
  if (n === 0) {
    return emptyVec<T>();
  }
  const offset = tailOffset(n);
  let nodes: Node[] = [];
  for (let i = 0; i < offset; i += WIDTH) {
    nodes.push(items.slice(i, i + WIDTH));
  }
  let shift = BITS;
  while (nodes.length > WIDTH) {
    const parents: Node[] = [];
    for (let i = 0; i < nodes.length; i += WIDTH) {
      parents.push(nodes.slice(i, i + WIDTH));
    }
    nodes = parents;
    shift += BITS;
  }
  return { n, s: shift, r: nodes, t: items.slice(offset) };
}

export function vecToArray<T>(vec: PVec<T>): T[] {
  const out: T[] = [];
  const walk = (node: Node, level: number): void => {
    if (level === 0) {
      for (const item of node) {
        out.push(item as T);
      }
      return;
    }
    for (const child of node) {
      walk(child as Node, level - BITS);
    }
  };
  walk(vec.r as Node, vec.s);
  for (const item of vec.t) {
    out.push(item);
  }
  return out;
}

/**
 * Index of the last item whose key is ≤ `key` in a vector sorted by `keyOf`, or -1.
 * O(log n) probes of O(log32 n) each.
 */
export function vecLastIndexAtOrBefore<T>(vec: PVec<T>, key: number, keyOf: (item: T) => number): number {
  let lo = 0;
  let hi = vec.n;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (keyOf(vecGet(vec, mid)) <= key) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo - 1;
}

/**
 * Inserts into a vector sorted by `keyOf`, after every item with an equal key (so ties keep the
 * order in which they were recorded). Appending in order costs what `push` costs; an insert
 * before the end (a backdated fact) rebuilds the vector in O(n).
 */
export function vecInsertSorted<T>(vec: PVec<T>, item: T, keyOf: (item: T) => number): PVec<T> {
  const last = vecLast(vec);
  if (last === undefined || keyOf(last) <= keyOf(item)) {
    return vecPush(vec, item);
  }
  const items = vecToArray(vec);
  const at = vecLastIndexAtOrBefore(vec, keyOf(item), keyOf) + 1;
  items.splice(at, 0, item);
  return vecFromArray(items);
}
