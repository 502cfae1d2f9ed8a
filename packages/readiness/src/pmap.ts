/**
 * A persistent hash map (a hash array mapped trie) made of plain objects and arrays, so a state
 * holding it stays JSON data. `set` copies one path of at most seven small nodes; old versions
 * stay valid and unchanged. The shape depends only on the keys (collision buckets are kept
 * sorted), so two maps with the same entries serialise to the same bytes whatever the order of
 * insertion. Iteration (`mapEntries`) is sorted by key, for byte-stable output.
 */

const BITS = 5;
const MASK = (1 << BITS) - 1;
/** Past this shift every bit of the 32-bit hash has been used: equal hashes share a bucket. */
const MAX_SHIFT = 30;

interface Leaf<V> {
  readonly h: number;
  readonly k: string;
  readonly v: V;
}
interface Bucket<V> {
  readonly h: number;
  readonly b: readonly Leaf<V>[];
}
interface Branch<V> {
  /** Bitmap of the occupied slots. */
  readonly m: number;
  /** One entry per set bit of `m`, in bit order. */
  readonly c: readonly Entry<V>[];
}
type Entry<V> = Leaf<V> | Bucket<V> | Branch<V>;

export interface PMap<V> {
  readonly size: number;
  readonly root: Branch<V>;
}

export function emptyMap<V>(): PMap<V> {
  return { size: 0, root: { m: 0, c: [] } };
}

/** FNV-1a over UTF-16 code units. */
export function hashKey(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function popcount(x: number): number {
  let v = x - ((x >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

function isLeaf<V>(entry: Entry<V>): entry is Leaf<V> {
  return 'k' in entry;
}
function isBucket<V>(entry: Entry<V>): entry is Bucket<V> {
  return 'b' in entry;
}

export function mapGet<V>(map: PMap<V>, key: string): V | undefined {
  const h = hashKey(key);
  let node: Branch<V> = map.root;
  for (let shift = 0; ; shift += BITS) {
    const bit = 1 << ((h >>> shift) & MASK);
    if ((node.m & bit) === 0) {
      return undefined;
    }
    const entry = node.c[popcount(node.m & (bit - 1))] as Entry<V>;
    if (isLeaf(entry)) {
      return entry.k === key ? entry.v : undefined;
    }
    if (isBucket(entry)) {
      return entry.b.find((leaf) => leaf.k === key)?.v;
    }
    node = entry;
  }
}

export function mapHas<V>(map: PMap<V>, key: string): boolean {
  return mapGet(map, key) !== undefined;
}

function merge<V>(shift: number, a: Leaf<V>, b: Leaf<V>): Entry<V> {
  if (shift > MAX_SHIFT) {
    return { h: a.h, b: a.k < b.k ? [a, b] : [b, a] };
  }
  const slotA = (a.h >>> shift) & MASK;
  const slotB = (b.h >>> shift) & MASK;
  if (slotA === slotB) {
    return { m: 1 << slotA, c: [merge(shift + BITS, a, b)] };
  }
  return { m: (1 << slotA) | (1 << slotB), c: slotA < slotB ? [a, b] : [b, a] };
}

/** Set by `setIn` when the key was not in the map (module state: the walk is synchronous). */
let added = false;

function setIn<V>(node: Branch<V>, shift: number, leaf: Leaf<V>): Branch<V> {
  const bit = 1 << ((leaf.h >>> shift) & MASK);
  const index = popcount(node.m & (bit - 1));
  const old = node.c;
  if ((node.m & bit) === 0) {
    added = true;
    const c: Entry<V>[] = new Array(old.length + 1);
    for (let i = 0; i < index; i++) {
      c[i] = old[i] as Entry<V>;
    }
    c[index] = leaf;
    for (let i = index; i < old.length; i++) {
      c[i + 1] = old[i] as Entry<V>;
    }
    return { m: node.m | bit, c };
  }
  const entry = old[index] as Entry<V>;
  let replacement: Entry<V>;
  if (isLeaf(entry)) {
    if (entry.k === leaf.k) {
      replacement = leaf;
    } else {
      added = true;
      replacement = merge(shift + BITS, entry, leaf);
    }
  } else if (isBucket(entry)) {
    const others = entry.b.filter((other) => other.k !== leaf.k);
    added = others.length === entry.b.length;
    replacement = { h: entry.h, b: [...others, leaf].sort((x, y) => (x.k < y.k ? -1 : 1)) };
  } else {
    replacement = setIn(entry, shift + BITS, leaf);
  }
  const c = old.slice();
  c[index] = replacement;
  return { m: node.m, c };
}

export function mapSet<V>(map: PMap<V>, key: string, value: V): PMap<V> {
  added = false;
  const root = setIn(map.root, 0, { h: hashKey(key), k: key, v: value });
  return { size: added ? map.size + 1 : map.size, root };
}

/** Every entry, sorted by key (code-unit order). */
export function mapEntries<V>(map: PMap<V>): [string, V][] {
  const out: [string, V][] = [];
  const walk = (node: Branch<V>): void => {
    for (const entry of node.c) {
      if (isLeaf(entry)) {
        out.push([entry.k, entry.v]);
      } else if (isBucket(entry)) {
        for (const leaf of entry.b) {
          out.push([leaf.k, leaf.v]);
        }
      } else {
        walk(entry);
      }
    }
  };
  walk(map.root);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

export function mapValues<V>(map: PMap<V>): V[] {
  return mapEntries(map).map(([, value]) => value);
}

function collectValues<V>(node: Branch<V>, out: V[]): void {
  for (const entry of node.c) {
    if (isLeaf(entry)) {
      out.push(entry.v);
    } else if (isBucket(entry)) {
      for (const leaf of entry.b) {
        out.push(leaf.v);
      }
    } else {
      collectValues(entry, out);
    }
  }
}

/** Every value, in the trie's order (not sorted): for sums, minima and the like, where order does not matter. */
export function mapValuesUnordered<V>(map: PMap<V>): V[] {
  const out: V[] = [];
  collectValues(map.root, out);
  return out;
}
