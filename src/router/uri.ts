// The one request-path normalization step before routing, with nginx's semantics (APISIX matches on nginx's
// $uri): percent-decoding (an encoded slash becomes a separator), merged slashes, `.` and `..` segments
// resolved. What the router matched and what the upstream receives must agree, or a route-scoped plugin can be
// bypassed (`/public/../admin/x` matching `/public/*` while the upstream serves `/admin/x`). So the client's
// own encoding is forwarded only when normalization changed nothing but the decoding; otherwise the
// normalized path is forwarded, re-encoded.

export interface NormalizeOptions {
  /** apisix.delete_uri_tail_slash: `/a/` is matched and forwarded as `/a`. */
  readonly deleteTailSlash: boolean;
  /** apisix.normalize_uri_like_servlet: `;params` are cut from segments for matching (forwarded as sent). */
  readonly servlet: boolean;
}

export type NormalizedPath =
  /** `path`: decoded and normalized, for matching and the `uri` var; `forward`: what the upstream receives. */
  | { readonly ok: true; readonly path: string; readonly forward: string }
  | { readonly ok: false; readonly reason: string };

const DEFAULTS: NormalizeOptions = { deleteTailSlash: false, servlet: false };

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  c |= 0x20;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** True when the raw path needs no work: no escapes, no dot segments, no empty segments. // hot path */
function isPlain(raw: string): boolean {
  const n = raw.length;
  for (let i = 0; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37 /* % */ || c === 59 /* ; */) return false;
    if (c === 47 /* / */ && i + 1 < n) {
      const d = raw.charCodeAt(i + 1);
      if (d === 47 || d === 46 /* . */) return false;
    }
  }
  return true;
}

/** Percent-decodes as bytes then UTF-8 (what nginx hands to matching). Null on a malformed escape or NUL. */
function decode(raw: string): string | null {
  if (raw.indexOf('%') < 0) return raw;
  const bytes = Buffer.allocUnsafe(raw.length * 3);
  let len = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 37) {
      const h = i + 2 < raw.length ? hexVal(raw.charCodeAt(i + 1)) : -1;
      const l = h >= 0 ? hexVal(raw.charCodeAt(i + 2)) : -1;
      if (l < 0) return null;
      const b = (h << 4) | l;
      if (b === 0) return null;
      bytes[len++] = b;
      i += 2;
    } else if (c < 0x80) {
      bytes[len++] = c;
    } else {
      len += bytes.write(raw[i]!, len, 'utf8');
    }
  }
  return bytes.toString('utf8', 0, len);
}

/** Merges slashes and resolves dot segments of a decoded absolute path; null when `..` climbs above the root. */
function resolveSegments(path: string): string | null {
  const segs = path.split('/');
  const out: string[] = [];
  const last = segs.length - 1;
  for (let i = 1; i <= last; i++) {
    const s = segs[i]!;
    if (s === '.' || (s === '' && i < last)) continue;
    if (s === '..') {
      if (out.length === 0) return null;
      out.pop();
      continue;
    }
    out.push(s);
  }
  // A trailing `/.` or `/..` leaves a directory: keep the trailing slash as nginx does.
  const tail = segs[last];
  const dirTail = tail === '.' || tail === '..';
  const joined = `/${out.join('/')}`;
  return dirTail && joined !== '/' ? `${joined}/` : joined;
}

