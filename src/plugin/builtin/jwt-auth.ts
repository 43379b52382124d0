// jwt-auth (APISIX priority 2510, type auth, rewrite phase): identifies the consumer by a JWT whose claim
// `key_claim_name` (default `key`) names a consumer/credential `{key, secret | public_key, algorithm}`.
// The token is read from the `header` (default Authorization, `Bearer `/`bearer ` prefix optional), else the
// `query` argument, else the `cookie` (both default `jwt`).
// Failures are 401 with `WWW-Authenticate: Bearer realm="<realm>"` and APISIX's bodies:
// - no token: {"message":"Missing JWT token in request"}; not a JWS: {"message":"JWT token invalid"}
// - no key claim: {"message":"missing user key in JWT token"}; unknown key: {"message":"Invalid user key in JWT token"}
// - algorithm other than the consumer's, bad signature, key unusable, exp/nbf failing (with the consumer's
//   `lifetime_grace_period`): {"message":"failed to verify jwt"}
// `alg: none` and key confusion (an HS token checked against an RS consumer) fail on the algorithm check
// before any key is used. `anonymous_consumer`, `hide_credentials` (header, query argument or cookie) and
// `store_in_ctx` (payload in ctx.pluginData under "jwt-auth", APISIX's ctx.jwt_auth_payload) as in APISIX.
// Tokens and secrets are never logged.
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { ConsumerDirectory, ConsumerMatch, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import {
  anonymousConsumerSchema,
  attachConsumer,
  decodeBase64Lenient,
  failOrAnonymous,
  firstHeader,
  realmSchema,
  removeQueryArg,
  unauthorized,
} from './auth-common.ts';
import { claimsValid, decodeToken, isHmac, JWT_ALGORITHMS, signatureValid, verifyKeyFor, type DecodedJwt } from './jwt-auth/verify.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    header: { type: 'string', default: 'authorization' },
    query: { type: 'string', default: 'jwt' },
    cookie: { type: 'string', default: 'jwt' },
    hide_credentials: { type: 'boolean', default: false },
    key_claim_name: { type: 'string', default: 'key', minLength: 1 },
    store_in_ctx: { type: 'boolean', default: false },
    realm: realmSchema('jwt'),
    anonymous_consumer: anonymousConsumerSchema,
    claims_to_verify: { type: 'array', items: { type: 'string', enum: ['exp', 'nbf'] }, uniqueItems: true },
  },
};

const consumerSchema: JsonObject = {
  type: 'object',
  properties: {
    key: { type: 'string', minLength: 1 },
    secret: { type: 'string', minLength: 1 },
    algorithm: { type: 'string', enum: [...JWT_ALGORITHMS], default: 'HS256' },
    exp: { type: 'integer', minimum: 1, default: 86400 },
    base64_secret: { type: 'boolean', default: false },
    lifetime_grace_period: { type: 'integer', minimum: 0, default: 0 },
  },
  dependencies: {
    algorithm: {
      oneOf: [
        { properties: { algorithm: { enum: ['HS256', 'HS384', 'HS512'], default: 'HS256' } } },
        {
          properties: {
            public_key: { type: 'string', minLength: 1 },
            algorithm: { enum: JWT_ALGORITHMS.filter((a) => !isHmac(a)) },
          },
          required: ['public_key'],
        },
      ],
    },
  },
  encrypt_fields: ['secret'],
  required: ['key'],
};

/** APISIX check_schema for consumer confs, after the schema passed. */
function checkConsumer(conf: JsonObject): string | null {
  const alg = typeof conf.algorithm === 'string' ? conf.algorithm : 'HS256';
  const hmac = isHmac(alg);
  if (hmac && conf.secret === undefined) return 'property "secret" is required when using HS based algorithms';
  if (conf.base64_secret === true && typeof conf.secret === 'string' && !isSecretRef(conf.secret) && decodeBase64Lenient(conf.secret) === null) {
    return 'base64_secret required but the secret is not in base64 format';
  }
  if (!hmac && conf.public_key === undefined) return 'missing valid public key';
  return null;
}

function isSecretRef(s: string): boolean {
  return s.startsWith('$secret://') || s.startsWith('$env://');
}

/** The Cookie header without cookie `name` (null when nothing is left). */
export function removeCookie(header: string, name: string): string | null {
  const kept: string[] = [];
  for (const part of header.split(';')) {
    const p = part.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if ((eq < 0 ? p : p.slice(0, eq).trim()) !== name) kept.push(p);
  }
  return kept.length === 0 ? null : kept.join('; ');
}

interface Candidate {
  readonly token: string;
  readonly jwt: DecodedJwt;
  readonly match: ConsumerMatch;
  readonly alg: string;
}

class JwtAuth implements PluginInstance {
  readonly #header: string;
  readonly #query: string;
  readonly #argVar: string;
  readonly #cookie: string;
  readonly #cookieVar: string;
  readonly #hide: boolean;
  readonly #claimName: string;
  readonly #storeInCtx: boolean;
  readonly #claims: readonly string[] | undefined;
  readonly #anonymous: string | undefined;
  readonly #consumers: ConsumerDirectory;
  readonly #missing: PluginResponse;
  readonly #invalidToken: PluginResponse;
  readonly #missingKey: PluginResponse;
  readonly #invalidKey: PluginResponse;
  readonly #failed: PluginResponse;
  readonly #noAnonymous: PluginResponse;

