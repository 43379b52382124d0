// Bearer tokens (APISIX openid-connect `introspect`): the token comes from `Authorization: Bearer <t>`, else
// from the client's X-Access-Token header. It is verified locally as a JWT (`public_key`, or the OP's JWKS
// with `use_jwks`; issuer checked against claim_validator.issuer.valid_issuers or the discovery issuer), or
// by the OP's introspection endpoint. Introspection answers for active tokens are cached by a SHA-256 of the
// token (with the endpoint, client_id and cache_segment) until the token's expiry claim, at most
// `introspection_interval` seconds when it is set; an answer without the expiry claim is not cached.
import { createHash, createPublicKey, type KeyObject } from 'node:crypto';
import { jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { HttpContext } from '../../context.ts';
import { getDiscovery, jwksFor, OpError, postForm, type ClientAuth, type HttpOpts } from './op.ts';

export type TokenLookup = { kind: 'none' } | { kind: 'token'; token: string } | { kind: 'malformed' };

/** APISIX get_bearer_access_token. `clientAccessToken` is the X-Access-Token the client sent. */
export function bearerToken(ctx: HttpContext, clientAccessToken: string | undefined): TokenLookup {
  const raw = ctx.request.headers.authorization;
  const header = Array.isArray(raw) ? raw[0] : raw;
  if (header === undefined) return clientAccessToken === undefined ? { kind: 'none' } : { kind: 'token', token: clientAccessToken };
  const sp = header.indexOf(' ');
  if (sp < 0) return { kind: 'malformed' };
  if (header.slice(0, sp).toLowerCase() !== 'bearer') return { kind: 'none' };
  return { kind: 'token', token: header.slice(sp + 1) };
}

export type Verified = { ok: true; claims: Record<string, unknown> } | { ok: false; error: string };

export interface BearerConf {
  readonly discovery: string;
  readonly http: HttpOpts;
  readonly client: ClientAuth;
  readonly publicKey: KeyObject | undefined;
  readonly useJwks: boolean;
  readonly algorithms: string[] | undefined;
  readonly validIssuers: string[] | undefined;
  readonly jwkMaxAgeMs: number;
  readonly introspectionEndpoint: string | undefined;
  readonly introspectionInterval: number;
  readonly expiryClaim: string;
  readonly addonHeaders: readonly string[];
  /** cache_segment: confs with different segments never share cached introspection answers. */
  readonly cacheSegment: string;
}

export function parsePublicKey(pem: string): KeyObject {
  return createPublicKey(pem);
}

/** Local JWT verification (public_key or JWKS). */
export async function verifyJwt(conf: BearerConf, token: string): Promise<Verified> {
  let issuers = conf.validIssuers;
  let key: KeyObject | JWTVerifyGetKey | undefined = conf.publicKey;
  if (issuers === undefined || key === undefined) {
    let disc;
    try {
      disc = await getDiscovery(conf.discovery, conf.http);
    } catch {
      return { ok: false, error: 'issuer validation unavailable' };
    }
    if (issuers === undefined) {
      if (typeof disc.issuer !== 'string') return { ok: false, error: 'issuer validation unavailable' };
      issuers = [disc.issuer];
    }
    if (key === undefined) {
      if (typeof disc.jwks_uri !== 'string') return { ok: false, error: 'no jwks_uri in the discovery document' };
      key = jwksFor(disc.jwks_uri, conf.http, conf.jwkMaxAgeMs);
    }
  }
  try {
    const opts = { issuer: issuers, ...(conf.algorithms ? { algorithms: conf.algorithms } : {}) };
    const { payload } =
      typeof key === 'function' ? await jwtVerify(token, key, opts) : await jwtVerify(token, key, opts);
    return { ok: true, claims: payload as Record<string, unknown> };
  } catch (err) {
    return { ok: false, error: jwtError(err) };
  }
}

function jwtError(err: unknown): string {
  const code = (err as { code?: string }).code;
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'token expired';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'signature mismatch';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return `invalid jwt: ${(err as Error).message}`;
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return 'no matching key in the JWKS';
    case 'ERR_JWKS_TIMEOUT':
    case 'ERR_JWKS_INVALID':
      return 'JWKS unavailable';
    default:
      return 'invalid jwt';
  }
}

interface CacheEntry {
  readonly until: number;
  readonly claims: Record<string, unknown>;
}

/** Cached introspection answers, by token digest; insertion order gives the eviction order. */
const introspected = new Map<string, CacheEntry>();
const CACHE_MAX = 10_000;

function cacheKey(conf: BearerConf, endpoint: string, token: string): string {
  const h = createHash('sha256').update(conf.cacheSegment).update('\0').update(endpoint).update('\0').update(conf.client.clientId);
  return h.update('\0').update(token).digest('base64url');
}

/** Token introspection (RFC 7662) against the configured or discovered endpoint. */
export async function introspect(conf: BearerConf, ctx: HttpContext, token: string): Promise<Verified> {
  let endpoint = conf.introspectionEndpoint;
  if (endpoint === undefined) {
    try {
      endpoint = (await getDiscovery(conf.discovery, conf.http)).introspection_endpoint;
    } catch (err) {
      return { ok: false, error: err instanceof OpError ? err.message : 'discovery failed' };
    }
    if (typeof endpoint !== 'string') return { ok: false, error: 'no introspection endpoint' };
  }
  const nowMs = Date.now();
  const key = cacheKey(conf, endpoint, token);
  const hit = introspected.get(key);
  if (hit !== undefined) {
    if (hit.until > nowMs) return { ok: true, claims: hit.claims };
    introspected.delete(key);
  }
  const extra: Record<string, string> = {};
  for (const name of conf.addonHeaders) {
    const v = ctx.request.headers[name];
    if (v !== undefined) extra[name] = Array.isArray(v) ? v.join(', ') : v;
  }
  let res;
  try {
    res = await postForm(endpoint, { token, token_type_hint: 'access_token' }, conf.client, conf.http, extra);
  } catch (err) {
    return { ok: false, error: err instanceof OpError ? err.message : 'introspection failed' };
  }
  if (res.status !== 200) return { ok: false, error: `introspection endpoint answered ${res.status}` };
  if (res.json.active !== true) return { ok: false, error: 'invalid token' };
  // As lua-resty-openidc: cached only when the answer carries the expiry claim, until that expiry, and no
  // longer than introspection_interval when set (an interval alone must not outlive the token).
  const exp = res.json[conf.expiryClaim];
  let ttlMs = typeof exp === 'number' ? (conf.expiryClaim === 'exp' ? exp * 1000 - nowMs : exp * 1000) : 0;
  if (conf.introspectionInterval > 0) ttlMs = Math.min(ttlMs, conf.introspectionInterval * 1000);
  if (ttlMs > 0) {
    if (introspected.size >= CACHE_MAX) introspected.delete(introspected.keys().next().value!);
    introspected.set(key, { until: nowMs + ttlMs, claims: res.json });
  }
  return { ok: true, claims: res.json };
}
