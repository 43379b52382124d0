// Talking to the OpenID Provider: discovery document (cached per URL, shared across snapshots, failures not
// cached), JWKS (jose createRemoteJWKSet, cached per jwks_uri), and form/JSON calls to the token,
// introspection and userinfo endpoints. All HTTP goes through undici with the plugin's `timeout` on connect,
// response head and body; `ssl_verify: false` uses an agent that accepts any certificate.
import { createPrivateKey, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { createRemoteJWKSet, customFetch, SignJWT, type JWTVerifyGetKey } from 'jose';
import { Agent, fetch as undiciFetch, request, type Dispatcher } from 'undici';

export interface Discovery {
  readonly issuer?: string;
  readonly authorization_endpoint?: string;
  readonly token_endpoint?: string;
  readonly userinfo_endpoint?: string;
  readonly jwks_uri?: string;
  readonly introspection_endpoint?: string;
  readonly end_session_endpoint?: string;
  readonly revocation_endpoint?: string;
}

export interface HttpOpts {
  readonly timeoutMs: number;
  readonly verify: boolean;
}

export interface ClientAuth {
  readonly clientId: string;
  readonly clientSecret: string | undefined;
  /** client_secret_basic, client_secret_post, private_key_jwt or client_secret_jwt. */
  readonly method: string;
  /** How the JWT methods sign their client assertion. */
  readonly assertion?: AssertionConf;
}

/** RFC 7523 client assertion settings (lua-resty-openidc call_token_endpoint, APISIX's client_jwt_* fields). */
export interface AssertionConf {
  /** client_rsa_private_key for private_key_jwt, client_secret for client_secret_jwt. */
  readonly key: KeyObject;
  readonly alg: string;
  /** client_rsa_private_key_id, sent as the JWS kid. */
  readonly kid: string | undefined;
  readonly expiresIn: number;
  /** client_jwt_assertion_audience; the endpoint's URL when unset. */
  readonly audience: string | undefined;
}

/** lua-resty-openidc keeps a discovery document for 24 h. */
const DISCOVERY_TTL_MS = 24 * 3600 * 1000;
/** Bounds on what the OP may send back (discovery, JWKS, tokens, userinfo). */
const MAX_BODY = 1024 * 1024;

const verifying = new Agent({ keepAliveTimeout: 60_000 });
const trusting = new Agent({ keepAliveTimeout: 60_000, connect: { rejectUnauthorized: false } });

function agent(opts: HttpOpts): Dispatcher {
  return opts.verify ? verifying : trusting;
}

export class OpError extends Error {}

async function readJson(res: Dispatcher.ResponseData, what: string): Promise<unknown> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res.body) {
    n += (c as Buffer).length;
    if (n > MAX_BODY) {
      res.body.destroy();
      throw new OpError(`${what}: response too large`);
    }
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString();
  try {
    return JSON.parse(text);
  } catch {
    throw new OpError(`${what}: response is not JSON (status ${res.statusCode})`);
  }
}

async function call(url: string, init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string }, opts: HttpOpts): Promise<Dispatcher.ResponseData> {
  try {
    return await request(url, {
      method: init.method,
      headers: init.headers,
      body: init.body,
      dispatcher: agent(opts),
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      signal: AbortSignal.timeout(opts.timeoutMs * 2),
    });
  } catch (err) {
    throw new OpError(`accessing ${new URL(url).origin}${new URL(url).pathname} failed: ${(err as Error).message}`);
  }
}

const discoveries = new Map<string, { at: number; doc: Promise<Discovery> }>();

export function getDiscovery(url: string, opts: HttpOpts): Promise<Discovery> {
  const hit = discoveries.get(url);
  if (hit !== undefined && Date.now() - hit.at < DISCOVERY_TTL_MS) return hit.doc;
  const doc = (async () => {
    const res = await call(url, { method: 'GET', headers: { accept: 'application/json' } }, opts);
    const json = await readJson(res, 'discovery');
    if (res.statusCode !== 200 || json === null || typeof json !== 'object') {
      throw new OpError(`discovery: status ${res.statusCode}`);
    }
    return json as Discovery;
  })();
  discoveries.set(url, { at: Date.now(), doc });
  doc.catch(() => {
    if (discoveries.get(url)?.doc === doc) discoveries.delete(url);
  });
  return doc;
}

const jwksSets = new Map<string, JWTVerifyGetKey>();

/** The JWKS of `uri` (refetched after `maxAgeMs`, or when a token names an unknown kid, at most every 30 s). */
export function jwksFor(uri: string, opts: HttpOpts, maxAgeMs: number): JWTVerifyGetKey {
  const key = `${uri} ${maxAgeMs} ${opts.timeoutMs} ${opts.verify}`;
  let set = jwksSets.get(key);
  if (set === undefined) {
    const dispatcher = agent(opts);
    set = createRemoteJWKSet(new URL(uri), {
      timeoutDuration: opts.timeoutMs,
      cacheMaxAge: maxAgeMs,
      [customFetch]: (input, init) => undiciFetch(input, { ...(init as object), dispatcher }) as unknown as Promise<Response>,
    });
    jwksSets.set(key, set);
  }
  return set;
}

const EC_CURVES: Readonly<Record<string, string>> = { ES256: 'prime256v1', ES512: 'secp521r1' };

