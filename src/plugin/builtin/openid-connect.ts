// openid-connect (APISIX priority 2599, rewrite phase). Two modes, as in APISIX:
// - bearer (bearer_only, or introspection_endpoint / public_key / use_jwks set): the request's bearer token is
//   verified (openid-connect/bearer.ts). No token: 401 `WWW-Authenticate: Bearer realm="<realm>"` when
//   bearer_only, else the browser flow below. Invalid: 401 with `error="invalid_token"` and a description.
//   `required_scopes` missing: 403 {"error":"required scopes <a, b> not present"}; audience checks of
//   claim_validator: 403 {"error":"required audience claim not present"} / {"error":"mismatched audience"}.
// - browser (authorization-code flow, openid-connect/flow.ts) with the session in an encrypted cookie
//   (openid-connect/session.ts, with lua-resty-session's idling/rolling/absolute timeouts). Unauthenticated
//   requests follow `unauth_action`: auth (302 to the OP), deny (401), pass (proxied without identity
//   headers). As lua-resty-openidc: `force_reauthorize` treats every request with a session as
//   unauthenticated (each one goes through the OP again); `refresh_session_interval` sends a session last
//   authenticated longer ago to the OP with prompt=none (silent re-authentication, whatever unauth_action).
// Upstream headers: X-Access-Token (or `Authorization: Bearer` with access_token_in_authorization_header),
// X-ID-Token (base64 JSON of the ID token claims), X-Userinfo (base64 JSON of the userinfo, or of the
// token's claims in bearer mode), X-Refresh-Token and X-Raw-ID-Token when enabled. Client-sent values of
// these headers are always removed first (a client X-Access-Token is only read as a bearer token).
// Tokens and secrets are never logged.
import type { KeyObject } from 'node:crypto';
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import { compileSchema, runSchema, type CompiledSchema } from '../../schema/compile.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { bearerToken, introspect, parsePublicKey, verifyJwt, type BearerConf } from './openid-connect/bearer.ts';
import { asStringMap, finishLogin, logoutTarget, refresh, revokeTokens, sessionScopes, startLogin, type FlowConf } from './openid-connect/flow.ts';
import { assertionConf, type ClientAuth } from './openid-connect/op.ts';
import { check, encryptFields, schema } from './openid-connect/schema.ts';
import { COOKIE_LIMIT, SessionCodec, type SessionData } from './openid-connect/session.ts';

const STRIPPED = ['x-access-token', 'x-userinfo', 'x-id-token', 'x-refresh-token', 'x-raw-id-token'];
const REDIRECT_SUFFIX = '/.apisix/redirect';
const LOGGED_OUT = '<html><body><h1>Logged Out</h1></body></html>';
const b64json = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64');

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

class OpenIdConnect implements PluginInstance {
  readonly #c: JsonObject;
  readonly #logger: Logger;
  readonly #bearerMode: boolean;
  readonly #bearerOnly: boolean;
  readonly #localJwt: boolean;
  readonly #bearer: BearerConf;
  readonly #flow: FlowConf | undefined;
  readonly #codec: SessionCodec | undefined;
  readonly #challenge: Readonly<Record<string, string>>;
  readonly #realm: string;
  readonly #requiredScopes: readonly string[] | undefined;
  readonly #scopeError: string;
  readonly #claimSchema: CompiledSchema | undefined;
  readonly #leeway: number;
  readonly #forceReauthorize: boolean;
  readonly #refreshInterval: number | undefined;
  readonly #revokeOnLogout: boolean;