/** Characters a path segment may carry unescaped (RFC 3986 pchar plus `/`). */
const SAFE = new Uint8Array(128);
for (const ch of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/") SAFE[ch.charCodeAt(0)] = 1;

/** Re-encodes a decoded path for the request line. */
export function encodePath(path: string): string {
  let plain = true;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c >= 128 || SAFE[c] === 0) {
      plain = false;
      break;
    }
  }
  if (plain) return path;
  let out = '';
  for (const b of Buffer.from(path, 'utf8')) {
    out += b < 128 && SAFE[b] === 1 ? String.fromCharCode(b) : `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
  }
  return out;
}

/** Cuts `;params` from every segment (Servlet semantics); dot segments hidden behind params are refused. */
function stripServletParams(path: string): string | null {
  if (path.indexOf(';') < 0) return path;
  const segs = path.split('/');
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    const semi = s.indexOf(';');
    if (semi < 0) continue;
    const base = s.slice(0, semi);
    if (base === '.' || base === '..') return null;
    if (base === '' && i < segs.length - 1 && i > 0) return null;
    segs[i] = base;
  }
  return segs.join('/');
}

/**
 * Normalizes the raw (still encoded) path of a request target. `ok: false` means the request is malformed
 * (nginx answers 400): a bad escape, an encoded NUL, or `..` above the root.
 */
export function normalizeRequestPath(raw: string, opts: NormalizeOptions = DEFAULTS): NormalizedPath {
  if (raw.charCodeAt(0) !== 47) return { ok: false, reason: 'path does not start with /' };
  let path: string;
  let forward: string;
  if (isPlain(raw)) {
    path = raw;
    forward = raw;
  } else {
    const decoded = decode(raw);
    if (decoded === null) return { ok: false, reason: 'malformed percent-encoding' };
    const resolved = resolveSegments(decoded);
    if (resolved === null) return { ok: false, reason: 'path climbs above the root' };
    path = resolved;
    forward = resolved === decoded ? raw : encodePath(resolved);
    if (opts.servlet) {
      const cut = stripServletParams(path);
      if (cut === null) return { ok: false, reason: 'dot segment with parameters' };
      // The servlet upstream consumes the params: forwarded as normalized, matched without them.
      path = cut;
    }
  }
  if (opts.deleteTailSlash && path.length > 1 && path.charCodeAt(path.length - 1) === 47) {
    path = path.slice(0, -1);
    if (forward.charCodeAt(forward.length - 1) === 47) forward = forward.slice(0, -1);
  }
  return { ok: true, path, forward };
}

const IPV6_LITERAL = /^[0-9a-fA-F.]*:[0-9a-fA-F:.]*$/;

/**
 * The one host normalization: lower case, port removed, IPv6 brackets removed, trailing dot(s) removed (nginx
 * does the same, so `secret.local.` matches `hosts: ["secret.local"]`). Returns null when the value is not a
 * plausible host (empty labels, spaces, control characters), which callers answer with 400.
 */
export function normalizeHost(h: string): string | null {
  if (h === '') return '';
  if (h.charCodeAt(0) === 91 /* [ */) {
    const close = h.indexOf(']');
    if (close < 0) return null;
    const rest = h.slice(close + 1);
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null;
    // An IP literal holds an IPv6 address (hex digits, colons, dots of an embedded IPv4): `[/]` must not
    // become the host `/`, nor `[.]` the host `.`.
    if (!IPV6_LITERAL.test(h.slice(1, close))) return null;
    return h.slice(1, close).toLowerCase();
  }
  let end = h.length;
  const colon = h.lastIndexOf(':');
  if (colon >= 0) {
    for (let i = colon + 1; i < h.length; i++) {
      const c = h.charCodeAt(i);
      if (c < 48 || c > 57) return null;
    }
    end = colon;
  }
  while (end > 0 && h.charCodeAt(end - 1) === 46 /* . */) end--;
  let lower = false;
  for (let i = 0; i < end; i++) {
    const c = h.charCodeAt(i);
    // A colon or bracket left of the port is no name (`a:b:80`, `:[`): nginx would cut at the first colon.
    if (c <= 32 || c === 47 || c === 92 || c === 127 || c === 58 || c === 91 || c === 93) return null;
    if (c === 46 && (i === 0 || h.charCodeAt(i - 1) === 46)) return null;
    if (c >= 65 && c <= 90) lower = true;
  }
  const host = end === h.length ? h : h.slice(0, end);
  return lower ? host.toLowerCase() : host;
}
