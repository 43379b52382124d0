// hmac-auth (APISIX 3.x, priority 2530, type auth, rewrite phase): the client signs selected request headers
// with a consumer/credential `{key_id, secret_key}` (wire format in hmac-auth/signature.ts).
// Checks, in APISIX's order: keyId and signature present, algorithm present, key_id known, algorithm in
// `allowed_algorithms`, Date within `clock_skew` seconds, every `signed_headers` entry listed in the
// signature's headers, signature equal (constant time), then with `validate_request_body` the
// `Digest: SHA-256=<base64>` of the body (constant time; a body over `max_req_body_size` is 413).
// Failures are 401 {"message":"client request can't be validated"} (with ": missing Authorization header" or
// ": Authorization header does not start with 'Signature'" when there is nothing to check) and
// `WWW-Authenticate: hmac realm="<realm>"`. `anonymous_consumer` and `hide_credentials` as in APISIX.
// Replays: APISIX has no replay cache, only the Date window bounds them. Switchyard's `reject_replays`
// (default false) also refuses a signature seen before while its Date is within `clock_skew` (see #admit),
// remembered node-wide or, with `replay_policy` redis / redis-cluster / redis-sentinel, in a Redis shared by
// several gateways (a Redis failure answers 500: the check fails closed). The node-wide memory is its own
// store (counters/seen.ts), never shared with the rate-limit counters whose keys clients choose; when it is
// full of live signatures a new signature is refused with 503 rather than an old one forgotten.
import { createHash } from 'node:crypto';
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { HttpContext } from '../context.ts';
import type { ConsumerDirectory, ConsumerMatch, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { nodeCounters } from '../counters/cluster.ts';
import type { CounterResult } from '../counters/counter.ts';
import { redisTargetOf } from '../counters/redis-client.ts';
import { policySchema, redisCluster, redisSentinel, redisSingle } from '../counters/redis-schema.ts';
import { RedisCounterStore } from '../counters/redis.ts';
import { SEEN_FULL, SEEN_NEW } from '../counters/seen.ts';
import {
  anonymousConsumerSchema,
  attachConsumer,
  bytesEqual,
  decodeBase64Lenient,
  failOrAnonymous,
  firstHeader,
  realmSchema,
  unauthorized,
} from './auth-common.ts';
import { computeSignature, HMAC_ALGORITHMS, parseHttpDate, parseSignatureParams, signingString, type SignedRequest } from './hmac-auth/signature.ts';

const schema: JsonObject = {
  type: 'object',
  title: 'work with route or service object',
  properties: {
    allowed_algorithms: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', enum: [...HMAC_ALGORITHMS] },
      default: [...HMAC_ALGORITHMS],
    },
    clock_skew: { type: 'integer', default: 300, minimum: 1 },
    signed_headers: {
      type: 'array',
      default: ['date'],
      items: { type: 'string', minLength: 1, maxLength: 50 },
    },
    validate_request_body: { type: 'boolean', default: false },
    max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
    hide_credentials: { type: 'boolean', default: false },
    realm: realmSchema('hmac'),
    anonymous_consumer: anonymousConsumerSchema,
    // Switchyard extension: a valid signature is accepted once. It is remembered node-wide (every worker asks
    // the primary's counters, counters/cluster.ts) until its Date leaves the clock_skew window, after which the
    // skew check refuses it anyway. Off by default as APISIX has no such check: with it, a client that
    // retries a signed request unchanged, or sends the same signed GET twice within one second (the Date has
    // a one-second resolution), gets 401 on the second one.
    reject_replays: { type: 'boolean', default: false },
    // Switchyard extension: where seen signatures are kept. local: this node (all its workers); redis,
    // redis-cluster, redis-sentinel: shared by every gateway using that Redis (limit-count's redis_* fields).
    replay_policy: { type: 'string', enum: ['local', 'redis', 'redis-cluster', 'redis-sentinel'], default: 'local' },
  },
  ...policySchema(redisSingle, redisCluster, redisSentinel, 'replay_policy'),
};

const consumerSchema: JsonObject = {
  type: 'object',
  title: 'work with consumer object',
  properties: {
    key_id: { type: 'string', minLength: 1, maxLength: 256 },
    secret_key: { type: 'string', minLength: 1, maxLength: 256 },
  },
  encrypt_fields: ['secret_key'],
  required: ['key_id', 'secret_key'],
};

/** A request whose signature passed every check, to be remembered when replays are refused. */
interface Accepted {
  readonly match: ConsumerMatch;
  /** The signature bytes as verified (not as written: base64 padding and trailing text vary). */
  readonly signature: Uint8Array;
  readonly keyId: string;
  /** The request's Date, seconds since the epoch. */
  readonly date: number;
}

class RequestView implements SignedRequest {
  readonly ctx: HttpContext;
  constructor(ctx: HttpContext) {
    this.ctx = ctx;
  }
  get method(): string {
    return this.ctx.request.method;
  }
  get requestUri(): string {
    const v = this.ctx.vars.get('request_uri');
    return typeof v === 'string' ? v : '';
  }
  header(lowerName: string): string | undefined {
    return firstHeader(this.ctx.request.headers[lowerName]);
  }
}

