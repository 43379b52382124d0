// The Admin API v3 listener (APISIX admin/init.lua compatible): access control, body limits, CORS, common
// headers and dispatch to resource kinds, /plugins and /schema. Request bodies are never logged.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { APISIX_COMPAT_VERSION } from '../apisix-compat.ts';
import type { Json } from '../config/resources.ts';
import { parseJsonSafe } from '../config/safe-json.ts';
import type { ConfigStore } from '../config/store.ts';
import type { Logger } from '../observability/logger.ts';
import { AdminAuth, buildAllowList, isAllowed, type AdminKey } from './auth.ts';
import { errorReply, NOT_FOUND, type Reply } from './envelope.ts';
import type { AdminContext, AdminPlugins, Method } from './kind.ts';
import { KIND_SPECS, specOf } from './kinds.ts';
import { handleConfigs } from './configs.ts';
import { handlePlugins } from './plugins-endpoints.ts';
import { handleResource } from './resources.ts';
import { handleSchema } from './schema-endpoints.ts';
import { createUiHandler } from './ui/serve.ts';
import type { UiSources } from './ui/live.ts';

export const ADMIN_PREFIX = '/apisix/admin';
/** APISIX's MAX_REQ_BODY: 1.5 MiB. Larger bodies get APISIX's 400 (core.request.get_body). */
export const MAX_BODY_BYTES = 1.5 * 1024 * 1024;
const ECHO_LIMIT = 512;
const METHODS: ReadonlySet<string> = new Set(['GET', 'PUT', 'POST', 'PATCH', 'DELETE']);

export interface AdminServerConf {
  readonly admin_key: readonly AdminKey[];
  readonly admin_key_required: boolean;
  readonly allow_admin: readonly string[];
  readonly enable_admin_cors: boolean;
  /** The embedded dashboard at /ui/ (APISIX 3.13+; default true). */
  readonly enable_admin_ui?: boolean;
  readonly admin_listen: { readonly ip: string; readonly port: number };
}

export interface AdminServerOptions {
  readonly store: ConfigStore;
  readonly plugins: AdminPlugins;
  readonly conf: AdminServerConf;
  readonly streamEnabled: boolean;
  readonly onPluginsReload: () => Promise<void>;
  readonly logger: Logger;
  readonly version: string;
  /** Live-view sources of the dashboard (Control API, metrics, local config); each optional. */
  readonly ui?: UiSources;
}

export interface AdminServer {
  listen(): Promise<{ port: number }>;
  close(): Promise<void>;
  address(): { port: number };
}

type Body = { ok: true; text: string } | { ok: false; reply: Reply };

/**
 * After a streamed (chunked) body is found too large, the rest is still read and discarded (bounded by LINGER_*) before the 400 is
 * sent: closing a socket with unread data makes the kernel send a reset, and the client then loses the answer
 * (nginx's lingering close does the same).
 */
const LINGER_BYTES = 64 * 1024 * 1024;
const LINGER_MS = 5_000;

function readBody(req: IncomingMessage): Promise<Body> {
  // A declared oversize length is answered at once (curl asks with Expect: 100-continue first, see checkContinue).
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return Promise.resolve({ ok: false, reply: tooLarge(declared) });
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    let tooBig = false;
    let linger: NodeJS.Timeout | null = null;
    const finish = (b: Body) => {
      if (done) return;
      done = true;
      if (linger !== null) clearTimeout(linger);
      req.off('data', onData);
      resolve(b);
    };
    const startLinger = () => {
      chunks.length = 0;
      linger = setTimeout(() => finish({ ok: false, reply: tooLarge(size) }), LINGER_MS);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (tooBig) {
        if (size > LINGER_BYTES) finish({ ok: false, reply: tooLarge(size) });
        return;
      }
      if (size > MAX_BODY_BYTES) {
        tooBig = true;
        startLinger();
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => finish(tooBig ? { ok: false, reply: tooLarge(size) } : { ok: true, text: Buffer.concat(chunks).toString('utf8') }));
    req.once('error', (err) => finish({ ok: false, reply: errorReply(400, `invalid request body: ${err.message}`) }));
    req.once('close', () => finish({ ok: false, reply: errorReply(400, 'invalid request body: connection closed') }));
  });
}

