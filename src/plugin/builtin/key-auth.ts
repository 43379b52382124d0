// key-auth (APISIX priority 2500, type auth, rewrite phase): identifies the consumer by an API key taken from
// the `header` (default `apikey`), else the `query` argument (default `apikey`); with `bearer_token` the key
// comes from `Authorization: Bearer <key>`. Consumers (or their credentials) carry `{key}`.
// - missing key: 401 {"message":"Missing API key in request"}; unknown key: 401 {"message":"Invalid API key in
//   request"}; both with `WWW-Authenticate: apikey realm="<realm>"` (Bearer with bearer_token).
// - `anonymous_consumer`: on failure the named consumer is attached instead; if it does not exist,
//   401 {"message":"Invalid user authorization"}.
// - on success the identity headers X-Consumer-Username, X-Credential-Identifier and X-Consumer-Custom-Id are
//   replaced (client-supplied values never reach the upstream); `hide_credentials` removes the key header or
//   query argument.
// Keys are never logged. The directory lookup is by key; the final check compares SHA-256 digests of the
// presented and configured keys in constant time (auth-common.ts secretEquals).
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { ConsumerDirectory, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { attachConsumer, failOrAnonymous, firstHeader, removeQueryArg, secretEquals } from './auth-common.ts';

// Re-exported for modules written against key-auth before auth-common.ts existed.
export { attachConsumer, removeQueryArg, secretEquals } from './auth-common.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    header: { type: 'string', default: 'apikey' },
    query: { type: 'string', default: 'apikey' },
    realm: { type: 'string', minLength: 1, default: 'key' },
    hide_credentials: { type: 'boolean', default: false },
    bearer_token: { type: 'boolean', default: false },
    anonymous_consumer: { type: 'string', minLength: 1 },
  },
};

const consumerSchema: JsonObject = {
  type: 'object',
  properties: { key: { type: 'string' } },
  encrypt_fields: ['key'],
  required: ['key'],
};

const MISSING = 'Missing API key in request';
const INVALID = 'Invalid API key in request';
const BAD_BEARER = 'Invalid Bearer token format';

class KeyAuth implements PluginInstance {
  readonly #header: string;
  readonly #query: string;
  readonly #argVar: string;
  readonly #hide: boolean;
  readonly #bearer: boolean;
  readonly #anonymous: string | undefined;
  readonly #consumers: ConsumerDirectory;
  readonly #challenge: Readonly<Record<string, string>>;
  readonly #missing: PluginResponse;
  readonly #invalid: PluginResponse;
  readonly #badBearer: PluginResponse;
  readonly #noAnonymous: PluginResponse;

  constructor(conf: JsonObject, consumers: ConsumerDirectory) {
    this.#bearer = conf.bearer_token === true;
    this.#header = this.#bearer ? 'authorization' : String(conf.header ?? 'apikey').toLowerCase();
    this.#query = String(conf.query ?? 'apikey');
    this.#argVar = 'arg_' + this.#query;
    this.#hide = conf.hide_credentials === true;
    this.#anonymous = typeof conf.anonymous_consumer === 'string' ? conf.anonymous_consumer : undefined;
    this.#consumers = consumers;
    const scheme = this.#bearer ? 'Bearer' : 'apikey';
    this.#challenge = { 'www-authenticate': `${scheme} realm="${String(conf.realm ?? 'key')}"` };
    const reject = (message: string): PluginResponse => ({ status: 401, body: { message }, headers: this.#challenge });
    this.#missing = reject(MISSING);
    this.#invalid = reject(INVALID);
    this.#badBearer = reject(BAD_BEARER);
    this.#noAnonymous = reject('Invalid user authorization');
  }

  // hot path
  rewrite(ctx: HttpContext): PluginResponse | undefined {
    const req = ctx.request;
    let fromHeader = true;
    let key = firstHeader(req.headers[this.#header]);
    if (key === undefined) {
      fromHeader = false;
      const q = firstHeader(ctx.vars.get(this.#argVar) as string | string[] | undefined);
      key = typeof q === 'string' ? q : undefined;
    }
    if (key === undefined) return this.#fail(ctx, this.#missing);
    if (this.#bearer && fromHeader) {
      if (!key.startsWith('Bearer ')) return this.#fail(ctx, this.#badBearer);
      key = key.slice(7);
    }
    const match = this.#consumers.find('key-auth', 'key', key);
    const configured = match?.conf.key;
    if (match === undefined || typeof configured !== 'string' || !secretEquals(key, configured)) {
      return this.#fail(ctx, this.#invalid);
    }
    if (this.#hide) {
      if (fromHeader) req.setHeader(this.#header, null);
      else req.query = removeQueryArg(req.query, this.#query);
    }
    attachConsumer(ctx, match.consumer);
    return undefined;
  }

  #fail(ctx: HttpContext, r: PluginResponse): PluginResponse | undefined {
    return failOrAnonymous(ctx, this.#consumers, this.#anonymous, r, this.#noAnonymous);
  }
}

export const keyAuthPlugin: PluginDef = {
  name: 'key-auth',
  version: '0.1',
  priority: 2500,
  type: 'auth',
  schema,
  consumerSchema,
  encryptFields: ['key'],
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new KeyAuth(conf, env.consumers);
  },
};

export default keyAuthPlugin;