  constructor(conf: JsonObject, logger: Logger) {
    this.#c = conf;
    this.#logger = logger;
    const http = { timeoutMs: Number(conf.timeout ?? 3) * 1000, verify: conf.ssl_verify !== false };
    const secret = typeof conf.client_secret === 'string' ? conf.client_secret : undefined;
    const client = (method: unknown): ClientAuth => {
      const m = String(method ?? 'client_secret_basic');
      // check() refused a conf whose assertion settings are unusable: a string here cannot happen.
      const assertion = assertionConf(m, conf);
      return { clientId: String(conf.client_id), clientSecret: secret, method: m, ...(typeof assertion === 'object' ? { assertion } : {}) };
    };
    const publicKey: KeyObject | undefined = typeof conf.public_key === 'string' ? parsePublicKey(conf.public_key) : undefined;
    const validator = conf.claim_validator as JsonObject | undefined;
    const issuers = (validator?.issuer as JsonObject | undefined)?.valid_issuers;
    this.#bearerOnly = conf.bearer_only === true;
    this.#localJwt = publicKey !== undefined || conf.use_jwks === true;
    this.#bearerMode = this.#bearerOnly || typeof conf.introspection_endpoint === 'string' || this.#localJwt;
    const jwkMaxAgeMs = Number(conf.jwk_expires_in ?? 86400) * 1000;
    this.#bearer = {
      discovery: String(conf.discovery),
      http,
      client: client(conf.introspection_endpoint_auth_method),
      publicKey,
      useJwks: conf.use_jwks === true,
      algorithms: typeof conf.token_signing_alg_values_expected === 'string' ? [conf.token_signing_alg_values_expected] : undefined,
      validIssuers: Array.isArray(issuers) ? issuers.map(String) : undefined,
      jwkMaxAgeMs,
      introspectionEndpoint: typeof conf.introspection_endpoint === 'string' ? conf.introspection_endpoint : undefined,
      introspectionInterval: Number(conf.introspection_interval ?? 0),
      expiryClaim: typeof conf.introspection_expiry_claim === 'string' ? conf.introspection_expiry_claim : 'exp',
      addonHeaders: Array.isArray(conf.introspection_addon_headers) ? conf.introspection_addon_headers.map((h) => String(h).toLowerCase()) : [],
      cacheSegment: typeof conf.cache_segment === 'string' ? conf.cache_segment : 'DEFAULT',
    };
    const session = conf.session as JsonObject | undefined;
    if (session !== undefined) {
      this.#codec = new SessionCodec(session);
      this.#flow = {
        discovery: String(conf.discovery),
        http,
        client: client(conf.token_endpoint_auth_method),
        scope: String(conf.scope ?? 'openid'),
        usePkce: conf.use_pkce === true,
        authorizationParams: asStringMap(conf.authorization_params),
        iatSlack: Number(conf.iat_slack ?? 120),
        jwkMaxAgeMs,
        accessTokenExpiresIn: typeof conf.access_token_expires_in === 'number' ? conf.access_token_expires_in : undefined,
        keepRawIdToken: conf.set_raw_id_token_header === true,
        sessionTtl: this.#codec.absoluteTimeout,
      };
    }
    this.#realm = String(conf.realm ?? 'apisix');
    this.#challenge = { 'www-authenticate': `Bearer realm="${this.#realm}"` };
    this.#requiredScopes = Array.isArray(conf.required_scopes) ? conf.required_scopes.map(String) : undefined;
    this.#scopeError = JSON.stringify({ error: `required scopes ${(this.#requiredScopes ?? []).join(', ')} not present` });
    this.#claimSchema = conf.claim_schema !== undefined ? compileSchema(conf.claim_schema as JsonObject) : undefined;
    this.#leeway = Number(conf.access_token_expires_leeway ?? 0);
    this.#forceReauthorize = conf.force_reauthorize === true;
    this.#refreshInterval = typeof conf.refresh_session_interval === 'number' ? conf.refresh_session_interval : undefined;
    this.#revokeOnLogout = conf.revoke_tokens_on_logout === true;
  }

  async rewrite(ctx: HttpContext): Promise<PluginResponse | undefined> {
    const req = ctx.request;
    const clientAccessToken = first(req.headers['x-access-token']);
    for (const h of STRIPPED) req.setHeader(h, null);

    if (this.#bearerMode) {
      const found = bearerToken(ctx, clientAccessToken);
      if (found.kind === 'malformed') return { status: 400 };
      if (found.kind === 'token') return this.#bearerAuth(ctx, found.token);
      if (this.#bearerOnly || this.#codec === undefined) return { status: 401, headers: this.#challenge };
    }
    return this.#browser(ctx);
  }

  async #bearerAuth(ctx: HttpContext, token: string): Promise<PluginResponse | undefined> {
    const v = this.#localJwt ? await verifyJwt(this.#bearer, token) : await introspect(this.#bearer, ctx, token);
    if (!v.ok) return this.#invalidToken(v.error);
    const claims = v.claims;
    if (this.#requiredScopes !== undefined) {
      const granted = new Set(typeof claims.scope === 'string' ? claims.scope.split(/\s+/) : []);
      if (!this.#requiredScopes.every((s) => granted.has(s))) return { status: 403, body: this.#scopeError };
    }
    const audience = (this.#c.claim_validator as JsonObject | undefined)?.audience as JsonObject | undefined;
    if (audience !== undefined) {
      const value = claims[String(audience.claim ?? 'aud')];
      const match = audience.match_with_client_id === true;
      if ((audience.required === true || match) && value === undefined) {
        return { status: 403, body: JSON.stringify({ error: 'required audience claim not present' }) };
      }
      const id = String(this.#c.client_id);
      if (match && !(Array.isArray(value) ? value.includes(id) : value === id)) {
        return { status: 403, body: JSON.stringify({ error: 'mismatched audience' }) };
      }
    }
    if (this.#claimSchema !== undefined) {
      const err = runSchema(this.#claimSchema, claims);
      if (err !== null) return this.#invalidToken(err);
    }
    this.#setAccessToken(ctx, token);
    if (this.#c.set_userinfo_header !== false) ctx.request.setHeader('x-userinfo', b64json(claims));
    return undefined;
  }

  #invalidToken(description: string): PluginResponse {
    const safe = description.replace(/["\\\r\n]/g, ' ');
    return { status: 401, headers: { 'www-authenticate': `Bearer realm="${this.#realm}", error="invalid_token", error_description="${safe}"` } };
  }

  #setAccessToken(ctx: HttpContext, token: string): void {
    if (this.#c.set_access_token_header === false) return;
    if (this.#c.access_token_in_authorization_header === true) ctx.request.setHeader('authorization', `Bearer ${token}`);
    else ctx.request.setHeader('x-access-token', token);
  }

  async #browser(ctx: HttpContext): Promise<PluginResponse | undefined> {
    const codec = this.#codec!;
    const flow = this.#flow!;
    const req = ctx.request;
    const https = req.scheme === 'https';
    const now = Math.floor(Date.now() / 1000);
    let session = codec.read(req.headers.cookie, now);
    try {
      if (req.path === String(this.#c.logout_path ?? '/logout')) {
        if (session !== null && this.#revokeOnLogout) await this.#revoke(ctx, flow, session);
        const post = typeof this.#c.post_logout_redirect_uri === 'string' ? this.#c.post_logout_redirect_uri : undefined;
        const target = await logoutTarget(flow, session, post);
        const cookie = codec.clearCookie(https);
        if (target === null) return { status: 200, body: LOGGED_OUT, headers: { 'content-type': 'text/html', 'set-cookie': cookie } };
        return { status: 302, headers: { location: target, 'set-cookie': cookie } };
      }
      const redirectUri = this.#redirectUri(ctx);
      if (req.path === new URL(redirectUri).pathname) {
        const r = await finishLogin(flow, session, new URLSearchParams(req.query), redirectUri);
        if (!r.ok) {
          this.#logger.warn({ route: ctx.routeId, reason: r.error }, 'OIDC authentication failed');
          return { status: r.status, headers: { 'set-cookie': codec.clearCookie(https) } };
        }
        return { status: 302, headers: { location: r.location, 'set-cookie': this.#cookie(ctx, codec, r.session, https) } };
      }
      let changed = false;
      if (session !== null && session.access_token !== undefined && session.expires_at !== undefined && now >= session.expires_at - this.#leeway) {
        session = this.#c.renew_access_token_on_expiry !== false ? await refresh(flow, session) : null;
        changed = session !== null;
      }
      if (session === null || session.access_token === undefined || this.#forceReauthorize) return await this.#unauthenticated(ctx, redirectUri, https);
      const last = session.last_authenticated;
      if (this.#refreshInterval !== undefined && (last === undefined || last + this.#refreshInterval < now)) {
        return await this.#login(ctx, redirectUri, https, 'none');
      }
      if (codec.refresh(session, now) || changed) ctx.pluginData.set('openid-connect', this.#cookie(ctx, codec, session, https));
    } catch (err) {
      this.#logger.error({ route: ctx.routeId, err: (err as Error).message }, 'OIDC authentication failed');
      return { status: 500 };
    }
    return this.#authenticated(ctx, session);
  }

  #authenticated(ctx: HttpContext, s: SessionData): PluginResponse | undefined {
    if (this.#claimSchema !== undefined) {
      const err = runSchema(this.#claimSchema, { user: s.user, access_token: s.access_token, id_token: s.id_token });
      if (err !== null) return this.#invalidToken(err);
    }
    if (this.#requiredScopes !== undefined) {
      const granted = sessionScopes(s);
      if (granted === null) return { status: 403, body: JSON.stringify({ error: 'required scopes not present' }) };
      if (!this.#requiredScopes.every((x) => granted.has(x))) return { status: 403, body: this.#scopeError };
    }
    const req = ctx.request;
    this.#setAccessToken(ctx, s.access_token!);
    if (s.id_token !== undefined && this.#c.set_id_token_header !== false) req.setHeader('x-id-token', b64json(s.id_token));
    if (s.user !== undefined && this.#c.set_userinfo_header !== false) req.setHeader('x-userinfo', b64json(s.user));
    if (s.refresh_token !== undefined && this.#c.set_refresh_token_header === true) req.setHeader('x-refresh-token', s.refresh_token);
    if (s.enc_id_token !== undefined && this.#c.set_raw_id_token_header === true) req.setHeader('x-raw-id-token', s.enc_id_token);
    return undefined;
  }

  async #unauthenticated(ctx: HttpContext, redirectUri: string, https: boolean): Promise<PluginResponse | undefined> {
    const action = this.#c.unauth_action;
    if (action === 'pass') return undefined;
    if (action === 'deny') return { status: 401 };
    return this.#login(ctx, redirectUri, https, undefined);
  }

  /** 302 to the OP's authorization endpoint with a fresh pending-login session. */
  async #login(ctx: HttpContext, redirectUri: string, https: boolean, prompt: string | undefined): Promise<PluginResponse> {
    // The original URL becomes a Location after login: a leading run of slashes or backslashes would name another host.
    const path = ctx.request.path.replace(/^[/\\]+/, '/');
    const original = ctx.request.query === '' ? path : `${path}?${ctx.request.query}`;
    const { location, session } = await startLogin(this.#flow!, redirectUri, original, prompt);
    return { status: 302, headers: { location, 'set-cookie': this.#cookie(ctx, this.#codec!, session, https) } };
  }

  /** revoke_tokens_on_logout: a revocation that fails is logged; the logout goes on (as lua-resty-openidc). */
  async #revoke(ctx: HttpContext, flow: FlowConf, session: SessionData): Promise<void> {
    let failure: string | null;
    try {
      failure = await revokeTokens(flow, session);
    } catch (err) {
      failure = (err as Error).message;
    }
    if (failure !== null) this.#logger.warn({ route: ctx.routeId, reason: failure }, 'OIDC token revocation failed');
  }

  /** The absolute redirect_uri: configured, or the request path + /.apisix/redirect (APISIX's default). */
  #redirectUri(ctx: HttpContext): string {
    let uri = typeof this.#c.redirect_uri === 'string' ? this.#c.redirect_uri : undefined;
    if (uri === undefined) {
      const p = ctx.request.path;
      uri = p.endsWith(REDIRECT_SUFFIX) ? p : (p.endsWith('/') ? p.slice(0, -1) : p) + REDIRECT_SUFFIX;
    }
    if (uri.startsWith('/')) {
      // HTTP/2 and HTTP/3 requests carry the authority (with its port) in :authority, not Host: nginx's
      // $http_host, which lua-resty-openidc reads, is built from it there.
      const h = ctx.request.headers;
      const host = first(h.host) ?? first(h[':authority']) ?? ctx.request.host;
      uri = `${ctx.request.scheme}://${host}${uri}`;
    }
    return uri;
  }

  #cookie(ctx: HttpContext, codec: SessionCodec, s: SessionData, https: boolean): string {
    const c = codec.setCookie(codec.start(s, Math.floor(Date.now() / 1000)), https);
    if (c.length > COOKIE_LIMIT) this.#logger.warn({ route: ctx.routeId, bytes: c.length }, 'OIDC session cookie exceeds 4096 bytes; browsers may drop it');
    return c;
  }

  header_filter(ctx: HttpContext): void {
    const cookie = ctx.pluginData.get('openid-connect');
    if (typeof cookie !== 'string') return;
    const prior = ctx.response.headers['set-cookie'];
    const list = prior === undefined ? [] : Array.isArray(prior) ? prior : [prior];
    ctx.response.setHeader('set-cookie', [...list, cookie]);
  }
}

export const openidConnectPlugin: PluginDef = {
  name: 'openid-connect',
  version: '0.2',
  priority: 2599,
  schema,
  encryptFields,
  subsystems: ['http'],
  status: 'stable',
  check(conf) {
    const err = check(conf);
    if (err !== null) return err;
    if (typeof conf.public_key === 'string') {
      try {
        parsePublicKey(conf.public_key);
      } catch {
        return 'property "public_key" is not a valid public key';
      }
    }
    return null;
  },
  create(conf, env) {
    return new OpenIdConnect(conf, env.logger);
  },
};

export default openidConnectPlugin;
