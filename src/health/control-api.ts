// Control API (APISIX `apisix.control`, default 127.0.0.1:9090): a loopback HTTP server for internal state.
// Health endpoints: GET /v1/healthcheck (every checker) and GET /v1/healthcheck/<kind>/<id> (kind: upstreams,
// routes, services, stream_routes) in APISIX 3.x's shape {name, type, nodes[{ip, port, hostname, status,
// counter{success, http_failure, tcp_failure, timeout_failure}}]}, or as an HTML table with `?format=html` or
// an Accept header naming text/html (APISIX renders HTML for browsers). The other /v1 endpoints live in
// control-v1.ts. Methods: GET/HEAD on route() prefixes; PUT only on the exact paths registered with put()
// (APISIX's PUT /v1/plugins/reload), whose bodies are read and discarded up to MAX_BODY bytes; anything else
// answers 405.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../observability/logger.ts';
import type { CheckerReport, HealthManager } from './manager.ts';

export interface ControlReply {
  readonly status: number;
  /** A string is sent as is (text/plain unless `contentType`); anything else as JSON. */
  readonly body: unknown;
  readonly contentType?: string;
}

export interface ControlRequest {
  readonly query: URLSearchParams;
  readonly headers: http.IncomingHttpHeaders;
}

/** `rest` is the path after the registered prefix ('' for the prefix itself). */
export type ControlHandler = (rest: string, req: ControlRequest) => ControlReply;

/** APISIX's PUT endpoints take no body; this bounds what a client can make the server read. */
const MAX_BODY = 64 * 1024;

const KINDS = new Set(['upstreams', 'routes', 'services', 'stream_routes']);

export function notFound(message = 'not found'): ControlReply {
  return { status: 404, body: { error_msg: message } };
}

/** APISIX encodes an empty node list as `{}` (an empty Lua table). */
function shape(r: CheckerReport): unknown {
  return { name: r.name, type: r.type, nodes: r.nodes.length === 0 ? {} : r.nodes };
}

export class ControlServer {
  private readonly server: http.Server;
  private readonly host: string;
  private readonly port: number;
  private readonly logger: Logger;
  private readonly routes: [prefix: string, handler: ControlHandler][] = [];
  private readonly puts = new Map<string, ControlHandler>();

  constructor(host: string, port: number, logger: Logger) {
    this.host = host;
    this.port = port;
    this.logger = logger;
    this.server = http.createServer((req, res) => this.serve(req, res));
    this.server.requestTimeout = 10_000;
    this.server.headersTimeout = 10_000;
    this.server.keepAliveTimeout = 5_000;
  }

  /** Serves GET/HEAD `prefix` and everything below it. */
  route(prefix: string, handler: ControlHandler): void {
    this.routes.push([prefix, handler]);
    this.routes.sort((a, b) => b[0].length - a[0].length);
  }

