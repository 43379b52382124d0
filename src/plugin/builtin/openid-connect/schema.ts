// openid-connect route schema (APISIX 3.x apisix/plugins/openid-connect.lua) and its extra checks.
// Options this build cannot honour (redis session storage, PAR, DPoP, proxy_opts, accept_none_alg true) are
// rejected at config time rather than ignored at request time. accept_none_alg would accept unsigned ID
// tokens (and, as lua-resty-openidc's bearer_jwt_verify takes the same option, unsigned bearer tokens any
// client can write); the OpenID Provider the tests run (oidc-provider 9) cannot even issue one.
// Accepted options whose value changes nothing here, by design:
// - jwt_verification_cache_ignore: a bearer JWT is verified on every request (against the cached key set), no
//   verification result is cached, so there is nothing to ignore and both values behave as true;
// - use_nonce: a nonce is always sent and checked (it binds the ID token to this login), false included;
// - accept_unsupported_alg: jose verifies every registered JWS algorithm, so no signature is ever skipped as
//   "unsupported" (lua-resty-openidc's true would skip it).
// All other options are implemented (see openid-connect.ts and its modules).
import type { JsonObject } from '../../../config/resources.ts';
import { compileSchema } from '../../../schema/compile.ts';
import { assertionConf } from './op.ts';

const str = { type: 'string' };
const bool = (d: boolean) => ({ type: 'boolean', default: d });
const int = { type: 'integer' };

export const schema: JsonObject = {
  type: 'object',
  properties: {
    client_id: str,
    client_secret: str,
    discovery: str,
    scope: { type: 'string', default: 'openid' },
    ssl_verify: bool(true),
    timeout: { type: 'integer', minimum: 1, default: 3 },
    introspection_endpoint: str,
    introspection_endpoint_auth_method: { type: 'string', default: 'client_secret_basic' },
    token_endpoint_auth_method: { type: 'string', default: 'client_secret_basic' },
    bearer_only: bool(false),
    session: {
      type: 'object',
      properties: {
        secret: { type: 'string', minLength: 16 },
        cookie_name: str,
        cookie_path: str,
        cookie_domain: str,
        cookie_secure: { type: 'boolean' },
        cookie_http_only: { type: 'boolean' },
        cookie_same_site: { type: 'string', enum: ['Strict', 'Lax', 'None', 'Default'] },
        idling_timeout: int,
        rolling_timeout: int,
        absolute_timeout: int,
        cookie: { type: 'object', properties: { lifetime: int } },
        storage: { type: 'string', enum: ['cookie', 'redis'], default: 'cookie' },
        redis: { type: 'object' },
      },
      required: ['secret'],
      if: { properties: { storage: { enum: ['redis'] } }, required: ['storage'] },
      then: { required: ['redis'] },
      additionalProperties: false,
    },
    realm: { type: 'string', default: 'apisix' },
    claim_validator: {
      type: 'object',
      properties: {
        issuer: { type: 'object', properties: { valid_issuers: { type: 'array', items: str } } },
        audience: {
          type: 'object',
          properties: {
            claim: { type: 'string', default: 'aud' },
            required: bool(false),
            match_with_client_id: bool(false),
          },
        },
      },
    },
    logout_path: { type: 'string', default: '/logout' },
    redirect_uri: str,
    post_logout_redirect_uri: str,
    unauth_action: { type: 'string', default: 'auth', enum: ['auth', 'deny', 'pass'] },
    public_key: str,
    use_jwks: bool(false),
    token_signing_alg_values_expected: str,
    use_pkce: bool(false),
    par: { type: 'object' },
    dpop: { type: 'object' },
    set_access_token_header: bool(true),
    access_token_in_authorization_header: bool(false),
    set_id_token_header: bool(true),
    set_raw_id_token_header: bool(false),
    set_userinfo_header: bool(true),
    set_refresh_token_header: bool(false),
    proxy_opts: { type: 'object' },
    authorization_params: { type: 'object' },
    client_rsa_private_key: str,
    client_rsa_private_key_id: str,
    client_jwt_assertion_expires_in: { type: 'integer', default: 60 },
    client_jwt_assertion_alg: { type: 'string', enum: ['HS256', 'HS512', 'RS256', 'RS512', 'ES256', 'ES512'] },
    client_jwt_assertion_audience: str,
    renew_access_token_on_expiry: bool(true),
    access_token_expires_in: int,
    refresh_session_interval: int,
    iat_slack: { type: 'integer', default: 120 },
    accept_none_alg: bool(false),
    accept_unsupported_alg: bool(true),
    access_token_expires_leeway: { type: 'integer', default: 0 },
    force_reauthorize: bool(false),
    use_nonce: bool(false),
    revoke_tokens_on_logout: bool(false),
    jwk_expires_in: { type: 'integer', default: 86400 },
    jwt_verification_cache_ignore: bool(false),
    cache_segment: str,
    introspection_interval: { type: 'integer', default: 0 },
    introspection_expiry_claim: str,
    introspection_addon_headers: { type: 'array', minItems: 1, items: { type: 'string', pattern: '^[^:]+$' } },
    required_scopes: { type: 'array', items: str },
    claim_schema: { type: 'object' },
  },
  encrypt_fields: ['client_secret', 'client_rsa_private_key', 'dpop.private_key', 'session.secret', 'session.redis.password'],
  required: ['client_id', 'discovery'],
};