/**
 * The assertion settings of a JWT client authentication `method` from the route conf, or why they cannot
 * work. private_key_jwt signs with client_rsa_private_key (RS256 unless client_jwt_assertion_alg says
 * otherwise, RS* needing an RSA key and ES* an EC key on the matching curve); client_secret_jwt signs with
 * client_secret (HS256 unless an HS* alg is set). Other methods need none (undefined).
 */
export function assertionConf(method: string, conf: Readonly<Record<string, unknown>>): AssertionConf | string | undefined {
  if (method !== 'private_key_jwt' && method !== 'client_secret_jwt') return undefined;
  const configured = typeof conf.client_jwt_assertion_alg === 'string' ? conf.client_jwt_assertion_alg : undefined;
  const base = {
    kid: typeof conf.client_rsa_private_key_id === 'string' ? conf.client_rsa_private_key_id : undefined,
    expiresIn: typeof conf.client_jwt_assertion_expires_in === 'number' ? conf.client_jwt_assertion_expires_in : 60,
    audience: typeof conf.client_jwt_assertion_audience === 'string' ? conf.client_jwt_assertion_audience : undefined,
  };
  if (method === 'client_secret_jwt') {
    if (typeof conf.client_secret !== 'string') return 'property "client_secret" is required for client_secret_jwt';
    const alg = configured ?? 'HS256';
    if (!alg.startsWith('HS')) return `client_jwt_assertion_alg "${alg}" cannot sign with client_secret (client_secret_jwt needs HS256 or HS512)`;
    return { ...base, alg, key: createSecretKey(Buffer.from(conf.client_secret)) };
  }
  if (typeof conf.client_rsa_private_key !== 'string') return 'property "client_rsa_private_key" is required for private_key_jwt';
  let key: KeyObject;
  try {
    key = createPrivateKey(conf.client_rsa_private_key);
  } catch {
    return 'property "client_rsa_private_key" is not a valid private key';
  }
  const alg = configured ?? 'RS256';
  const fits = alg.startsWith('RS')
    ? key.asymmetricKeyType === 'rsa'
    : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === EC_CURVES[alg];
  if (!fits) return `client_jwt_assertion_alg "${alg}" does not match the ${key.asymmetricKeyType ?? 'given'} key of "client_rsa_private_key"`;
  return { ...base, alg, key };
}

/** A signed, single-use client assertion for one call to `endpoint` (iss = sub = client_id, fresh jti). */
function clientAssertion(client: ClientAuth, endpoint: string): Promise<string> {
  const a = client.assertion;
  if (a === undefined) throw new OpError(`${client.method} needs a signing key`);
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: a.alg, typ: 'JWT', ...(a.kid !== undefined ? { kid: a.kid } : {}) })
    .setIssuer(client.clientId)
    .setSubject(client.clientId)
    .setAudience(a.audience ?? endpoint)
    .setJti(randomBytes(16).toString('hex'))
    .setIssuedAt(now)
    .setExpirationTime(now + a.expiresIn)
    .sign(a.key);
}

/** The form and headers of a POST authenticated as the client (token_endpoint_auth_method and the like). */
async function clientRequest(url: string, form: Record<string, string>, client: ClientAuth, extraHeaders: Record<string, string>): Promise<{ headers: Record<string, string>; body: string }> {
  const body = new URLSearchParams(form);
  const headers: Record<string, string> = {
    ...extraHeaders,
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  if (client.method === 'client_secret_post') {
    body.set('client_id', client.clientId);
    if (client.clientSecret !== undefined) body.set('client_secret', client.clientSecret);
  } else if (client.method === 'private_key_jwt' || client.method === 'client_secret_jwt') {
    body.set('client_id', client.clientId);
    body.set('client_assertion_type', 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer');
    body.set('client_assertion', await clientAssertion(client, url));
  } else if (client.clientSecret !== undefined) {
    // RFC 6749 2.3.1: both parts form-urlencoded before base64.
    const id = encodeURIComponent(client.clientId);
    const secret = encodeURIComponent(client.clientSecret);
    headers.authorization = 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64');
  } else {
    body.set('client_id', client.clientId);
  }
  return { headers, body: body.toString() };
}

/** POSTs an urlencoded form with the client's authentication; returns status and parsed JSON. */
export async function postForm(
  url: string,
  form: Record<string, string>,
  client: ClientAuth,
  opts: HttpOpts,
  extraHeaders: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await call(url, { method: 'POST', ...(await clientRequest(url, form, client, extraHeaders)) }, opts);
  const json = await readJson(res, new URL(url).pathname);
  return { status: res.statusCode, json: json !== null && typeof json === 'object' ? (json as Record<string, unknown>) : {} };
}

/** POSTs a form whose answer has no body to read (token revocation); returns the status. */
export async function postFormStatus(url: string, form: Record<string, string>, client: ClientAuth, opts: HttpOpts): Promise<number> {
  const res = await call(url, { method: 'POST', ...(await clientRequest(url, form, client, {})) }, opts);
  await res.body.dump({ limit: MAX_BODY });
  return res.statusCode;
}

/** GET with a bearer token (userinfo). */
export async function getWithToken(url: string, token: string, opts: HttpOpts): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await call(url, { method: 'GET', headers: { authorization: `Bearer ${token}`, accept: 'application/json' } }, opts);
  const json = await readJson(res, 'userinfo');
  return { status: res.statusCode, json: json !== null && typeof json === 'object' ? (json as Record<string, unknown>) : {} };
}