const FULL_LOG_MS = 10_000;

class HmacAuth implements PluginInstance {
  readonly #allowed: ReadonlySet<string>;
  readonly #clockSkew: number;
  readonly #signedHeaders: readonly string[];
  readonly #validateBody: boolean;
  readonly #maxBody: number;
  readonly #hide: boolean;
  readonly #rejectReplays: boolean;
  readonly #redis: RedisCounterStore | null;
  readonly #anonymous: string | undefined;
  readonly #consumers: ConsumerDirectory;
  readonly #logger: Logger;
  readonly #challenge: Readonly<Record<string, string>>;
  readonly #missingHeader: PluginResponse;
  readonly #notSignature: PluginResponse;
  readonly #invalid: PluginResponse;
  readonly #noAnonymous: PluginResponse;
  readonly #storeFailed: PluginResponse;
  readonly #storeFull: PluginResponse;
  #fullLoggedAt = 0;

  constructor(conf: JsonObject, consumers: ConsumerDirectory, logger: Logger) {
    const allowed = Array.isArray(conf.allowed_algorithms) ? conf.allowed_algorithms.map(String) : [...HMAC_ALGORITHMS];
    this.#allowed = new Set(allowed);
    this.#clockSkew = typeof conf.clock_skew === 'number' ? conf.clock_skew : 300;
    this.#signedHeaders = Array.isArray(conf.signed_headers) ? conf.signed_headers.map(String) : ['date'];
    this.#validateBody = conf.validate_request_body === true;
    this.#maxBody = typeof conf.max_req_body_size === 'number' ? conf.max_req_body_size : 67108864;
    this.#hide = conf.hide_credentials === true;
    this.#rejectReplays = conf.reject_replays === true;
    const target = this.#rejectReplays ? redisTargetOf({ ...conf, policy: conf.replay_policy ?? 'local' }) : null;
    this.#redis = target === null ? null : new RedisCounterStore(target);
    this.#anonymous = typeof conf.anonymous_consumer === 'string' ? conf.anonymous_consumer : undefined;
    this.#consumers = consumers;
    this.#logger = logger;
    this.#challenge = { 'www-authenticate': `hmac realm="${String(conf.realm ?? 'hmac')}"` };
    const prefix = "client request can't be validated";
    this.#missingHeader = unauthorized(`${prefix}: missing Authorization header`, this.#challenge);
    this.#notSignature = unauthorized(`${prefix}: Authorization header does not start with 'Signature'`, this.#challenge);
    this.#invalid = unauthorized(prefix, this.#challenge);
    this.#noAnonymous = unauthorized('Invalid user authorization', this.#challenge);
    this.#storeFailed = { status: 500, body: { message: 'failed to check the signature against replays' } };
    this.#storeFull = { status: 503, body: { message: 'too many recent signatures to check against replays, retry later' } };
  }

  destroy(): void {
    this.#redis?.release();
  }

  // hot path: synchronous unless the body has to be read for its digest or a worker asks the node's counters.
  rewrite(ctx: HttpContext): PluginResponse | undefined | Promise<PluginResponse | undefined> {
    const auth = firstHeader(ctx.request.headers.authorization);
    if (auth === undefined) return this.#fail(ctx, this.#missingHeader);
    if (!auth.startsWith('Signature')) return this.#fail(ctx, this.#notSignature);
    const outcome = this.#validate(ctx, auth);
    if ('reason' in outcome) return this.#refuse(ctx, outcome.reason);
    if (!this.#validateBody) return this.#admit(ctx, outcome);
    return this.#checkBody(ctx, outcome);
  }

  #refuse(ctx: HttpContext, reason: string): PluginResponse | undefined {
    this.#logger.warn({ route: ctx.routeId, reason }, "hmac-auth: client request can't be validated");
    return this.#fail(ctx, this.#invalid);
  }

