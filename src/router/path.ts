// Route URI patterns with lua-resty-radixtree semantics:
// - no `:` and no `*`: exact match;
// - otherwise the text before the first `:` or `*` is a prefix key, and the URI is split on `/`: a segment
//   starting with `:` is a parameter (one or more non-`/` characters, named by the rest of the segment), a
//   segment starting with `*` matches anything including `/` (possibly empty; `*name` captures it as `name`,
//   a bare `*` captures nothing), other segments are literal. The whole request path must match.
// - a pattern without parameter or `*` segments (e.g. `/foo*`, `/a/*`) is a plain prefix match on its key.
// Literal segments are compared literally (lua-resty-radixtree splices them into a PCRE unescaped).

export const EXACT = 0;
export const PREFIX = 1;
export const PATTERN = 2;

const LITERAL = 0;
const PARAM = 1;
const STAR = 2;

function segmentType(text: string): number {
  if (text[0] === ':') return PARAM;
  if (text[0] === '*') return STAR;
  return LITERAL;
}

/**
 * Returns `name` as V8's internalized property-key string. Capture names come from `slice`, so every pattern
 * holds its own copy; storing those as keys would make each params object creation miss the store cache.
 */
function internalize(name: string): string {
  return Object.keys({ [name]: true })[0];
}

function escapeRegex(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
}

export class PathPattern {
  readonly kind: number;
  /** EXACT: the whole path; PREFIX and PATTERN: the radix key (the text before the first `:` or `*`). */
  readonly key: string;
  /** The route's URI as written; its length orders routes sharing a key. */
  readonly source: string;
  /** Names of the captures, in order; empty when the pattern captures nothing. */
  readonly names: readonly string[];
  /** Start/end offsets of the last successful match's captures, 2 per name. */
  readonly bounds: Int32Array;
  /** The literal text before the first dynamic segment (ends with `/`); `match` checks it from key.length. */
  private readonly head: string;
  /** Segments from the first dynamic one on, as parallel arrays. */
  private readonly types: Uint8Array;
  private readonly texts: readonly string[];
  private readonly captures: readonly boolean[];
  /** Set when a `*` segment is not last: matching falls back to a RegExp over the whole path. */
  private readonly regex: RegExp | null;

  constructor(source: string) {
    this.source = source;
    const colon = source.indexOf(':');
    const star = source.indexOf('*');
    const cut = colon < 0 ? star : star < 0 ? colon : Math.min(colon, star);
    const segments = source.split('/');
    const types = segments.map(segmentType);
    const firstDynamic = types.findIndex((t) => t !== LITERAL);
    const last = segments.length - 1;
    const captures = segments.map((text, i) => types[i] === PARAM || (types[i] === STAR && text.length > 1));
    this.names = segments.filter((_, i) => captures[i]).map((text) => internalize(text.slice(1)));
    this.bounds = new Int32Array(this.names.length * 2);

    if (cut < 0) {
      this.kind = EXACT;
      this.key = source;
    } else {
      this.key = source.slice(0, cut);
      const bareTrailingStar = firstDynamic === last && types[last] === STAR && !captures[last];
      this.kind = firstDynamic < 0 || bareTrailingStar ? PREFIX : PATTERN;
    }
    const from = firstDynamic < 0 ? segments.length : firstDynamic;
    this.head = from === 0 ? '' : segments.slice(0, from).join('/') + '/';
    this.types = Uint8Array.from(types.slice(from));
    this.texts = segments.slice(from);
    this.captures = captures.slice(from);
    const midStar = types.some((t, i) => t === STAR && i !== last);
    this.regex = this.kind === PATTERN && midStar ? buildRegex(segments, types) : null;
  }

  /**
   * hot path: whether `path` (which starts with `key`, as the radix lookup guarantees) matches a PATTERN
   * route; on success `bounds` holds the capture offsets. Allocates nothing unless a mid-path `*` needs the
   * RegExp fallback.
   */
  match(path: string): boolean {
    if (this.regex !== null) return this.matchRegex(path);
    const len = path.length;
    const head = this.head;
    if (head.length > len) return false;
    for (let i = this.key.length; i < head.length; i++) {
      if (path.charCodeAt(i) !== head.charCodeAt(i)) return false;
    }
    const types = this.types;
    const texts = this.texts;
    const bounds = this.bounds;
    let pos = head.length;
    let cap = 0;
    for (let k = 0; k < types.length; k++) {
      if (k > 0) {
        if (pos >= len || path.charCodeAt(pos) !== 47) return false;
        pos++;
      }
      const type = types[k];
      if (type === PARAM) {
        let end = path.indexOf('/', pos);
        if (end < 0) end = len;
        if (end === pos) return false;
        bounds[cap++] = pos;
        bounds[cap++] = end;
        pos = end;
      } else if (type === STAR) {
        if (this.captures[k]) {
          bounds[cap++] = pos;
          bounds[cap++] = len;
        }
        pos = len;
      } else {
        const text = texts[k];
        if (pos + text.length > len) return false;
        for (let i = 0; i < text.length; i++) {
          if (path.charCodeAt(pos + i) !== text.charCodeAt(i)) return false;
        }
        pos += text.length;
      }
    }
    return pos === len;
  }

  private matchRegex(path: string): boolean {
    const m = (this.regex as RegExp).exec(path);
    if (m === null || m.indices === undefined) return false;
    const spans = m.indices;
    for (let i = 0; i < this.names.length; i++) {
      const span = spans[i + 1] ?? [0, 0];
      this.bounds[2 * i] = span[0];
      this.bounds[2 * i + 1] = span[1];
    }
    return true;
  }

  /** The captures of the last successful `match` of `path`; null when the pattern has no names. */
  params(path: string): Record<string, string> | null {
    const names = this.names;
    if (names.length === 0) return null;
    const out: Record<string, string> = {};
    const b = this.bounds;
    for (let i = 0; i < names.length; i++) out[names[i]] = path.slice(b[2 * i], b[2 * i + 1]);
    return out;
  }
}

function buildRegex(segments: readonly string[], types: readonly number[]): RegExp {
  const parts = segments.map((text, i) => {
    if (types[i] === LITERAL) return escapeRegex(text);
    if (types[i] === PARAM) return '([^/]+)';
    return text.length > 1 ? '([\\s\\S]*)' : '(?:[\\s\\S]*)';
  });
  return new RegExp(`^${parts.join('\\/')}$`, 'd');
}
