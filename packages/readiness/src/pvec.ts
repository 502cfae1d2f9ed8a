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
 * O(1) when the last item qualifies (reading at the present, the usual case); else O(log n)
 * probes of O(log32 n) each.
 */
export function vecLastIndexAtOrBefore<T>(vec: PVec<T>, key: number, keyOf: (item: T) => number): number {
  const n = vec.n;
  if (n === 0) {
    return -1;
  }
  if (keyOf(vec.t[vec.t.length - 1] as T) <= key) {
    return n - 1;
  }
  let lo = 0;
  let hi = n - 1;
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

function trimTrie(node: Node, level: number, leaves: number): Node {
  if (level === BITS) {
    return node.slice(0, leaves);
  }
  const perChild = 1 << (level - BITS);
  const full = Math.floor(leaves / perChild);
  const rest = leaves - full * perChild;
  const out = node.slice(0, full);
  if (rest > 0) {
    out.push(trimTrie(node[full] as Node, level - BITS, rest));
  }
  return out;
}

/**
 * The first `count` items: the same trie pushing them would build. O(log n): the leaves before
 * the cut are shared, one path is trimmed, and the leaf holding the last item becomes the tail.
 */
export function vecTake<T>(vec: PVec<T>, count: number): PVec<T> {
  if (count >= vec.n) {
    return vec;
  }
  if (count <= 0) {
    return emptyVec<T>();
  }
  const offset = tailOffset(vec.n);
  if (count > offset) {
    return { n: count, s: vec.s, r: vec.r, t: vec.t.slice(0, count - offset) };
  }
  const newOffset = tailOffset(count);
  const t = vecChunk(vec, newOffset).items.slice(0, count - newOffset);
  const leaves = newOffset >>> BITS;
  if (leaves === 0) {
    return { n: count, s: BITS, r: [], t };
  }
  let r = trimTrie(vec.r as Node, vec.s, leaves);
  let s = vec.s;
  while (s > BITS && r.length === 1) {
    r = r[0] as Node;
    s -= BITS;
  }
  return { n: count, s, r, t };
}

/** Appends items in order, filling the tail a chunk at a time rather than copying it per item. */
export function vecPushAll<T>(vec: PVec<T>, items: readonly T[]): PVec<T> {
  let out = vec;
  let i = 0;
  while (i < items.length) {
    const room = WIDTH - (out.n - tailOffset(out.n));
    if (room === 0) {
      out = vecPush(out, items[i] as T);
      i++;
      continue;
    }
    const take = Math.min(room, items.length - i);
    const t = out.t.slice();
    for (let j = 0; j < take; j++) {
      t.push(items[i + j] as T);
    }
    out = { n: out.n + take, s: out.s, r: out.r, t };
    i += take;
  }
  return out;
}

/** Items from `from` to the end, read a leaf at a time. */
export function vecSliceFrom<T>(vec: PVec<T>, from: number): T[] {
  const out: T[] = [];
  let index = Math.max(0, from);
  while (index < vec.n) {
    const { items, at } = vecChunk(vec, index);
    for (let j = at; j < items.length && index < vec.n; j++, index++) {
      out.push(items[j] as T);
    }
  }
  return out;
}

/**
 * Where an item with `key` goes in a vector sorted by `keyOf`, after every item with an equal
 * key. Backdated items usually land a few places before the end, so the tail is scanned from its
 * end first; anything earlier is a binary search.
 */
export function vecInsertionIndex<T>(vec: PVec<T>, key: number, keyOf: (item: T) => number): number {
  const t = vec.t;
  let j = t.length;
  while (j > 0 && keyOf(t[j - 1] as T) > key) {
    j--;
  }
  if (j > 0 || vec.n === t.length) {
    return vec.n - t.length + j;
  }
  return vecLastIndexAtOrBefore(vec, key, keyOf) + 1;
}

/**
 * The vector with `items` put at `index` in place of the items from there on (`items` holds them
 * again, after whatever goes before them). An index in a tail with room copies the tail only;
 * else the trie before the index is kept and the rest pushed again: O(log n + k).
 */
export function vecReplaceFrom<T>(vec: PVec<T>, index: number, items: readonly T[]): PVec<T> {
  const offset = tailOffset(vec.n);
  const n = index + items.length;
  if (index >= offset && n > offset && n - offset <= WIDTH) {
    const t = vec.t.slice(0, index - offset);
    for (const item of items) {
      t.push(item);
    }
    return { n, s: vec.s, r: vec.r, t };
  }
  return vecPushAll(vecTake(vec, index), items);
}

/**
 * Inserts into a vector sorted by `keyOf`, after every item with an equal key (so ties keep the
 * order in which they were recorded). Appending in order costs what `push` costs; an insert
 * k items before the end (a backdated fact) keeps the trie before it and rebuilds the rest:
 * O(log n + k).
 */
export function vecInsertSorted<T>(vec: PVec<T>, item: T, keyOf: (item: T) => number): PVec<T> {
  const last = vecLast(vec);
  const key = keyOf(item);
  if (last === undefined || keyOf(last) <= key) {
    return vecPush(vec, item);
  }
  const at = vecInsertionIndex(vec, key, keyOf);
  const rest = vecSliceFrom(vec, at);
  rest.unshift(item);
  return vecReplaceFrom(vec, at, rest);
}
