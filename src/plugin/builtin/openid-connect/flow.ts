// The authorization-code flow for browsers (lua-resty-openidc `authenticate`, as APISIX drives it):
// - login: 302 to the OP's authorization endpoint with state, nonce (always sent: it binds the ID token to
//   this login) and, with `use_pkce`, an S256 code challenge; these and the original URL wait in the session;
// - callback at `redirect_uri`: state checked, code exchanged at the token endpoint, ID token verified
//   (signature via the JWKS, issuer, audience, nonce, iat within `iat_slack`), userinfo fetched, then 302 back
//   to the original URL with the authenticated session;
// - renewal: an expired access token is refreshed with the refresh token when `renew_access_token_on_expiry`;
// - logout at `logout_path`: session cleared, with `revoke_tokens_on_logout` its refresh then access token
//   revoked at the OP's revocation_endpoint (RFC 7009; a failure is logged, the logout goes on), then the
//   OP's end_session_endpoint (id_token_hint and post_logout_redirect_uri), or `post_logout_redirect_uri`, or a
//   small "Logged Out" page.
import { createHash, randomBytes } from 'node:crypto';
import { decodeJwt, jwtVerify } from 'jose';
import type { JsonObject } from '../../../config/resources.ts';
import { getDiscovery, getWithToken, jwksFor, postForm, postFormStatus, type ClientAuth, type Discovery, type HttpOpts } from './op.ts';
import type { SessionData } from './session.ts';

export interface FlowConf {
  readonly discovery: string;
  readonly http: HttpOpts;
  readonly client: ClientAuth;
  readonly scope: string;
  readonly usePkce: boolean;
  readonly authorizationParams: Readonly<Record<string, string>>;
  readonly iatSlack: number;
  readonly jwkMaxAgeMs: number;
  readonly accessTokenExpiresIn: number | undefined;
  readonly keepRawIdToken: boolean;
  readonly sessionTtl: number;
}

const random = (): string => randomBytes(24).toString('base64url');

