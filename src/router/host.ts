// Host patterns of radixtree_host_uri: an exact host, or a leading `*` wildcard matching any host that ends
// with the rest (`*.foo.com` matches `a.foo.com` and `a.b.foo.com`, not `foo.com`; a lone `*` matches every
// host). Precedence for one request host: the exact entry, then wildcards from the longest suffix down.
// Hosts compare case-insensitively (patterns are lower-cased here; request hosts arrive lower-cased).
// Writes follow radix.ts's Edit discipline: a table not owned by the edit is copied first, sharing its parts.
import { ChunkedMap } from './chunked-map.ts';
import { Edit, RadixTree } from './radix.ts';

/** The host pattern syntax of APISIX's schema: only a leading wildcard is allowed. */
const HOST_PATTERN = /^\*$|^\*?[0-9a-zA-Z\-._[\]:]+$/;

export function isValidHostPattern(host: string): boolean {
  return HOST_PATTERN.test(host);
}

/** The table key of a (valid) host pattern. */
export function normalizeHostPattern(pattern: string): string {
  return pattern.toLowerCase();
}

export class HostTable<V> {
  private exact = new ChunkedMap<V>();
  /** Wildcard patterns without their `*`, matched as suffixes. */
  private wildcards = new RadixTree<V>({ reversed: true });

  get size(): number {
    return this.exact.size + this.wildcards.size;
  }

  /** A table answering like this one, to be changed under another Edit. */
  copy(): HostTable<V> {
    const t = new HostTable<V>();
    t.exact = this.exact;
    t.wildcards = this.wildcards;
    return t;
  }

  /** The value of a normalized pattern. */
  get(host: string): V | undefined {
    return host[0] !== '*' ? this.exact.get(host) : this.wildcards.get(host.slice(1));
  }

  /** Sets the value of a normalized pattern; this table must be owned by `edit`. */
  set(host: string, value: V, edit: Edit): void {
    if (host[0] !== '*') this.ownExact(edit).set(host, value, edit);
    else this.ownWildcards(edit).set(host.slice(1), value, edit);
  }

  delete(host: string, edit: Edit): void {
    if (host[0] !== '*') this.ownExact(edit).delete(host, edit);
    else this.ownWildcards(edit).delete(host.slice(1), edit);
  }

  private ownExact(edit: Edit): ChunkedMap<V> {
    if (!edit.owns(this.exact)) this.exact = edit.own(this.exact.copy());
    return this.exact;
  }

  private ownWildcards(edit: Edit): RadixTree<V> {
    if (!edit.owns(this.wildcards)) this.wildcards = edit.own(this.wildcards.copy());
    return this.wildcards;
  }

  /** hot path */
  getExact(host: string): V | undefined {
    return this.exact.get(host);
  }

  /**
   * hot path: writes the values of wildcard patterns matching `host` into `out`, shortest suffix first, and
   * returns how many. Reusing one `out` array keeps lookups allocation-free once it has grown.
   */
  collectWildcards(host: string, out: V[]): number {
    return this.wildcards.collectSuffixes(host, out);
  }
}
