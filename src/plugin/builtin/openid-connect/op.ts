// Talking to the OpenID Provider: discovery document (cached per URL, shared across snapshots, failures not
// cached), JWKS (jose createRemoteJWKSet, cached per jwks_uri), and form/JSON calls to the token,
// introspection and userinfo endpoints. All HTTP goes through undici with the plugin's `timeout` on connect,
// response head and body; `ssl_verify: false` uses an agent that accepts any certificate.
import { createRemoteJWKSet, customFetch, type JWTVerifyGetKey } from 'jose';
import { Agent, fetch as undiciFetch, request, type Dispatcher } from 'undici';

export interface Discovery {
  readonly issuer?: string;
  readonly authorization_endpoint?: string;
  readonly token_endpoint?: string;
  readonly userinfo_endpoint?: string;
  readonly jwks_uri?: string;
  readonly introspection_endpoint?: string;
  readonly end_session_endpoint?: string;
}

export interface HttpOpts {
  readonly timeoutMs: number;
  readonly verify: boolean;
}

export interface ClientAuth {
  readonly clientId: string;
  readonly clientSecret: string | undefined;
  readonly method: string;
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

/** POSTs an urlencoded form with the client's authentication; returns status and parsed JSON. */
export async function postForm(
  url: string,
  form: Record<string, string>,
  client: ClientAuth,
  opts: HttpOpts,
  extraHeaders: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const body = new URLSearchParams(form);
  const headers: Record<string, string> = {
    ...extraHeaders,
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  if (client.method === 'client_secret_post') {
    body.set('client_id', client.clientId);
    if (client.clientSecret !== undefined) body.set('client_secret', client.clientSecret);
  } else if (client.clientSecret !== undefined) {
    // RFC 6749 2.3.1: both parts form-urlencoded before base64.
    const id = encodeURIComponent(client.clientId);
    const secret = encodeURIComponent(client.clientSecret);
    headers.authorization = 'Basic ' + Buffer.from(`${id}:${secret}`).toString('base64');
  } else {
    body.set('client_id', client.clientId);
  }
  const res = await call(url, { method: 'POST', headers, body: body.toString() }, opts);
  const json = await readJson(res, new URL(url).pathname);
  return { status: res.statusCode, json: json !== null && typeof json === 'object' ? (json as Record<string, unknown>) : {} };
}

/** GET with a bearer token (userinfo). */
export async function getWithToken(url: string, token: string, opts: HttpOpts): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await call(url, { method: 'GET', headers: { authorization: `Bearer ${token}`, accept: 'application/json' } }, opts);
  const json = await readJson(res, 'userinfo');
  return { status: res.statusCode, json: json !== null && typeof json === 'object' ? (json as Record<string, unknown>) : {} };
}
