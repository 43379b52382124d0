// Control API (APISIX `apisix.control`, default 127.0.0.1:9090): a loopback HTTP server for internal state.
// Health endpoints: GET /v1/healthcheck (every checker) and GET /v1/healthcheck/<kind>/<id> (kind: upstreams,
// routes, services, stream_routes) in APISIX 3.x's shape {name, type, nodes[{ip, port, hostname, status,
// counter{success, http_failure, tcp_failure, timeout_failure}}]}. Other modules add GET endpoints with
// route(); the server only answers GET/HEAD and never reads request bodies.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../observability/logger.ts';
import type { CheckerReport, HealthManager } from './manager.ts';

export type ControlHandler = (rest: string) => { status: number; body: unknown };

const KINDS = new Set(['upstreams', 'routes', 'services', 'stream_routes']);

/** APISIX encodes an empty node list as `{}` (an empty Lua table). */
function shape(r: CheckerReport): unknown {
  return { name: r.name, type: r.type, nodes: r.nodes.length === 0 ? {} : r.nodes };
}

export class ControlServer {
  private readonly server: http.Server;
  private readonly host: string;
  private readonly port: number;
  private readonly routes: [prefix: string, handler: ControlHandler][] = [];

  constructor(host: string, port: number, logger: Logger) {
    this.host = host;
    this.port = port;
    this.server = http.createServer((req, res) => this.serve(req, res, logger));
    this.server.requestTimeout = 10_000;
    this.server.headersTimeout = 10_000;
    this.server.keepAliveTimeout = 5_000;
  }

  /** Serves GET `prefix` and everything below it; `rest` is the path after the prefix. */
  route(prefix: string, handler: ControlHandler): void {
    this.routes.push([prefix, handler]);
    this.routes.sort((a, b) => b[0].length - a[0].length);
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

  private serve(req: http.IncomingMessage, res: http.ServerResponse, logger: Logger): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    let out: { status: number; body: unknown } = { status: 404, body: { error_msg: 'not found' } };
    if (req.method !== 'GET' && req.method !== 'HEAD') out = { status: 405, body: { error_msg: 'method not allowed' } };
    else {
      for (const [prefix, handler] of this.routes) {
        if (path !== prefix && !path.startsWith(prefix + '/')) continue;
        try {
          out = handler(path.slice(prefix.length));
        } catch (err) {
          logger.error({ err, path }, 'control API handler failed');
          out = { status: 500, body: { error_msg: 'internal error' } };
        }
        break;
      }
    }
    const body = JSON.stringify(out.body);
    res.writeHead(out.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }
}

/** Registers the health endpoints on `server`. */
export function addHealthRoutes(server: ControlServer, manager: HealthManager): void {
  server.route('/v1/healthcheck', (rest) => {
    if (rest === '' || rest === '/') return { status: 200, body: manager.list().map(shape) };
    const m = /^\/([a-z_]+)\/([^/]+)$/.exec(rest);
    if (!m || !KINDS.has(m[1]!)) return { status: 404, body: { error_msg: 'not found' } };
    const key = `${m[1]}/${decodeURIComponent(m[2]!)}`;
    const r = manager.get(key);
    if (r === undefined) return { status: 404, body: { error_msg: `no checker for ${key}` } };
    return { status: 200, body: shape(r) };
  });
}
