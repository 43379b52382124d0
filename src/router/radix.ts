// A compressed character trie (radix tree) over string keys. Lookup answers the one question the router asks:
// which stored keys are prefixes of this string (rax's "seek <=, then walk up" in lua-resty-radixtree).
// A tree built with `reversed` stores keys back to front and answers "which keys are suffixes" (wildcard
// hosts). Built once per snapshot; lookups only read.

/** Above this many children a node also indexes them in a Map; below, a linear scan of codes is faster. */
const SCAN_LIMIT = 8;

class RadixNode<V> {
  label: string;
  value: V | undefined = undefined;
  /** First character codes of the children, parallel to `nodes`. */
  codes: number[] = [];
  nodes: RadixNode<V>[] = [];
  index: Map<number, RadixNode<V>> | null = null;
  constructor(label: string) {
    this.label = label;
  }

  /** hot path */
  child(code: number): RadixNode<V> | undefined {
    if (this.index !== null) return this.index.get(code);
    const codes = this.codes;
    for (let i = 0; i < codes.length; i++) {
      if (codes[i] === code) return this.nodes[i];
    }
    return undefined;
  }

  setChild(code: number, node: RadixNode<V>): void {
    const at = this.codes.indexOf(code);
    if (at >= 0) {
      this.nodes[at] = node;
    } else {
      this.codes.push(code);
      this.nodes.push(node);
    }
    if (this.index !== null) this.index.set(code, node);
    else if (this.codes.length > SCAN_LIMIT) this.index = new Map(this.codes.map((c, i) => [c, this.nodes[i]]));
  }
}

function commonPrefix(a: string, aFrom: number, b: string): number {
  const max = Math.min(a.length - aFrom, b.length);
  let i = 0;
  while (i < max && a.charCodeAt(aFrom + i) === b.charCodeAt(i)) i++;
  return i;
}

function reverse(s: string): string {
  let out = '';
  for (let i = s.length - 1; i >= 0; i--) out += s[i];
  return out;
}

export class RadixTree<V> {
  private readonly root = new RadixNode<V>('');
  private readonly reversed: boolean;
  private count = 0;

  constructor(opts: { reversed?: boolean } = {}) {
    this.reversed = opts.reversed === true;
  }

  get size(): number {
    return this.count;
  }

  /** Returns the value stored at `key`, creating it with `create` first if missing. */
  upsert(rawKey: string, create: () => V): V {
    const key = this.reversed ? reverse(rawKey) : rawKey;
    let node = this.root;
    let pos = 0;
    while (pos < key.length) {
      const code = key.charCodeAt(pos);
      let child = node.child(code);
      if (child === undefined) {
        child = new RadixNode<V>(key.slice(pos));
        node.setChild(code, child);
        node = child;
        pos = key.length;
        break;
      }
      const common = commonPrefix(key, pos, child.label);
      if (common < child.label.length) {
        const split = new RadixNode<V>(child.label.slice(0, common));
        child.label = child.label.slice(common);
        split.setChild(child.label.charCodeAt(0), child);
        node.setChild(code, split);
        child = split;
      }
      node = child;
      pos += common;
    }
    if (node.value === undefined) {
      node.value = create();
      this.count++;
    }
    return node.value;
  }

  /**
   * hot path: writes the values of all keys that are prefixes of `s` into `out`, shortest key first, and
   * returns how many. Reusing one `out` array across calls keeps lookups allocation-free once it has grown.
   */
  collect(s: string, out: V[]): number {
    let n = 0;
    let node = this.root;
    if (node.value !== undefined) out[n++] = node.value;
    let pos = 0;
    const len = s.length;
    while (pos < len) {
      const child = node.child(s.charCodeAt(pos));
      if (child === undefined) break;
      const label = child.label;
      const end = pos + label.length;
      if (end > len) break;
      let i = 1;
      while (i < label.length && label.charCodeAt(i) === s.charCodeAt(pos + i)) i++;
      if (i < label.length) break;
      pos = end;
      node = child;
      if (node.value !== undefined) out[n++] = node.value;
    }
    return n;
  }

  /** hot path: like `collect`, for a `reversed` tree: the values of keys that are suffixes of `s`. */
  collectSuffixes(s: string, out: V[]): number {
    let n = 0;
    let node = this.root;
    if (node.value !== undefined) out[n++] = node.value;
    const len = s.length;
    let pos = len - 1;
    while (pos >= 0) {
      const child = node.child(s.charCodeAt(pos));
      if (child === undefined) break;
      const label = child.label;
      if (label.length > pos + 1) break;
      let i = 1;
      while (i < label.length && label.charCodeAt(i) === s.charCodeAt(pos - i)) i++;
      if (i < label.length) break;
      pos -= label.length;
      node = child;
      if (node.value !== undefined) out[n++] = node.value;
    }
    return n;
  }
}
