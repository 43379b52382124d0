// The authority an HTTP/1.1 request targets. An absolute-form target (RFC 9112 3.2.2, `GET http://h/p`) names
// its own authority, which replaces Host: nginx routes on it, and so does the pipeline. Adapters that check the
// connection's TLS facts against the authority (the SNI-vs-Host mTLS rule, protocols/http/tls-info.ts) must
// check this one, not the Host header, or an absolute-form target reaches a host whose ssl object requires
// client certificates from a connection whose SNI does not.
const ABSOLUTE_FORM = /^https?:\/\//i;

export interface TargetAuthority {
  /** The origin-form target (path and query) the pipeline routes. */
  target: string;
  /** The absolute-form target's authority (host and optional port, as written). */
  authority: string;
}

/** Splits an absolute-form target; null for the usual origin-form one (a leading `/`: one compare). */
export function absoluteForm(target: string): TargetAuthority | null {
  if (target.charCodeAt(0) === 47 || !ABSOLUTE_FORM.test(target)) return null;
  const start = target.indexOf('//') + 2;
  const slash = target.indexOf('/', start);
  return slash < 0 ? { target: '/', authority: target.slice(start) } : { target: target.slice(slash), authority: target.slice(start, slash) };
}

/** The authority that routes a request with this target and Host (null: no usable Host). */
export function requestAuthority(target: string, host: string | null): string | null {
  const abs = absoluteForm(target);
  return abs === null ? host : abs.authority;
}