/** APISIX's text and status (admin/init.lua: 400 with core.request.get_body's error). */
function tooLarge(size: number): Reply {
  return errorReply(400, `invalid request body: request size ${size} is greater than the maximum size ${MAX_BODY_BYTES} allowed`);
}

function parseBody(text: string): { ok: true; body: Json | undefined } | { ok: false; reply: Reply } {
  if (text.trim() === '') return { ok: true, body: undefined };
  const parsed = parseJsonSafe(text);
  if (parsed.ok) return { ok: true, body: parsed.value as Json };
  const echo = text.length > ECHO_LIMIT ? `${text.slice(0, ECHO_LIMIT)}...` : text;
  return { ok: false, reply: { status: 400, body: { error_msg: `invalid request body: ${parsed.error}`, req_body: echo } } };
}

function parseTtl(query: URLSearchParams): { ok: true; ttl: number | undefined } | { ok: false; reply: Reply } {
  const raw = query.get('ttl');
  if (raw === null) return { ok: true, ttl: undefined };
  const ttl = raw.trim() === '' ? NaN : Number(raw);
  if (!Number.isFinite(ttl)) return { ok: false, reply: errorReply(400, 'invalid argument ttl: should be a number') };
  if (ttl <= 0) return { ok: false, reply: errorReply(400, 'invalid argument ttl: should be greater than 0') };
  return { ok: true, ttl };
}

function tooBigReply(r: Reply): boolean {
  const b = r.body as { error_msg?: unknown } | undefined;
  return typeof b?.error_msg === 'string' && b.error_msg.startsWith('invalid request body: request size ');
}

