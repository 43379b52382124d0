// Host patterns of radixtree_host_uri: an exact host, or a leading `*` wildcard matching any host that ends
// with the rest (`*.foo.com` matches `a.foo.com` and `a.b.foo.com`, not `foo.com`; a lone `*` matches every
// host). Precedence for one request host: the exact entry, then wildcards from the longest suffix down.
// Hosts compare case-insensitively (patterns are lower-cased here; request hosts arrive lower-cased).
import { RadixTree } from './radix.ts';

/** The host pattern syntax of APISIX's schema: only a leading wildcard is allowed. */
const HOST_PATTERN = /^\*$|^\*?[0-9a-zA-Z\-._[\]:]+$/;

export function isValidHostPattern(host: string): boolean {
  return HOST_PATTERN.test(host);
}

export class HostTable<V> {
  private readonly exact = new Map<string, V>();
  /** Wildcard patterns without their `*`, matched as suffixes. */
  private readonly wildcards = new RadixTree<V>({ reversed: true });

  get size(): number {
    return this.exact.size + this.wildcards.size;
  }

  /** Returns the value for a (valid) host pattern, creating it with `create` first if missing. */
  upsert(pattern: string, create: () => V): V {
    const host = pattern.toLowerCase();
    if (host[0] !== '*') {
      let v = this.exact.get(host);
      if (v === undefined) {
        v = create();
        this.exact.set(host, v);
      }
      return v;
    }
    return this.wildcards.upsert(host.slice(1), create);
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
