// The embedded dashboard on the Admin listener (APISIX 3.13+ `deployment.admin.enable_admin_ui`): `/ui` answers
// 301 to `/ui/` (a relative Location, like APISIX's `absolute_redirect off`), `/ui/<file>` serves the built
// assets, any other `/ui/...` path is the single-page fallback (index.html). The assets are built from
// src/admin/ui/web into build/ui by scripts/build-ui.mjs (npm install and npm start run it) and read once at
// startup. Helper endpoints the Admin API has no equivalent for live under `/ui/api/` and require the admin key
// like the Admin API (GET only, so the viewer role may read them).
// The key is never embedded in a page: the browser keeps it in sessionStorage and sends it as X-API-KEY.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { ConfigStore } from '../../config/store.ts';
import type { Logger } from '../../observability/logger.ts';
import type { AdminAuth } from '../auth.ts';
import { sslSummaries } from './certs.ts';
import { fetchControlHealth, fetchMetricsText, redactedConfig, type UiSources } from './live.ts';

export const UI_PREFIX = '/ui';
const BUILD_DIR = path.join(import.meta.dirname, '../../../build/ui');
const SOURCE_DIR = path.join(import.meta.dirname, 'web');
/** esbuild's `[name]-[hash]` output names: their content never changes, so browsers may keep them. */
const HASHED = /-[A-Z0-9]{8}\.(?:js|css)$/;
const NOT_BUILT = 'the dashboard is not built: run `npm run build:ui` (npm install and npm start build it)';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/**
 * `default-src 'self'` is the policy the dashboard is written for: no inline script or style, no remote
 * origin, no framing (clickjacking of an admin UI).
 */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'Content-Security-Policy': "default-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
};

interface Asset {
  readonly type: string;
  readonly body: Buffer;
  readonly cache: string;
}

/** Every file of the build, keyed by its URL path below /ui/ (read once: config time); empty when not built. */
function loadAssets(dir: string): Map<string, Asset> {
  const out = new Map<string, Asset>();
  if (!existsSync(dir)) return out;
  const walk = (d: string, prefix: string): void => {
    for (const name of readdirSync(d)) {
      const full = path.join(d, name);
      if (statSync(full).isDirectory()) walk(full, `${prefix}${name}/`);
      else {
        const type = TYPES[path.extname(name)];
        const cache = HASHED.test(name) ? 'public, max-age=31536000, immutable' : 'no-cache';
        if (type !== undefined) out.set(`${prefix}${name}`, { type, body: readFileSync(full), cache });
      }
    }
  };
  walk(dir, '');
  return out;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

export interface UiHandlerOptions {
  readonly auth: AdminAuth;
  readonly store: ConfigStore;
  readonly sources: UiSources;
  readonly logger: Logger;
  /** The built dashboard (build/ui); tests point it at a directory of their own. */
  readonly assetDir?: string;
}

export interface UiHandler {
  /** True when `pathname` belongs to the dashboard (then handle() answers it). */
  owns(pathname: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void>;
}

function write(req: IncomingMessage, res: ServerResponse, status: number, type: string, body: Buffer | string, extra?: Record<string, string>): void {
  res.statusCode = status;
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
  if (extra) for (const [k, v] of Object.entries(extra)) res.setHeader(k, v);
  res.setHeader('Content-Type', type);
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.end(req.method === 'HEAD' ? undefined : body);
}

function json(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  write(req, res, status, 'application/json', JSON.stringify(body) + '\n', { 'Cache-Control': 'no-store' });
}

export function createUiHandler(opts: UiHandlerOptions): UiHandler {
  const { auth, store, sources, logger, assetDir = BUILD_DIR } = opts;
  const assets = loadAssets(assetDir);
  const index = assets.get('index.html');
  if (index === undefined) logger.error({ dir: assetDir }, NOT_BUILT);
  else if (existsSync(SOURCE_DIR) && newestMtime(SOURCE_DIR) > statSync(path.join(assetDir, 'index.html')).mtimeMs) {
    // A checkout edited after the last build, started without npm start (whose prestart rebuilds).
    logger.warn({ dir: assetDir }, 'the dashboard build is older than its sources: run `npm run build:ui`');
  }

  async function api(req: IncomingMessage, res: ServerResponse, name: string, url: URL): Promise<void> {
    const verdict = auth.check(req, url.searchParams);
    if (!verdict.ok) return json(req, res, 401, { error_msg: 'failed to check token', description: verdict.description });
    try {
      switch (name) {
        case 'ssls':
          return json(req, res, 200, { list: await sslSummaries(store) });
        case 'health': {
          const r = await fetchControlHealth(sources);
          return json(req, res, r.status, r.body);
        }
        case 'metrics': {
          const r = await fetchMetricsText(sources);
          return r.ok
            ? write(req, res, 200, 'text/plain; version=0.0.4; charset=utf-8', r.text, { 'Cache-Control': 'no-store' })
            : json(req, res, 503, { error_msg: r.error });
        }
        case 'config': {
          const conf = redactedConfig(sources);
          return conf === null ? json(req, res, 503, { error_msg: 'the local configuration is not available to the admin server' }) : json(req, res, 200, conf);
        }
        default:
          return json(req, res, 404, { error_msg: 'not found' });
      }
    } catch (err) {
      logger.error({ err, name }, 'admin UI endpoint failed');
      return json(req, res, 500, { error_msg: 'internal error' });
    }
  }

  return {
    owns: (p) => p === UI_PREFIX || p.startsWith(`${UI_PREFIX}/`),
    async handle(req, res, url) {
      const p = url.pathname;
      const method = req.method ?? 'GET';
      if (p === UI_PREFIX) {
        res.statusCode = 301;
        res.setHeader('Location', '/ui/');
        res.setHeader('Content-Length', 0);
        res.end();
        return;
      }
      if (method !== 'GET' && method !== 'HEAD') {
        return json(req, res, 405, { error_msg: 'method not allowed' });
      }
      const rest = p.slice(UI_PREFIX.length + 1);
      if (rest.startsWith('api/')) return api(req, res, rest.slice(4), url);
      if (index === undefined) return json(req, res, 503, { error_msg: NOT_BUILT });
      const asset = rest === '' ? index : assets.get(rest);
      if (asset !== undefined) {
        return write(req, res, 200, asset.type, asset.body, { 'Cache-Control': asset.cache });
      }
      // A missing file with an extension is a 404; anything else is a client-side route (SPA fallback).
      if (path.extname(rest) !== '') return write(req, res, 404, 'text/plain; charset=utf-8', 'not found\n');
      return write(req, res, 200, index.type, index.body, { 'Cache-Control': 'no-cache' });
    },
  };
}