  /** Serves PUT on exactly `path`. */
  put(path: string, handler: ControlHandler): void {
    this.puts.set(path, handler);
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.port, this.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private serve(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const creq: ControlRequest = { query: new URLSearchParams(q < 0 ? '' : url.slice(q + 1)), headers: req.headers };
    const method = req.method ?? 'GET';
    if (method === 'PUT') {
      const handler = this.puts.get(path);
      if (handler === undefined) return this.send(req, res, this.methodNotAllowed());
      return this.readThen(req, res, () => this.run(req, res, handler, '', creq, path));
    }
    if (method !== 'GET' && method !== 'HEAD') return this.send(req, res, this.methodNotAllowed());
    for (const [prefix, handler] of this.routes) {
      if (path !== prefix && !path.startsWith(prefix + '/')) continue;
      return this.run(req, res, handler, path.slice(prefix.length), creq, path);
    }
    this.send(req, res, this.puts.has(path) ? this.methodNotAllowed() : notFound());
  }

  private methodNotAllowed(): ControlReply {
    return { status: 405, body: { error_msg: 'method not allowed' } };
  }

  private run(req: http.IncomingMessage, res: http.ServerResponse, handler: ControlHandler, rest: string, creq: ControlRequest, path: string): void {
    let out: ControlReply;
    try {
      out = handler(rest, creq);
    } catch (err) {
      this.logger.error({ err, path }, 'control API handler failed');
      out = { status: 500, body: { error_msg: 'internal error' } };
    }
    this.send(req, res, out);
  }

  /** Reads and discards the request body (at most MAX_BODY bytes, else 413), then runs `next`. */
  private readThen(req: http.IncomingMessage, res: http.ServerResponse, next: () => void): void {
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY || over) return;
      over = true;
      res.setHeader('connection', 'close');
      this.send(req, res, { status: 413, body: { error_msg: `request body larger than ${MAX_BODY} bytes` } });
      req.destroy();
    });
    req.on('end', () => {
      if (!over) next();
    });
    req.on('error', () => undefined);
  }

  private send(req: http.IncomingMessage, res: http.ServerResponse, out: ControlReply): void {
    if (res.headersSent) return;
    const text = typeof out.body === 'string';
    const body = text ? (out.body as string) : JSON.stringify(out.body);
    const type = out.contentType ?? (text ? 'text/plain' : 'application/json');
    res.writeHead(out.status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}

/** APISIX answers HTML when the Accept header names text/html; `?format=html` asks for it explicitly. */
function wantsHtml(req: ControlRequest): boolean {
  const format = req.query.get('format');
  if (format !== null) return format === 'html';
  const accept = req.headers.accept;
  return typeof accept === 'string' && accept.includes('text/html');
}

const HTML_ESCAPES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
}

/** The table APISIX's control/v1.lua renders: one row per node, unhealthy rows in red; every cell escaped. */
export function healthHtml(reports: readonly CheckerReport[]): string {
  const rows: string[] = [];
  let i = 0;
  for (const r of reports) {
    for (const n of r.nodes) {
      i++;
      const ok = n.status === 'healthy' || n.status === 'mostly_healthy';
      const cells = [String(i), r.name, r.type, `${n.ip}:${n.port}`, n.status, n.counter.success, n.counter.tcp_failure, n.counter.http_failure, n.counter.timeout_failure];
      rows.push(`  <tr${ok ? '' : ' bgcolor="#FF0000"'}>\n${cells.map((c) => `    <td>${escapeHtml(String(c))}</td>\n`).join('')}  </tr>\n`);
    }
  }
  return (
    '<!DOCTYPE html>\n<html xmlns="http://www.w3.org/1999/xhtml">\n<head>\n  <meta charset="utf-8">\n' +
    '  <title>APISIX upstream check status</title>\n</head>\n<body>\n<h1>APISIX upstream check status</h1>\n' +
    '<table style="background-color:white" cellspacing="0" cellpadding="3" border="1">\n' +
    '  <tr bgcolor="#C0C0C0">\n    <th>Index</th>\n    <th>Upstream</th>\n    <th>Check type</th>\n    <th>Host</th>\n' +
    '    <th>Status</th>\n    <th>Success counts</th>\n    <th>TCP Failures</th>\n    <th>HTTP Failures</th>\n' +
    '    <th>TIMEOUT Failures</th>\n  </tr>\n' +
    rows.join('') +
    '</table>\n</body>\n</html>\n'
  );
}

/**
 * Registers the health endpoints on `server`. With workers, the manager is the primary's: its checkers probe
 * for every worker and the workers forward their passive outcomes to it (src/health/ipc.ts), so its counters
 * are the whole gateway's.
 */
export function addHealthRoutes(server: ControlServer, manager: HealthManager): void {
  server.route('/v1/healthcheck', (rest, req) => {
    let reports: CheckerReport[];
    let single = false;
    if (rest === '' || rest === '/') reports = manager.list();
    else {
      const m = /^\/([a-z_]+)\/([^/]+)$/.exec(rest);
      if (!m || !KINDS.has(m[1]!)) return notFound();
      const key = `${m[1]}/${decodeURIComponent(m[2]!)}`;
      const r = manager.get(key);
      if (r === undefined) return notFound(`no checker for ${key}`);
      reports = [r];
      single = true;
    }
    if (wantsHtml(req)) return { status: 200, body: healthHtml(reports), contentType: 'text/html; charset=utf-8' };
    return { status: 200, body: single ? shape(reports[0]!) : reports.map(shape) };
  });
}