  constructor(conf: JsonObject, consumers: ConsumerDirectory) {
    this.#header = String(conf.header ?? 'authorization').toLowerCase();
    this.#query = String(conf.query ?? 'jwt');
    this.#argVar = 'arg_' + this.#query;
    this.#cookie = String(conf.cookie ?? 'jwt');
    this.#cookieVar = 'cookie_' + this.#cookie;
    this.#hide = conf.hide_credentials === true;
    this.#claimName = String(conf.key_claim_name ?? 'key');
    this.#storeInCtx = conf.store_in_ctx === true;
    this.#claims = Array.isArray(conf.claims_to_verify) ? conf.claims_to_verify.map(String) : undefined;
    this.#anonymous = typeof conf.anonymous_consumer === 'string' ? conf.anonymous_consumer : undefined;
    this.#consumers = consumers;
    const challenge = { 'www-authenticate': `Bearer realm="${String(conf.realm ?? 'jwt')}"` };
    this.#missing = unauthorized('Missing JWT token in request', challenge);
    this.#invalidToken = unauthorized('JWT token invalid', challenge);
    this.#missingKey = unauthorized('missing user key in JWT token', challenge);
    this.#invalidKey = unauthorized('Invalid user key in JWT token', challenge);
    this.#failed = unauthorized('failed to verify jwt', challenge);
    this.#noAnonymous = unauthorized('Invalid user authorization', challenge);
  }

  // hot path: everything up to the signature check is synchronous; only jose's verify is awaited.
  rewrite(ctx: HttpContext): PluginResponse | undefined | Promise<PluginResponse | undefined> {
    const c = this.#candidate(ctx);
    if (!('token' in c)) return this.#fail(ctx, c);
    return this.#verify(ctx, c);
  }

  #candidate(ctx: HttpContext): Candidate | PluginResponse {
    const token = this.#fetchToken(ctx);
    if (token === undefined) return this.#missing;
    const jwt = decodeToken(token);
    if (jwt === null) return this.#invalidToken;
    const userKey = jwt.payload[this.#claimName];
    if (userKey === undefined || userKey === false) return this.#missingKey;
    const match = typeof userKey === 'string' ? this.#consumers.find('jwt-auth', 'key', userKey) : undefined;
    if (match === undefined) return this.#invalidKey;
    const alg = typeof match.conf.algorithm === 'string' ? match.conf.algorithm : 'HS256';
    if (jwt.header.alg !== alg) return this.#failed;
    return { token, jwt, match, alg };
  }

  async #verify(ctx: HttpContext, c: Candidate): Promise<PluginResponse | undefined> {
    const key = await verifyKeyFor(c.match.conf, c.alg);
    if (key === null || !(await signatureValid(c.token, key, c.alg))) return this.#fail(ctx, this.#failed);
    const grace = c.match.conf.lifetime_grace_period;
    const leeway = typeof grace === 'number' ? grace : 0;
    if (!claimsValid(c.jwt.payload, this.#claims, leeway, Math.floor(Date.now() / 1000))) return this.#fail(ctx, this.#failed);
    if (this.#storeInCtx) ctx.pluginData.set('jwt-auth', c.jwt.payload);
    attachConsumer(ctx, c.match.consumer);
    return undefined;
  }

  /** The token, removing it from the upstream request when hide_credentials is on (as APISIX, even if invalid). */
  #fetchToken(ctx: HttpContext): string | undefined {
    const req = ctx.request;
    const h = firstHeader(req.headers[this.#header]);
    if (h !== undefined) {
      if (this.#hide) req.setHeader(this.#header, null);
      return h.startsWith('Bearer ') || h.startsWith('bearer ') ? h.slice(7) : h;
    }
    const q = firstHeader(ctx.vars.get(this.#argVar) as string | string[] | undefined);
    if (typeof q === 'string') {
      if (this.#hide) req.query = removeQueryArg(req.query, this.#query);
      return q;
    }
    const cookie = ctx.vars.get(this.#cookieVar);
    if (typeof cookie !== 'string') return undefined;
    if (this.#hide) {
      const src = firstHeader(req.headers.cookie);
      if (src !== undefined) req.setHeader('cookie', removeCookie(src, this.#cookie));
    }
    return cookie;
  }

  #fail(ctx: HttpContext, r: PluginResponse): PluginResponse | undefined {
    return failOrAnonymous(ctx, this.#consumers, this.#anonymous, r, this.#noAnonymous);
  }
}

export const jwtAuthPlugin: PluginDef = {
  name: 'jwt-auth',
  version: '0.1',
  priority: 2510,
  type: 'auth',
  schema,
  consumerSchema,
  encryptFields: ['secret'],
  subsystems: ['http'],
  status: 'stable',
  check(conf, schemaType) {
    return schemaType === 'consumer' ? checkConsumer(conf) : null;
  },
  create(conf, env) {
    return new JwtAuth(conf, env.consumers);
  },
};

export default jwtAuthPlugin;