export function createAdminServer(opts: AdminServerOptions): AdminServer {
  const { conf, logger } = opts;
  const allow = buildAllowList(conf.allow_admin);
  const auth = new AdminAuth(conf.admin_key, conf.admin_key_required);
  if (!auth.enabled) logger.warn('admin API key check is disabled');
  const ctx: AdminContext = { store: opts.store, plugins: opts.plugins, streamEnabled: opts.streamEnabled, logger };
  const credentials = specOf('credentials');
  const serverHeader = `APISIX/${APISIX_COMPAT_VERSION}`;
  const ui = conf.enable_admin_ui === false ? null : createUiHandler({ auth, store: opts.store, sources: opts.ui ?? {}, logger });

  function send(req: IncomingMessage, res: ServerResponse, r: Reply, path: string): void {
    const payload =
      r.body === undefined ? '' : r.raw && typeof r.body === 'string' ? r.body : JSON.stringify(r.body);
    res.statusCode = r.status;
    if (r.headers) for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
    res.setHeader('Content-Length', Buffer.byteLength(payload));
    res.end(req.method === 'HEAD' ? undefined : payload);
    logger.info({ method: req.method, path, status: r.status }, 'admin request');
  }

  async function route(
    req: IncomingMessage,
    method: string,
    segs: readonly string[],
    query: URLSearchParams,
  ): Promise<Reply> {
    const read = await readBody(req);
    if (!read.ok) return read.reply;
    if (segs[0] === 'configs') {
      const digest = req.headers['x-digest'];
      return await handleConfigs(ctx, {
        method,
        segs,
        text: read.text,
        contentType: String(req.headers['content-type'] ?? 'application/json'),
        accept: String(req.headers.accept ?? 'application/json'),
        digest: Array.isArray(digest) ? digest[0] : digest,
      });
    }
    const parsed = parseBody(read.text);
    if (!parsed.ok) return parsed.reply;
    const ttl = parseTtl(query);
    if (!ttl.ok) return ttl.reply;
    const body = parsed.body;
    const res = segs[0];
    if (res === undefined) return NOT_FOUND;
    if (res === 'plugins') return await handlePlugins(ctx, opts.onPluginsReload, method, segs.slice(1), query);
    if (res === 'schema') return handleSchema(ctx, method, segs.slice(1), query, body);
    const isCredential = res === 'consumers' && segs[2] === 'credentials';
    const spec = isCredential ? credentials : KIND_SPECS.get(res);
    if (!spec) return errorReply(404, `Unsupported resource type: ${res}`);
    if (!METHODS.has(method)) return NOT_FOUND;
    return await handleResource(ctx, spec, { method: method as Method, segs: segs.slice(1), query, body, ttl: ttl.ttl });
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('Content-Type', 'application/json');
    res.setHeader('Server', serverHeader);
    res.setHeader('X-Switchyard-Version', opts.version);
    res.setHeader('X-API-VERSION', 'v3');
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const path = url.pathname;
    if (!isAllowed(allow, req.socket.remoteAddress)) {
      res.setHeader('Connection', 'close');
      send(req, res, errorReply(403, 'access denied'), path);
      return;
    }
    if (conf.enable_admin_cors) {
      res.setHeader('Access-Control-Allow-Origin', '*');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Access-Control-Expose-Headers', '*');
      res.setHeader('Access-Control-Max-Age', '3600');
    }
    if (ui?.owns(path)) return ui.handle(req, res, url);
    if (path !== ADMIN_PREFIX && !path.startsWith(`${ADMIN_PREFIX}/`)) return send(req, res, NOT_FOUND, path);
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS' && conf.enable_admin_cors) {
      res.setHeader('Access-Control-Allow-Methods', 'GET,POST,PUT,DELETE,PATCH,HEAD,OPTIONS');
      const wanted = req.headers['access-control-request-headers'];
      res.setHeader('Access-Control-Allow-Headers', wanted ? String(wanted) : 'Content-Type,X-API-KEY');
      return send(req, res, { status: 200 }, path);
    }
    const segs = path.slice(ADMIN_PREFIX.length).split('/').filter((s) => s !== '');
    if (method === 'HEAD' && segs.length === 0) return send(req, res, { status: 200 }, path);
    const verdict = auth.check(req, url.searchParams);
    if (!verdict.ok) {
      logger.warn({ method, path, reason: verdict.description }, 'admin token check failed');
      return send(req, res, { status: 401, body: { error_msg: 'failed to check token', description: verdict.description } }, path);
    }
    let reply: Reply;
    try {
      reply = await route(req, method, segs, url.searchParams);
    } catch (err) {
      logger.error({ method, path, err: (err as Error).message }, 'admin request failed');
      reply = errorReply(500, 'internal error');
    }
    if (reply.status === 400 && tooBigReply(reply)) res.setHeader('Connection', 'close');
    send(req, res, reply, path);
  }

  const server = http.createServer(
    {
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      connectionsCheckingInterval: 1_000,
      maxHeaderSize: 16 * 1024,
    },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        logger.error({ err: (err as Error).message }, 'admin handler crashed');
        if (!res.headersSent) res.statusCode = 500;
        res.end();
      });
    },
  );
  server.keepAliveTimeout = 5_000;
  // A client announcing an oversized body with `Expect: 100-continue` (curl does above 1 MiB) gets the 400
  // before it sends the body.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) {
      res.setHeader('Content-Type', 'application/json');
      res.setHeader('Server', serverHeader);
      res.setHeader('Connection', 'close');
      send(req, res, tooLarge(Number(req.headers['content-length'])), new URL(req.url ?? '/', 'http://admin.invalid').pathname);
      return;
    }
    res.writeContinue();
    server.emit('request', req, res);
  });

  return {
    listen: () =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(conf.admin_listen.port, conf.admin_listen.ip, () => {
          server.off('error', reject);
          const port = (server.address() as { port: number }).port;
          logger.info({ ip: conf.admin_listen.ip, port }, 'admin API listening');
          resolve({ port });
        });
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
    address: () => {
      const a = server.address();
      return { port: typeof a === 'object' && a ? a.port : 0 };
    },
  };
}
