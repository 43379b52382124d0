// The dashboard's server side on the Admin listener: /ui redirect, static assets with CSP, the single-page
// fallback, allow_admin and enable_admin_ui, and the /ui/api endpoints (auth, SSL summaries checked against
// openssl, Control API health and Prometheus text from a running gateway, redacted config).
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminServer, type AdminServer, type AdminServerConf } from '../../src/admin/server.ts';
import { AdminAuth } from '../../src/admin/auth.ts';
import { REDACTED, uiSourcesFor } from '../../src/admin/ui/live.ts';
import { createUiHandler } from '../../src/admin/ui/serve.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { ADMIN_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

const VIEWER_KEY = 'viewer-key-for-ui-tests-0123';
const REPO = path.join(import.meta.dirname, '../..');
const SOURCES = path.join(REPO, 'src/admin/ui/web');
const BUILD = path.join(REPO, 'build/ui');
let g: TestGateway;
let echo: EchoServer;
let withSources: AdminServer;
let base: string;
let tmp: { dir: string; cleanup: () => Promise<void> };

async function adminOn(conf: Partial<AdminServerConf>, sources = true): Promise<AdminServer> {
  const s = createAdminServer({
    store: g.gw.store!,
    plugins: g.gw.plugins,
    conf: {
      admin_key: [
        { name: 'admin', key: ADMIN_KEY, role: 'admin' },
        { name: 'viewer', key: VIEWER_KEY, role: 'viewer' },
      ],
      admin_key_required: true,
      allow_admin: ['127.0.0.0/8'],
      enable_admin_cors: true,
      admin_listen: { ip: '127.0.0.1', port: 0 },
      ...conf,
    },
    streamEnabled: false,
    onPluginsReload: async () => {},
    logger: silentLogger,
    version: 'test',
    ui: sources ? uiSourcesFor(g.config, () => g.gw.controlPort()) : undefined,
  });
  await s.listen();
  return s;
}

beforeAll(async () => {
  // The dashboard as the sources stand (what npm start's prestart does).
  execFileSync(process.execPath, [path.join(REPO, 'scripts/build-ui.mjs'), '--if-stale'], { stdio: 'inherit' });
  tmp = await tempDir('swy-ui-');
  echo = await startEcho('ui');
  const control = await freePort();
  g = await startTestGateway({ config: { apisix: { enable_control: true, control: { ip: '127.0.0.1', port: control } } } });
  withSources = await adminOn({});
  base = `http://127.0.0.1:${withSources.address().port}`;
});

afterAll(async () => {
  await withSources?.close();
  await g?.close();
  await echo?.close();
  await tmp?.cleanup();
});

