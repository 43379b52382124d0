// A compressed character trie (radix tree) over string keys. Lookup answers the one question the router asks:
// which stored keys are prefixes of this string (rax's "seek <=, then walk up" in lua-resty-radixtree).
// A tree built with `reversed` stores keys back to front and answers "which keys are suffixes" (wildcard
// hosts).
//
// Persistence: writes take an Edit. A node the edit does not own is copied before it is changed (path
// copying), so a copy() of a tree taken before an edit keeps answering as before while sharing every
// untouched subtree with the edited tree. Lookups only read.

/** Ownership of the objects created during one batch of changes (a "transient" in Clojure's terms). */
export class Edit {
  /** A build from nothing owns everything it reaches, so nothing needs tracking. */
  private readonly fresh: boolean;
  private readonly owned = new WeakSet<object>();

  constructor(fresh: boolean) {
    this.fresh = fresh;
  }

  owns(o: object): boolean {
    return this.fresh || this.owned.has(o);
  }

  own<T extends object>(o: T): T {
    if (!this.fresh) this.owned.add(o);
    return o;
  }
}

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

  removeChild(code: number): void {
    const at = this.codes.indexOf(code);
    if (at < 0) return;
    this.codes.splice(at, 1);
    this.nodes.splice(at, 1);
    if (this.index !== null) {
      if (this.codes.length > SCAN_LIMIT) this.index.delete(code);
      else this.index = null;
    }
  }

  /** A copy that shares the children (not the arrays holding them). */
  copy(): RadixNode<V> {
    const n = new RadixNode<V>(this.label);
    n.value = this.value;
    n.codes = this.codes.slice();
    n.nodes = this.nodes.slice();
    n.index = this.index === null ? null : new Map(this.index);
    return n;
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

function ownNode<V>(node: RadixNode<V>, edit: Edit): RadixNode<V> {
  return edit.owns(node) ? node : edit.own(node.copy());
}

export class RadixTree<V> {
  private root: RadixNode<V>;
  private readonly reversed: boolean;
  private count = 0;

  constructor(opts: { reversed?: boolean } = {}) {
    this.reversed = opts.reversed === true;
    this.root = new RadixNode<V>('');
  }

  get size(): number {
    return this.count;
  }

  /** A tree answering like this one; edits of either leave the other unchanged (with distinct Edits). */
  copy(): RadixTree<V> {
    const t = new RadixTree<V>({ reversed: this.reversed });
    t.root = this.root;
    t.count = this.count;
    return t;
  }

  /** The value stored at exactly `key`. */
  get(rawKey: string): V | undefined {
    const key = this.reversed ? reverse(rawKey) : rawKey;
    let node = this.root;
    let pos = 0;
    while (pos < key.length) {
      const child = node.child(key.charCodeAt(pos));
      if (child === undefined || !key.startsWith(child.label, pos)) return undefined;
      pos += child.label.length;
      node = child;
    }
    return node.value;
  }

  /** Stores `value` at `key`, copying the nodes on the way that `edit` does not own. */
  set(rawKey: string, value: V, edit: Edit): void {
    const key = this.reversed ? reverse(rawKey) : rawKey;
    let node = (this.root = ownNode(this.root, edit));
    let pos = 0;
    while (pos < key.length) {
      const code = key.charCodeAt(pos);
      let child = node.child(code);
      if (child === undefined) {
        child = edit.own(new RadixNode<V>(key.slice(pos)));
        node.setChild(code, child);
        node = child;
        break;
      }
      const common = commonPrefix(key, pos, child.label);
      if (common < child.label.length) {
        const rest = edit.own(new RadixNode<V>(child.label.slice(common)));
        rest.value = child.value;
        rest.codes = child.codes.slice();
        rest.nodes = child.nodes.slice();
        rest.index = child.index === null ? null : new Map(child.index);
        const split = edit.own(new RadixNode<V>(child.label.slice(0, common)));
        split.setChild(rest.label.charCodeAt(0), rest);
        node.setChild(code, split);
        child = split;
      } else {
        child = ownNode(child, edit);
        node.setChild(code, child);
      }
      node = child;
      pos += common;
    }
    if (node.value === undefined) this.count++;
    node.value = value;
  }

  /** Removes `key`, merging nodes left with no value and a single child. */
  delete(rawKey: string, edit: Edit): void {
    const key = this.reversed ? reverse(rawKey) : rawKey;
    if (this.get(rawKey) === undefined) return;
    const path: RadixNode<V>[] = [];
    let node = (this.root = ownNode(this.root, edit));
    let pos = 0;
    while (pos < key.length) {
      const code = key.charCodeAt(pos);
      const child = ownNode(node.child(code) as RadixNode<V>, edit);
      node.setChild(code, child);
      path.push(node);
      pos += child.label.length;
      node = child;
    }
    node.value = undefined;
    this.count--;
    // Walk up: drop empty leaves, fold a valueless single-child node into its child.
    for (let i = path.length - 1; i >= 0; i--) {
      const parent = path[i]!;
      const code = node.label.charCodeAt(0);
      if (node.value === undefined && node.nodes.length === 0) {
        parent.removeChild(code);
      } else if (node.value === undefined && node.nodes.length === 1) {
        const only = node.nodes[0]!;
        const merged = edit.own(new RadixNode<V>(node.label + only.label));
        merged.value = only.value;
        merged.codes = only.codes.slice();
        merged.nodes = only.nodes.slice();
        merged.index = only.index === null ? null : new Map(only.index);
        parent.setChild(code, merged);
      } else {
        break;
      }
      node = parent;
    }
  }

  /** Every stored (key, value), in no particular order. */
  *entries(): IterableIterator<[string, V]> {
    const stack: [RadixNode<V>, string][] = [[this.root, '']];
    while (stack.length > 0) {
      const [node, prefix] = stack.pop()!;
      const key = prefix + node.label;
      if (node.value !== undefined) yield [this.reversed ? reverse(key) : key, node.value];
      for (const n of node.nodes) stack.push([n, key]);
    }
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
