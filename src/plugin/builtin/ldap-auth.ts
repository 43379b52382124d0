// ldap-auth (APISIX priority 2540, type auth, rewrite phase): HTTP Basic credentials checked by an LDAP simple
// bind as `<uid>=<user>,<base_dn>` (user escaped per RFC 4514) against `ldap_uri` (`host[:port]`, port 389;
// LDAPS when `use_tls`, certificate checked when `tls_verify`). The consumer whose ldap-auth `user_dn` equals
// that bind DN is attached. Every 401 carries `WWW-Authenticate: Basic realm="<realm>"`:
// - no Authorization header: {"message":"Missing authorization in request"};
// - not `Basic <base64 of user:password>`: {"message":"Invalid authorization in request"};
// - bind refused or LDAP unreachable: {"message":"Invalid user authorization"};
// - no consumer uses ldap-auth: {"message":"Missing related consumer"}; none with that DN: "Invalid user authorization".
// An empty password is refused before any bind: LDAP treats it as an unauthenticated bind, which succeeds.
// Bound connections are kept (up to POOL_MAX idle per conf) and re-bound for the next request, as APISIX
// keeps its cosockets alive. Passwords are never logged.
import ldap from 'ldapjs';
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { HttpContext } from '../context.ts';
import type { ConsumerDirectory, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { attachConsumer } from './auth-common.ts';

const schema: JsonObject = {
  type: 'object',
  title: 'work with route or service object',
  properties: {
    base_dn: { type: 'string' },
    ldap_uri: { type: 'string' },
    use_tls: { type: 'boolean', default: false },
    tls_verify: { type: 'boolean', default: false },
    uid: { type: 'string', default: 'cn' },
    hide_credentials: { type: 'boolean', default: false },
    realm: { type: 'string', pattern: '^[\\x20-\\x21\\x23-\\x5B\\]-\\x7E]+$', default: 'ldap', minLength: 1, maxLength: 128 },
  },
  required: ['base_dn', 'ldap_uri'],
};

const consumerSchema: JsonObject = {
  type: 'object',
  title: 'work with consumer object',
  properties: { user_dn: { type: 'string' } },
  required: ['user_dn'],
};

/** APISIX binds with a 10 s timeout. */
const TIMEOUT_MS = 10_000;
const POOL_MAX = 5;
const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;
const BASIC_RE = /^basic\s(.+)/i;
const WS_RE = /\s+/g;
// Base class of ldapjs errors (missing from @types/ldapjs); errors outside it come from the socket layer.
const LDAPError = (ldap as unknown as { LDAPError: abstract new () => Error }).LDAPError;
const TRANSPORT_ERRORS = new Set(['ConnectionError', 'TimeoutError', 'AbandonedError']);

/** RFC 4514 escaping of an attribute value inside a DN string. */
export function escapeDnValue(v: string): string {
  let out = v.replace(/[\\,+"<>;=]/g, (c) => '\\' + c).replace(/\0/g, '\\00');
  if (out.startsWith(' ') || out.startsWith('#')) out = '\\' + out;
  if (out.endsWith(' ') && out.length > 1) out = out.slice(0, -1) + '\\ ';
  return out;
}

/** user and password of a Basic Authorization value, or null when malformed (APISIX extract_auth_header). */
export function parseBasic(header: string): { user: string; password: string } | null {
  const m = BASIC_RE.exec(header);
  if (m === null) return null;
  const b64 = m[1]!.trim();
  // nginx's base64 decoder refuses what Node's lenient one would accept
  if (!BASE64_RE.test(b64) || b64.replace(/=+$/, '').length % 4 === 1) return null;
  const decoded = Buffer.from(b64, 'base64').toString();
  const colon = decoded.indexOf(':');
  if (colon < 0) return null;
  // APISIX strips whitespace from both parts; the password keeps any further ':' (RFC 7617).
  return { user: decoded.slice(0, colon).replace(WS_RE, ''), password: decoded.slice(colon + 1).replace(WS_RE, '') };
}

type BindOutcome = 'ok' | 'refused' | 'error';

class LdapAuth implements PluginInstance {
  readonly #url: string;
  readonly #tlsVerify: boolean;
  readonly #uid: string;
  readonly #baseDn: string;
  readonly #hide: boolean;
  readonly #consumers: ConsumerDirectory;
  readonly #logger: Logger;
  readonly #idle: ldap.Client[] = [];
  readonly #missing: PluginResponse;
  readonly #malformed: PluginResponse;
  readonly #invalid: PluginResponse;
  readonly #noConsumer: PluginResponse;
  #closed = false;

  constructor(conf: JsonObject, consumers: ConsumerDirectory, logger: Logger) {
    const addr = String(conf.ldap_uri);
    const hasPort = /:\d+$/.test(addr) && !addr.endsWith(']');
    const tls = conf.use_tls === true;
    this.#url = `${tls ? 'ldaps' : 'ldap'}://${hasPort ? addr : `${addr}:389`}`;
    this.#tlsVerify = conf.tls_verify === true;
    this.#uid = String(conf.uid ?? 'cn');
    this.#baseDn = String(conf.base_dn);
    this.#hide = conf.hide_credentials === true;
    this.#consumers = consumers;
    this.#logger = logger;
    const headers = { 'www-authenticate': `Basic realm="${String(conf.realm ?? 'ldap')}"` };
    const reject = (message: string): PluginResponse => ({ status: 401, body: { message }, headers });
    this.#missing = reject('Missing authorization in request');
    this.#malformed = reject('Invalid authorization in request');
    this.#invalid = reject('Invalid user authorization');
    this.#noConsumer = reject('Missing related consumer');
  }

  async rewrite(ctx: HttpContext): Promise<PluginResponse | undefined> {
    const raw = ctx.request.headers.authorization;
    const header = Array.isArray(raw) ? raw[0] : raw;
    if (header === undefined) return this.#missing;
    const creds = parseBasic(header);
    if (creds === null) return this.#malformed;
    if (creds.password === '') return this.#invalid;
    const dn = `${this.#uid}=${escapeDnValue(creds.user)},${this.#baseDn}`;
    const outcome = await this.#bind(dn, creds.password);
    if (outcome !== 'ok') return this.#invalid;
    if (this.#consumers.withPlugin('ldap-auth').length === 0) return this.#noConsumer;
    const match = this.#consumers.find('ldap-auth', 'user_dn', dn);
    if (match === undefined) return this.#invalid;
    attachConsumer(ctx, match.consumer);
    if (this.#hide) ctx.request.setHeader('authorization', null);
    return undefined;
  }

  #client(): ldap.Client {
    for (;;) {
      const c = this.#idle.pop();
      if (c === undefined) break;
      if ((c as unknown as { connected?: boolean }).connected === true) return c;
      c.destroy();
    }
    const client = ldap.createClient({
      url: this.#url,
      timeout: TIMEOUT_MS,
      connectTimeout: TIMEOUT_MS,
      reconnect: false,
      tlsOptions: { rejectUnauthorized: this.#tlsVerify },
    });
    // Connection failures are reported to the pending bind below; an unhandled 'error' would crash.
    client.on('error', () => undefined);
    return client;
  }

  #bind(dn: string, password: string): Promise<BindOutcome> {
    const client = this.#client();
    return new Promise<BindOutcome>((resolve) => {
      let done = false;
      const finish = (outcome: BindOutcome, err?: unknown) => {
        if (done) return;
        done = true;
        client.removeListener('connectError', onFail);
        client.removeListener('connectTimeout', onFail);
        client.removeListener('error', onFail);
        if (outcome === 'error') this.#logger.warn({ err, url: this.#url }, 'ldap-auth: LDAP server unavailable');
        // A refused bind leaves the connection usable (anonymous); only transport failures discard it.
        if (outcome !== 'error' && !this.#closed && this.#idle.length < POOL_MAX) this.#idle.push(client);
        else client.destroy();
        resolve(outcome);
      };
      const onFail = (err: unknown) => finish('error', err);
      client.once('connectError', onFail);
      client.once('connectTimeout', onFail);
      client.once('error', onFail);
      client.bind(dn, password, (err) => {
        if (err === null || err === undefined) return finish('ok');
        // A result code from the server (invalid credentials, no such object...) is a refusal; a transport
        // failure means the server could not answer.
        finish(err instanceof LDAPError && !TRANSPORT_ERRORS.has(err.name) ? 'refused' : 'error', err);
      });
    });
  }

  destroy(): void {
    this.#closed = true;
    for (const c of this.#idle.splice(0)) c.destroy();
  }
}

export const ldapAuthPlugin: PluginDef = {
  name: 'ldap-auth',
  version: '0.1',
  priority: 2540,
  type: 'auth',
  schema,
  consumerSchema,
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new LdapAuth(conf, env.consumers, env.logger);
  },
};

export default ldapAuthPlugin;