  #validate(ctx: HttpContext, auth: string): Accepted | { readonly reason: string } {
    const params = parseSignatureParams(auth);
    if (params.keyId === undefined || params.signature === undefined) return { reason: 'keyId or signature missing' };
    if (params.algorithm === undefined) return { reason: 'algorithm missing' };
    const match = this.#consumers.find('hmac-auth', 'key_id', params.keyId);
    const secret = match?.conf.secret_key;
    if (match === undefined || typeof secret !== 'string') return { reason: 'Invalid key_id' };
    if (!this.#allowed.has(params.algorithm)) return { reason: 'Invalid algorithm' };
    const date = firstHeader(ctx.request.headers.date);
    if (date === undefined) return { reason: 'Date header missing. failed to validate clock skew' };
    const time = parseHttpDate(date);
    if (time === null) return { reason: 'Invalid GMT format time' };
    if (Math.abs(Math.floor(Date.now() / 1000) - time) > this.#clockSkew) return { reason: 'Clock skew exceeded' };
    const listed = params.headers ?? [];
    for (const h of this.#signedHeaders) if (!listed.includes(h)) return { reason: `expected header "${h}" missing in signing` };
    const presented = decodeBase64Lenient(params.signature);
    const expected = computeSignature(params.algorithm, secret, signingString(params.keyId, params.headers, new RequestView(ctx)));
    if (presented === null || !bytesEqual(presented, expected)) return { reason: 'Invalid signature' };
    return { match, signature: expected, keyId: params.keyId, date: time };
  }

  async #checkBody(ctx: HttpContext, accepted: Accepted): Promise<PluginResponse | undefined> {
    const digestHeader = firstHeader(ctx.request.headers.digest);
    if (digestHeader === undefined) return this.#fail(ctx, this.#invalid);
    const declared = Number(firstHeader(ctx.request.headers['content-length']) ?? 0);
    if (declared > this.#maxBody) return this.#tooLarge(declared);
    const body = await ctx.request.readBody();
    if (body.length > this.#maxBody) return this.#tooLarge(body.length);
    const computed = Buffer.from('SHA-256=' + createHash('sha256').update(body).digest('base64'));
    if (!bytesEqual(Buffer.from(digestHeader), computed)) return this.#fail(ctx, this.#invalid);
    return this.#admit(ctx, accepted);
  }

  /**
   * Last step of an accepted request. With reject_replays the signature is counted node-wide (a window per
   * signature, limit 1) only once every other check passed, so a forged or refused request never uses up a
   * genuine signature. The window lasts while the Date is within this route's clock_skew: later, the skew
   * check refuses. (Keys are not per route: a replay to another route is caught too, unless that route allows
   * a longer clock_skew and the first window has ended.)
   */
  #admit(ctx: HttpContext, a: Accepted): PluginResponse | undefined | Promise<PluginResponse | undefined> {
    if (!this.#rejectReplays) return this.#accept(ctx, a.match);
    const key = 'hmac-auth replay ' + createHash('sha256').update(a.keyId).update('\0').update(a.signature).digest('base64url');
    const windowMs = Math.max(1, (a.date + this.#clockSkew + 1) * 1000 - Date.now());
    if (this.#redis !== null) return this.#afterCount(ctx, a, this.#redis.incr(key, windowMs, 1, 'fixed'));
    const seen = nodeCounters.remember(key, windowMs);
    return typeof seen === 'number' ? this.#seenOnce(ctx, a, seen) : this.#afterSeen(ctx, a, seen);
  }

  /** A Redis store that fails answers 500: without the check, a replay would pass. */
  async #afterCount(ctx: HttpContext, a: Accepted, seen: Promise<CounterResult>): Promise<PluginResponse | undefined> {
    let r: CounterResult;
    try {
      r = await seen;
    } catch (err) {
      this.#logger.error({ route: ctx.routeId, err }, 'hmac-auth: replay check failed');
      return this.#storeFailed;
    }
    if (r.allowed) return this.#accept(ctx, a.match);
    return this.#refuse(ctx, 'signature already used (replay)');
  }

  async #afterSeen(ctx: HttpContext, a: Accepted, seen: Promise<number>): Promise<PluginResponse | undefined> {
    return this.#seenOnce(ctx, a, await seen);
  }

  #seenOnce(ctx: HttpContext, a: Accepted, seen: number): PluginResponse | undefined {
    if (seen === SEEN_NEW) return this.#accept(ctx, a.match);
    if (seen === SEEN_FULL) {
      // Once per FULL_LOG_MS: a flood of new signatures is what fills the store, it must not flood the log too.
      const now = Date.now();
      if (now - this.#fullLoggedAt >= FULL_LOG_MS) {
        this.#fullLoggedAt = now;
        this.#logger.error({ route: ctx.routeId }, 'hmac-auth: the replay store is full of live signatures; refusing new ones');
      }
      return this.#storeFull;
    }
    return this.#refuse(ctx, 'signature already used (replay)');
  }

  #tooLarge(size: number): PluginResponse {
    return { status: 413, body: { message: `request size ${size} is greater than the maximum size ${this.#maxBody} allowed` } };
  }

  #accept(ctx: HttpContext, match: ConsumerMatch): undefined {
    if (this.#hide) ctx.request.setHeader('authorization', null);
    attachConsumer(ctx, match.consumer);
    return undefined;
  }

  #fail(ctx: HttpContext, r: PluginResponse): PluginResponse | undefined {
    const res = failOrAnonymous(ctx, this.#consumers, this.#anonymous, r, this.#noAnonymous);
    if (res === undefined && this.#hide) ctx.request.setHeader('authorization', null);
    return res;
  }
}

export const hmacAuthPlugin: PluginDef = {
  name: 'hmac-auth',
  version: '0.1',
  priority: 2530,
  type: 'auth',
  schema,
  consumerSchema,
  encryptFields: ['secret_key'],
  // The replay store's Redis credentials live in the route conf (APISIX's limit-count encrypts the same names).
  routeEncryptFields: ['redis_password', 'sentinel_password'],
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new HmacAuth(conf, env.consumers, env.logger);
  },
};

export default hmacAuthPlugin;
