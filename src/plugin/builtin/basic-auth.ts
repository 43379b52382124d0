// basic-auth (APISIX priority 2520, type auth, rewrite phase): identifies the consumer by
// `Authorization: Basic base64(username:password)`. Consumers (or their credentials) carry
// `{username, password}`; the password is stored encrypted (encrypt_fields).
// - no Authorization header: 401 {"message":"Missing authorization in request"}
// - a header that does not hold `basic <base64>` decoding to `user:password`:
//   401 {"message":"Invalid authorization in request"}
// - unknown user or wrong password: 401 {"message":"Invalid user authorization"}
// Every 401 carries `WWW-Authenticate: Basic realm="<realm>"`. `anonymous_consumer` attaches that consumer on
// failure (401 "Invalid user authorization" when it does not exist); `hide_credentials` drops Authorization.
// As in APISIX, whitespace is removed from the decoded username and password, and the scheme is matched
// case-insensitively anywhere in the header. Unlike APISIX (which keeps only the text between the first and
// second colon), the password is everything after the first colon (RFC 7617), so a password containing a
// colon can be used and a suffix after one is not ignored.
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { ConsumerDirectory, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import {
  anonymousConsumerSchema,
  attachConsumer,
  decodeBase64Lenient,
  failOrAnonymous,
  firstHeader,
  realmSchema,
  secretEquals,
  unauthorized,
} from './auth-common.ts';

const schema: JsonObject = {
  type: 'object',
  title: 'work with route or service object',
  properties: {
    hide_credentials: { type: 'boolean', default: false },
    realm: realmSchema('basic'),
    anonymous_consumer: anonymousConsumerSchema,
  },
};

const consumerSchema: JsonObject = {
  type: 'object',
  title: 'work with consumer object',
  properties: {
    username: { type: 'string' },
    password: { type: 'string' },
  },
  encrypt_fields: ['password'],
  required: ['username', 'password'],
};

// APISIX matches `(?i:basic)\s(.+)` unanchored; `.` stops at a line break as in PCRE.
const BASIC = /basic\s(.+)/i;
const WHITESPACE = /\s+/g;

export interface BasicCredentials {
  readonly username: string;
  readonly password: string;
}

/** Username and password from an Authorization header value, or null when it is not valid Basic auth. */
export function parseBasicAuthorization(header: string): BasicCredentials | null {
  const m = BASIC.exec(header);
  if (m === null) return null;
  const decoded = decodeBase64Lenient(m[1]!);
  if (decoded === null) return null;
  const text = decoded.toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) return null;
  const username = text.slice(0, colon).replace(WHITESPACE, '');
  const password = text.slice(colon + 1).replace(WHITESPACE, '');
  // APISIX's split yields a single field for `user:`, which it rejects as malformed.
  if (password === '') return null;
  return { username, password };
}

class BasicAuth implements PluginInstance {
  readonly #hide: boolean;
  readonly #anonymous: string | undefined;
  readonly #consumers: ConsumerDirectory;
  readonly #missing: PluginResponse;
  readonly #malformed: PluginResponse;
  readonly #invalidUser: PluginResponse;

  constructor(conf: JsonObject, consumers: ConsumerDirectory) {
    this.#hide = conf.hide_credentials === true;
    this.#anonymous = typeof conf.anonymous_consumer === 'string' ? conf.anonymous_consumer : undefined;
    this.#consumers = consumers;
    const challenge = { 'www-authenticate': `Basic realm="${String(conf.realm ?? 'basic')}"` };
    this.#missing = unauthorized('Missing authorization in request', challenge);
    this.#malformed = unauthorized('Invalid authorization in request', challenge);
    this.#invalidUser = unauthorized('Invalid user authorization', challenge);
  }

  // hot path
  rewrite(ctx: HttpContext): PluginResponse | undefined {
    const header = firstHeader(ctx.request.headers.authorization);
    if (header === undefined) return this.#fail(ctx, this.#missing);
    const creds = parseBasicAuthorization(header);
    if (creds === null) return this.#fail(ctx, this.#malformed);
    const match = this.#consumers.find('basic-auth', 'username', creds.username);
    const configured = match?.conf.password;
    if (match === undefined || typeof configured !== 'string' || !secretEquals(creds.password, configured)) {
      return this.#fail(ctx, this.#invalidUser);
    }
    if (this.#hide) ctx.request.setHeader('authorization', null);
    attachConsumer(ctx, match.consumer);
    return undefined;
  }

  #fail(ctx: HttpContext, r: PluginResponse): PluginResponse | undefined {
    const res = failOrAnonymous(ctx, this.#consumers, this.#anonymous, r, this.#invalidUser);
    if (res === undefined && this.#hide) ctx.request.setHeader('authorization', null);
    return res;
  }
}

export const basicAuthPlugin: PluginDef = {
  name: 'basic-auth',
  version: '0.1',
  priority: 2520,
  type: 'auth',
  schema,
  consumerSchema,
  encryptFields: ['password'],
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new BasicAuth(conf, env.consumers);
  },
};

export default basicAuthPlugin;