export const encryptFields = ['client_secret', 'client_rsa_private_key', 'session.secret'];

const CLIENT_AUTH = new Set(['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'client_secret_jwt']);

function isHttpUrl(v: unknown): boolean {
  if (typeof v !== 'string') return false;
  try {
    const u = new URL(v);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

/** APISIX check_schema's semantic checks, plus the options this build rejects. */
export function check(conf: JsonObject): string | null {
  if (conf.bearer_only !== true && conf.session === undefined) {
    return 'property "session.secret" is required when "bearer_only" is false';
  }
  // private_key_jwt authenticates the client with its private key instead of a secret.
  const clientSecretOptional = conf.bearer_only === true
    ? conf.public_key !== undefined || conf.use_jwks === true || conf.introspection_endpoint_auth_method === 'private_key_jwt'
    : conf.use_pkce === true || conf.token_endpoint_auth_method === 'private_key_jwt';
  if (!clientSecretOptional && typeof conf.client_secret !== 'string') return 'property "client_secret" is required';
  for (const field of ['discovery', 'introspection_endpoint', 'redirect_uri', 'post_logout_redirect_uri']) {
    const v = conf[field];
    // redirect_uri may be a path (lua-resty-openidc makes it absolute with the request's scheme and host).
    if (v !== undefined && !(field === 'redirect_uri' && typeof v === 'string' && v.startsWith('/')) && !isHttpUrl(v)) {
      return `property "${field}" must be an http or https URL`;
    }
  }
  for (const field of ['token_endpoint_auth_method', 'introspection_endpoint_auth_method']) {
    const m = conf[field];
    if (typeof m !== 'string') continue;
    if (!CLIENT_AUTH.has(m)) return `property "${field}" "${m}" is not supported (${[...CLIENT_AUTH].join(', ')})`;
    const assertion = assertionConf(m, conf);
    if (typeof assertion === 'string') return `${field} ${m}: ${assertion}`;
  }
  if (conf.accept_none_alg === true) return 'property "accept_none_alg" true is not supported: ID tokens and bearer JWTs must be signed';
  const session = conf.session as JsonObject | undefined;
  if (session?.storage === 'redis') return 'property "session.storage" "redis" is not supported; sessions are kept in the encrypted cookie';
  if ((conf.par as JsonObject | undefined)?.enabled === true) return 'property "par.enabled" is not supported';
  if ((conf.dpop as JsonObject | undefined)?.enabled === true) return 'property "dpop.enabled" is not supported';
  if (conf.proxy_opts !== undefined) return 'property "proxy_opts" is not supported';
  if (conf.claim_schema !== undefined) {
    try {
      compileSchema(conf.claim_schema as JsonObject);
    } catch (err) {
      return `check claim_schema failed: ${String(err)}`;
    }
  }
  return null;
}