function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * A fresh pending-login session and the authorization URL to send the browser to. `prompt` "none" asks the OP
 * to answer without any interaction (refresh_session_interval's silent re-authentication); as in
 * lua-resty-openidc, authorization_params may override it.
 */
export async function startLogin(conf: FlowConf, redirectUri: string, originalUrl: string, prompt?: string): Promise<{ location: string; session: SessionData }> {
  const disc = await getDiscovery(conf.discovery, conf.http);
  if (typeof disc.authorization_endpoint !== 'string') throw new Error('no authorization_endpoint in the discovery document');
  const now = nowSec();
  const session: SessionData = { exp: now + 600, state: random(), nonce: random(), original_url: originalUrl };
  const url = new URL(disc.authorization_endpoint);
  const p = url.searchParams;
  if (prompt !== undefined) p.set('prompt', prompt);
  for (const [k, v] of Object.entries(conf.authorizationParams)) p.set(k, v);
  p.set('response_type', 'code');
  p.set('client_id', conf.client.clientId);
  p.set('redirect_uri', redirectUri);
  p.set('scope', conf.scope);
  p.set('state', session.state!);
  p.set('nonce', session.nonce!);
  if (conf.usePkce) {
    session.verifier = random() + random();
    p.set('code_challenge', createHash('sha256').update(session.verifier).digest('base64url'));
    p.set('code_challenge_method', 'S256');
  }
  return { location: url.toString(), session };
}

export type CallbackResult = { ok: true; session: SessionData; location: string } | { ok: false; status: number; error: string };

/** Handles the OP's redirect back: `query` is the callback's query string. */
export async function finishLogin(conf: FlowConf, pending: SessionData | null, query: URLSearchParams, redirectUri: string): Promise<CallbackResult> {
  const state = query.get('state');
  if (pending?.state === undefined || state === null || state !== pending.state) {
    return { ok: false, status: 401, error: 'state from argument does not match state restored from session' };
  }
  const code = query.get('code');
  if (code === null) return { ok: false, status: 401, error: `unhandled request to the redirect_uri: ${query.get('error') ?? 'no code'}` };
  const disc = await getDiscovery(conf.discovery, conf.http);
  if (typeof disc.token_endpoint !== 'string') return { ok: false, status: 500, error: 'no token_endpoint' };
  const form: Record<string, string> = { grant_type: 'authorization_code', code, redirect_uri: redirectUri };
  if (pending.verifier !== undefined) form.code_verifier = pending.verifier;
  const tok = await postForm(disc.token_endpoint, form, conf.client, conf.http);
  if (tok.status !== 200 || typeof tok.json.access_token !== 'string') {
    return { ok: false, status: 500, error: `token endpoint answered ${tok.status}` };
  }
  const idToken = tok.json.id_token;
  if (typeof idToken !== 'string') return { ok: false, status: 500, error: 'no id_token in the token response' };
  const claims = await verifyIdToken(conf, disc, idToken, pending.nonce);
  if (typeof claims === 'string') return { ok: false, status: 500, error: claims };
  const session = tokensToSession(conf, tok.json, claims, idToken);
  // refresh_session_interval counts from here, as lua-resty-openidc stamps last_authenticated once the
  // authorization response succeeded (time spent at the OP's login form does not use up the interval).
  session.last_authenticated = nowSec();
  if (typeof disc.userinfo_endpoint === 'string') {
    const info = await getWithToken(disc.userinfo_endpoint, session.access_token!, conf.http);
    if (info.status === 200) session.user = info.json;
  }
  return { ok: true, session, location: pending.original_url ?? '/' };
}

async function verifyIdToken(conf: FlowConf, disc: Discovery, idToken: string, nonce: string | undefined): Promise<Record<string, unknown> | string> {
  if (typeof disc.jwks_uri !== 'string') return 'no jwks_uri in the discovery document';
  try {
    const { payload } = await jwtVerify(idToken, jwksFor(disc.jwks_uri, conf.http, conf.jwkMaxAgeMs), {
      ...(typeof disc.issuer === 'string' ? { issuer: disc.issuer } : {}),
      audience: conf.client.clientId,
    });
    if (nonce !== undefined && payload.nonce !== nonce) return 'nonce mismatch in the id_token';
    if (typeof payload.iat === 'number' && payload.iat > nowSec() + conf.iatSlack) return 'id_token issued in the future';
    return payload as Record<string, unknown>;
  } catch (err) {
    return `id_token verification failed: ${(err as Error).message}`;
  }
}

function tokensToSession(conf: FlowConf, json: Record<string, unknown>, idClaims: Record<string, unknown>, rawIdToken: string): SessionData {
  const now = nowSec();
  const expiresIn = typeof json.expires_in === 'number' ? json.expires_in : conf.accessTokenExpiresIn;
  const s: SessionData = {
    exp: now + conf.sessionTtl,
    id_token: idClaims,
    access_token: json.access_token as string,
  };
  if (conf.keepRawIdToken) s.enc_id_token = rawIdToken;
  if (typeof json.scope === 'string') s.scope = json.scope;
  if (expiresIn !== undefined) s.expires_at = now + expiresIn;
  if (typeof json.refresh_token === 'string') s.refresh_token = json.refresh_token;
  return s;
}

/** Refreshes the session's tokens; null when the OP refuses (the user must log in again). */
export async function refresh(conf: FlowConf, session: SessionData): Promise<SessionData | null> {
  if (session.refresh_token === undefined) return null;
  const disc = await getDiscovery(conf.discovery, conf.http);
  if (typeof disc.token_endpoint !== 'string') return null;
  const tok = await postForm(disc.token_endpoint, { grant_type: 'refresh_token', refresh_token: session.refresh_token, scope: conf.scope }, conf.client, conf.http);
  if (tok.status !== 200 || typeof tok.json.access_token !== 'string') return null;
  const now = nowSec();
  const next: SessionData = { ...session, access_token: tok.json.access_token };
  const expiresIn = typeof tok.json.expires_in === 'number' ? tok.json.expires_in : conf.accessTokenExpiresIn;
  if (expiresIn !== undefined) next.expires_at = now + expiresIn;
  else delete next.expires_at;
  if (typeof tok.json.refresh_token === 'string') next.refresh_token = tok.json.refresh_token;
  if (typeof tok.json.scope === 'string') next.scope = tok.json.scope;
  if (typeof tok.json.id_token === 'string') {
    const claims = await verifyIdToken(conf, disc, tok.json.id_token, undefined);
    if (typeof claims !== 'string') {
      next.id_token = claims;
      if (conf.keepRawIdToken) next.enc_id_token = tok.json.id_token;
    }
  }
  return next;
}

/**
 * Revokes the session's refresh then access token at the OP's revocation_endpoint (lua-resty-openidc order);
 * returns why a revocation failed, for the log, or null.
 */
export async function revokeTokens(conf: FlowConf, session: SessionData): Promise<string | null> {
  const disc = await getDiscovery(conf.discovery, conf.http);
  if (typeof disc.revocation_endpoint !== 'string') return 'no revocation_endpoint in the discovery document';
  const failures: string[] = [];
  const tokens: [string, string | undefined][] = [['refresh_token', session.refresh_token], ['access_token', session.access_token]];
  for (const [hint, token] of tokens) {
    if (token === undefined) continue;
    const status = await postFormStatus(disc.revocation_endpoint, { token, token_type_hint: hint }, conf.client, conf.http);
    if (status !== 200) failures.push(`${hint}: revocation endpoint answered ${status}`);
  }
  return failures.length === 0 ? null : failures.join('; ');
}

/** Where the browser goes after logout, or null for the local "Logged Out" page. */
export async function logoutTarget(conf: FlowConf, session: SessionData | null, postLogout: string | undefined): Promise<string | null> {
  let disc: Discovery;
  try {
    disc = await getDiscovery(conf.discovery, conf.http);
  } catch {
    return postLogout ?? null;
  }
  if (typeof disc.end_session_endpoint !== 'string') return postLogout ?? null;
  const url = new URL(disc.end_session_endpoint);
  if (session?.enc_id_token !== undefined) url.searchParams.set('id_token_hint', session.enc_id_token);
  else url.searchParams.set('client_id', conf.client.clientId);
  if (postLogout !== undefined) url.searchParams.set('post_logout_redirect_uri', postLogout);
  return url.toString();
}

/** Scopes granted to the session: the access token's `scope` claim when it is a JWT, else the token response's. */
export function sessionScopes(session: SessionData): Set<string> | null {
  let scope: unknown;
  try {
    scope = decodeJwt(session.access_token ?? '').scope;
  } catch {
    scope = undefined;
  }
  if (typeof scope !== 'string') scope = session.id_token?.scope ?? session.scope;
  return typeof scope === 'string' ? new Set(scope.split(/\s+/).filter(Boolean)) : null;
}

export function asStringMap(v: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, x] of Object.entries(v as JsonObject)) out[k] = typeof x === 'string' ? x : JSON.stringify(x);
  }
  return out;
}