describe('static dashboard', () => {
  it('redirects /ui to /ui/ with a relative Location (APISIX absolute_redirect off)', async () => {
    const r = await fetch(`${g.adminUrl.replace('/apisix/admin', '')}/ui`, { redirect: 'manual' });
    expect(r.status).toBe(301);
    expect(r.headers.get('location')).toBe('/ui/');
  });

  it('serves index.html, JS and CSS with the CSP header, and the SPA fallback', async () => {
    const root = g.adminUrl.replace('/apisix/admin', '');
    const index = await fetch(`${root}/ui/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toMatch(/^text\/html/);
    expect(index.headers.get('content-security-policy')).toMatch(/^default-src 'self'/);
    expect(index.headers.get('x-content-type-options')).toBe('nosniff');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    const html = await index.text();
    expect(html).not.toContain(ADMIN_KEY);
    expect((await fetch(`${root}/ui/index.html`)).status).toBe(200);
    // The page names the built, content-hashed bundle, which is cached as immutable.
    const script = /<script type="module" src="\/ui\/(app-[A-Z0-9]{8}\.js)"><\/script>/.exec(html)?.[1];
    const style = /<link rel="stylesheet" href="\/ui\/(style-[A-Z0-9]{8}\.css)">/.exec(html)?.[1];
    expect(script, html).toBeDefined();
    expect(style, html).toBeDefined();
    const js = await fetch(`${root}/ui/${script}`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(js.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await js.text()).toBe(readFileSync(path.join(BUILD, script!), 'utf8'));
    expect((await fetch(`${root}/ui/${style}`)).headers.get('content-type')).toMatch(/^text\/css/);
    expect((await fetch(`${root}/ui/favicon.svg`)).headers.get('content-type')).toBe('image/svg+xml');
    const spa = await fetch(`${root}/ui/not_exist`);
    expect(spa.status).toBe(200);
    expect(await spa.text()).toBe(html);
    expect((await fetch(`${root}/ui/js/nope.js`)).status).toBe(404);
    expect((await fetch(`${root}/ui/`, { method: 'POST' })).status).toBe(405);
  });

  it('keeps allow_admin in front of the dashboard (403) and is off with enable_admin_ui: false', async () => {
    const denied = await adminOn({ allow_admin: ['10.9.9.9/32'] });
    const off = await adminOn({ enable_admin_ui: false });
    try {
      expect((await fetch(`http://127.0.0.1:${denied.address().port}/ui/`)).status).toBe(403);
      expect((await fetch(`http://127.0.0.1:${off.address().port}/ui/`)).status).toBe(404);
      expect((await fetch(`http://127.0.0.1:${off.address().port}/ui`, { redirect: 'manual' })).status).toBe(404);
    } finally {
      await denied.close();
      await off.close();
    }
  });

  it('ships no inline script or style and never writes markup from strings', () => {
    for (const dir of [SOURCES, BUILD]) {
      const html = readFileSync(path.join(dir, 'index.html'), 'utf8');
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
      expect(html).not.toMatch(/\sstyle=|\son[a-z]+=/);
    }
    const sources = readdirSync(SOURCES).filter((f) => f.endsWith('.js'));
    expect(sources).toContain('main.js');
    for (const f of sources) {
      const js = readFileSync(path.join(SOURCES, f), 'utf8');
      expect(js, f).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|dangerouslySetInnerHTML|document\.write|\beval\(|new Function/);
    }
  });

  it('answers 503 with the reason while the dashboard is not built, and keeps /ui/api working', async () => {
    // An empty directory stands for a checkout whose build never ran (the shared build/ui stays in place).
    const ui = createUiHandler({
      auth: new AdminAuth([{ name: 'admin', key: ADMIN_KEY, role: 'admin' }], true),
      store: g.gw.store!,
      sources: uiSourcesFor(g.config, () => g.gw.controlPort()),
      logger: silentLogger,
      assetDir: tmp.dir,
    });
    const server = createServer((req, res) => void ui.handle(req, res, new URL(req.url ?? '/', 'http://x')));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      for (const p of ['/ui/', '/ui/index.html', '/ui/routes']) {
        const r = await fetch(`${base}${p}`);
        expect(r.status, p).toBe(503);
        expect(((await r.json()) as { error_msg: string }).error_msg).toMatch(/^the dashboard is not built: run `npm run build:ui`/);
      }
      expect((await fetch(`${base}/ui/api/config`, { headers: { 'X-API-KEY': ADMIN_KEY } })).status).toBe(200);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('/ui/api', () => {
  const get = (p: string, key: string | null = ADMIN_KEY) =>
    fetch(`${base}/ui/api/${p}`, { headers: key === null ? {} : { 'X-API-KEY': key } });

  it('requires the admin key (viewer may read)', async () => {
    expect((await get('config', null)).status).toBe(401);
    expect(((await (await get('config', 'wrong')).json()) as { description: string }).description).toBe('wrong apikey');
    expect((await get('config', VIEWER_KEY)).status).toBe(200);
    expect((await get('nope')).status).toBe(404);
  });

  it('answers the effective local config with secrets redacted', async () => {
    const conf = (await (await get('config')).json()) as any;
    expect(conf.deployment.admin.admin_key[0]).toEqual({ name: 'admin', key: REDACTED, role: 'admin' });
    expect(conf.deployment.admin.enable_admin_ui).toBe(true);
    expect(conf.apisix.node_listen[0].port).toBe(g.port);
    expect(JSON.stringify(conf)).not.toContain(ADMIN_KEY);
  });

  it('summarizes SSL certificates like openssl reads them', async () => {
    const key = path.join(tmp.dir, 'k.pem');
    const crt = path.join(tmp.dir, 'c.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt,
      '-days', '45', '-subj', '/CN=ui.test', '-addext', 'subjectAltName=DNS:ui.test,DNS:*.ui.test'], { stdio: 'ignore' });
    const cert = readFileSync(crt, 'utf8');
    await g.put('/ssls/uissl', { cert, key: readFileSync(key, 'utf8'), snis: ['ui.test', '*.ui.test'] });
    const end = execFileSync('openssl', ['x509', '-in', crt, '-noout', '-enddate'], { encoding: 'utf8' }).trim().replace('notAfter=', '');
    const list = ((await (await get('ssls', VIEWER_KEY)).json()) as any).list as any[];
    const mine = list.find((s) => s.id === 'uissl');
    expect(mine.snis).toEqual(['ui.test', '*.ui.test']);
    expect(mine.certs[0].not_after).toBe(new Date(end).toISOString());
    expect(mine.certs[0].dns_names).toEqual(['ui.test', '*.ui.test']);
    expect(mine.certs[0].subject).toBe('CN=ui.test');
    expect(JSON.stringify(mine)).not.toContain('PRIVATE KEY');
  });

  it('relays the Control API health report and the Prometheus text', async () => {
    await g.put('/upstreams/uihc', {
      nodes: { [`127.0.0.1:${echo.port}`]: 1 },
      checks: { active: { type: 'http', http_path: '/', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1 } } },
    });
    await g.put('/routes/uihc', { uri: '/uihc', upstream_id: 'uihc' });
    await waitFor(async () => {
      const r = await get('health');
      if (r.status !== 200) return false;
      const list = (await r.json()) as any[];
      return list.some((c) => c.name === '/apisix/upstreams/uihc' && Array.isArray(c.nodes) && c.nodes[0]?.status === 'healthy');
    }, 8000, 100);
    expect((await fetch(`${g.url}/uihc`)).status).toBe(200);
    const metrics = await get('metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await metrics.text()).toMatch(/^# (HELP|TYPE) /m);
  });

  it('says what is missing when the admin server has no live sources', async () => {
    const bare = await adminOn({}, false);
    try {
      const h = await fetch(`http://127.0.0.1:${bare.address().port}/ui/api/health`, { headers: { 'X-API-KEY': ADMIN_KEY } });
      expect(h.status).toBe(503);
      expect(((await h.json()) as any).error_msg).toMatch(/Control API is not enabled/);
      const m = await fetch(`http://127.0.0.1:${bare.address().port}/ui/api/metrics`, { headers: { 'X-API-KEY': ADMIN_KEY } });
      expect(m.status).toBe(503);
    } finally {
      await bare.close();
    }
  });
});
