// The dashboard in a real headless Chromium (Debian package, driven by playwright-core; no downloaded browser):
// sign in with the admin key, create a route with proxy-rewrite and limit-count through the generated forms,
// see the schema error next to the field it concerns, send traffic through the proxy, edit and delete, force
// delete a referenced upstream, watch the live views, and check that the viewer key gets a read-only UI.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminServer, type AdminServer } from '../../src/admin/server.ts';
import { uiSourcesFor } from '../../src/admin/ui/live.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { ADMIN_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

const CHROMIUM = '/usr/bin/chromium';
const VIEWER_KEY = 'viewer-key-for-dashboard-0123';
/** Screenshots of the main pages, kept after the run (git-ignored). */
const SHOTS = path.join(import.meta.dirname, '../../test-output/dashboard');
const FLAGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let g: TestGateway;
let echo: EchoServer;
let echo2: EchoServer;
let admin: AdminServer;
let ui: string;
let ctx: BrowserContext;
let page: Page;
let tmp: { dir: string; cleanup: () => Promise<void> };
const problems: string[] = [];

beforeAll(async () => {
  // The dashboard as the sources stand (what npm start's prestart does).
  execFileSync(process.execPath, [path.join(import.meta.dirname, '../../scripts/build-ui.mjs'), '--if-stale'], { stdio: 'inherit' });
  tmp = await tempDir('swy-dash-');
  echo = await startEcho('dash');
  echo2 = await startEcho('dash2');
  const control = await freePort();
  g = await startTestGateway({ config: { apisix: { enable_control: true, control: { ip: '127.0.0.1', port: control } } } });
  // The gateway's own admin server serves the same UI; this one also has the viewer key and the live-view
  // sources (uiSourcesFor is what the composition root passes).
  admin = createAdminServer({
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
    },
    streamEnabled: false,
    onPluginsReload: async () => {},
    logger: silentLogger,
    version: 'test',
    ui: uiSourcesFor(g.config, () => g.gw.controlPort()),
  });
  const { port } = await admin.listen();
  ui = `http://127.0.0.1:${port}/ui/`;
  ctx = await chromium.launchPersistentContext(path.join(tmp.dir, 'profile'), {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 800 },
  });
  page = ctx.pages()[0] ?? (await ctx.newPage());
  page.setDefaultTimeout(5000);
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // 4xx answers the UI expects (validation, viewer probe) are logged by Chromium as failed loads.
    if (m.type() === 'error' && !/status of 40[01]/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
}, 30_000);

afterAll(async () => {
  await ctx?.close();
  await admin?.close();
  await g?.close();
  await echo?.close();
  await echo2?.close();
  await tmp?.cleanup();
});

const field = (p: string) => page.locator(`[data-path="${p}"]`);
const fieldError = (p: string) => page.locator(`.field[data-field="${p}"] > .field-error`);

async function signIn(key: string): Promise<void> {
  await page.goto(ui.replace(/\/$/, ''));
  await page.locator('#admin-key').fill(key);
  await page.locator('#login').click();
  await page.locator('#role').waitFor();
}

describe.skipIf(!existsSync(CHROMIUM))('dashboard in Chromium', () => {
  it('signs in with the key kept in sessionStorage only', async () => {
    await page.goto(ui.replace(/\/$/, ''));
    expect(page.url()).toBe(ui);
    await page.locator('#admin-key').fill('wrong-key');
    await page.locator('#login').click();
    await expect.poll(() => page.locator('#login-error').textContent()).toContain('wrong apikey');
    await page.locator('#admin-key').fill(ADMIN_KEY);
    await page.locator('#login').click();
    expect(await page.locator('#role').textContent()).toBe('admin');
    expect(await page.evaluate(() => sessionStorage.getItem('switchyard.adminKey'))).toBe(ADMIN_KEY);
    expect(await page.evaluate('localStorage.length + document.cookie.length')).toBe(0);
    expect(await page.content()).not.toContain(ADMIN_KEY);
    expect(page.url()).not.toContain(ADMIN_KEY);
  });

  it('creates a route with plugins through the generated forms; a schema error shows next to its field', async () => {
    await page.locator('a[href="#/routes/new"]').click();
    await page.locator('#obj-id').fill('web');
    await field('name').fill('web');
    await field('uri').fill('/dash/*');
    await field('methods.GET').check();
    await page.locator('details[data-field="upstream"] > summary').click();
    await field('upstream.nodes').fill(JSON.stringify({ [`127.0.0.1:${echo.port}`]: 1 }));
    await page.locator('#add-plugin').selectOption('proxy-rewrite');
    await page.locator('#add-plugin-btn').click();
    await field('plugins.proxy-rewrite.uri').fill('/rewritten');
    await page.locator('#add-plugin').selectOption('limit-count');
    await page.locator('#add-plugin-btn').click();
    await field('plugins.limit-count.count').fill('0');
    await field('plugins.limit-count.time_window').fill('60');
    await page.locator('#save').click();

    const err = fieldError('plugins.limit-count.count');
    await err.waitFor();
    expect(await err.textContent()).toMatch(/match/);
    expect(await field('plugins.limit-count.count').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#form-error').textContent()).toContain('failed to check the configuration of plugin limit-count');
    expect(await fieldError('plugins.limit-count.time_window').isHidden()).toBe(true);
    expect((await g.admin('GET', '/routes/web')).status).toBe(404);

    await field('plugins.limit-count.count').fill('2');
    await page.locator('#save').click();
    await page.locator('tr[data-id="web"]').waitFor();
    const stored = (await g.admin('GET', '/routes/web')).body.value;
    expect(stored).toMatchObject({
      name: 'web', uri: '/dash/*', methods: ['GET'],
      upstream: { nodes: { [`127.0.0.1:${echo.port}`]: 1 } },
      plugins: { 'proxy-rewrite': { uri: '/rewritten' }, 'limit-count': { count: 2, time_window: 60 } },
    });
    await g.synced();
    const codes: number[] = [];
    for (let i = 0; i < 3; i++) codes.push((await fetch(`${g.url}/dash/x`)).status);
    expect(codes).toEqual([200, 200, 503]);
    expect(echo.seen.at(-1)?.url).toBe('/rewritten');
    await page.screenshot({ path: path.join(tmp.dir, 'routes.png'), fullPage: true });
    expect(readFileSync(path.join(tmp.dir, 'routes.png')).subarray(1, 4).toString()).toBe('PNG');
  });

  it('edits the route (form and raw JSON) and shows its effective configuration', async () => {
    await page.locator('tr[data-id="web"] a.btn', { hasText: 'Edit' }).click();
    await field('plugins.limit-count.count').fill('5');
    await page.locator('#mode-json').click();
    const raw = JSON.parse(await page.locator('#raw-json').inputValue());
    expect(raw.plugins['limit-count'].count).toBe(5);
    raw.desc = 'edited as JSON';
    await page.locator('#raw-json').fill(JSON.stringify(raw));
    await page.locator('#mode-form').click();
    expect(await field('desc').inputValue()).toBe('edited as JSON');
    await page.locator('#save').click();
    await page.locator('tr[data-id="web"]').waitFor();
    const stored = (await g.admin('GET', '/routes/web')).body.value;
    expect(stored.plugins['limit-count'].count).toBe(5);
    expect(stored.desc).toBe('edited as JSON');

    await g.put('/global_rules/g1', { plugins: { 'request-id': {} } });
    await page.goto(`${ui}#/routes/effective/web`);
    await expect.poll(() => page.locator('main').textContent()).toContain('g1: request-id');
  });

  it('deletes, with the force confirmation for a referenced upstream', async () => {
    await g.put('/upstreams/shared', { nodes: { [`127.0.0.1:${echo.port}`]: 1 } });
    await g.put('/routes/uses-shared', { uri: '/shared', upstream_id: 'shared' });
    await page.goto(`${ui}#/upstreams`);
    await page.locator('button[aria-label="Delete upstream shared"]').click();
    await page.locator('dialog.confirm button.danger').click();
    await expect.poll(() => page.locator('dialog.confirm').textContent()).toContain('route [uses-shared] is still using it now');
    await page.locator('dialog.confirm button.danger', { hasText: 'Force delete' }).click();
    await page.locator('tr[data-id="shared"]').waitFor({ state: 'detached' });
    expect((await g.admin('GET', '/upstreams/shared')).status).toBe(404);

    await page.goto(`${ui}#/routes`);
    await page.locator('button[aria-label="Delete route web"]').click();
    await page.locator('dialog.confirm button.danger').click();
    await page.locator('tr[data-id="web"]').waitFor({ state: 'detached' });
    expect((await g.admin('GET', '/routes/web')).status).toBe(404);
  });

  it('shows live upstream health and traffic', async () => {
    await g.put('/upstreams/hc', {
      nodes: { [`127.0.0.1:${echo.port}`]: 1 },
      checks: { active: { type: 'http', http_path: '/', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1 } } },
    });
    await page.goto(`${ui}#/health`);
    const checker = page.locator('section[aria-label="checker /apisix/upstreams/hc"]');
    await expect.poll(() => checker.locator('td .pill').allTextContents(), { timeout: 12_000 }).toEqual(['healthy']);
    expect(await checker.locator('td').first().textContent()).toBe(`127.0.0.1:${echo.port}`);
    await g.put('/routes/metered', { uri: '/metered', upstream_id: 'hc', plugins: { prometheus: {} } });
    for (let i = 0; i < 4; i++) expect((await fetch(`${g.url}/metered`)).status).toBe(200);
    await page.goto(`${ui}#/traffic`);
    await page.locator('#rps').waitFor();
    await expect.poll(async () => Number(await page.locator('.stat.c2 .v').textContent()), { timeout: 8000 }).toBeGreaterThanOrEqual(4);
    const row = page.locator('tr', { hasText: 'metered' });
    expect(await row.locator('td').nth(1).textContent()).toBe('4');
    expect(await row.locator('td').nth(2).textContent()).toMatch(/ms$/);
  });

  it('lists SSLs with SNIs and certificate expiry, and opens every page without errors', async () => {
    const key = path.join(tmp.dir, 'k.pem');
    const crt = path.join(tmp.dir, 'c.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', crt,
      '-days', '10', '-subj', '/CN=dash.test', '-addext', 'subjectAltName=DNS:dash.test'], { stdio: 'ignore' });
    await g.put('/ssls/dash', { cert: readFileSync(crt, 'utf8'), key: readFileSync(key, 'utf8'), snis: ['dash.test'] });
    await page.goto(`${ui}#/ssls`);
    const row = page.locator('tr[data-id="dash"]');
    await row.waitFor();
    expect(await row.textContent()).toContain('dash.test');
    expect(await row.locator('.pill').textContent()).toMatch(/^\d{4}-\d{2}-\d{2} \((9|10) d\)$/);
    expect((await g.admin('PUT', '/consumers', { username: 'jack' })).status).toBe(201);
    expect((await g.admin('PUT', '/consumers/jack/credentials/c1', { plugins: { 'key-auth': { key: 'jack-key' } } })).status).toBe(201);
    const pages = ['services', 'upstreams', 'consumers', 'consumer_groups', 'ssls', 'global_rules', 'plugin_configs', 'plugin_metadata',
      'protos', 'secrets', 'stream_routes', 'consumers/jack/credentials'];
    for (const p of pages) {
      await page.goto(`${ui}#/${p}`);
      await page.locator('main h1').waitFor();
      await page.goto(`${ui}#/${p}/new`);
      await page.locator('form.editor').waitFor();
    }
    // Secret ids are <manager>/<id>: the slash must stay a path separator in the Admin API URL.
    await page.goto(`${ui}#/secrets/new`);
    await page.locator('#obj-id').fill('vault/ui');
    await page.locator('#raw-json').fill('{"uri":"http://127.0.0.1:8200","prefix":"kv","token":"t"}');
    await page.locator('#save').click();
    await page.locator('tr[data-id="vault/ui"]').waitFor();
    expect((await g.admin('GET', '/secrets/vault/ui')).body.value.prefix).toBe('kv');
    await page.goto(`${ui}#/consumers/jack/credentials/edit/c1`);
    expect(await field('plugins.key-auth.key').inputValue()).toBe('jack-key');
    await page.goto(`${ui}#/config`);
    await expect.poll(() => page.locator('pre.code').textContent()).toContain('"enable_admin_ui": true');
    expect(await page.locator('pre.code').textContent()).not.toContain(ADMIN_KEY);
    expect(problems).toEqual([]);
  });

  it('creates an upstream with a health check through its form, routes to it by upstream_id, edits its nodes, deletes both', async () => {
    await page.goto(`${ui}#/upstreams`);
    await page.locator('a[href="#/upstreams/new"]').click();
    await page.locator('#obj-id').fill('formup');
    await field('type').fill('roundrobin');
    await field('nodes').fill(JSON.stringify({ [`127.0.0.1:${echo.port}`]: 1 }));
    for (const d of ['checks', 'checks.active', 'checks.active.healthy', 'checks.active.unhealthy']) {
      await page.locator(`details[data-field="${d}"] > summary`).click();
    }
    await field('checks.active.type').selectOption({ label: 'http' });
    await field('checks.active.http_path').fill('/health-probe');
    await field('checks.active.healthy.interval').fill('1');
    await field('checks.active.healthy.successes').fill('1');
    await field('checks.active.unhealthy.interval').fill('1');
    await field('checks.active.unhealthy.http_failures').fill('1');
    await page.locator('#save').click();
    await page.locator('tr[data-id="formup"]').waitFor();
    expect((await g.admin('GET', '/upstreams/formup')).body.value).toMatchObject({
      type: 'roundrobin',
      nodes: { [`127.0.0.1:${echo.port}`]: 1 },
      checks: { active: { type: 'http', http_path: '/health-probe', healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, http_failures: 1 } } },
    });
    // The health check field took effect: the checker probes the path the form set.
    await page.goto(`${ui}#/health`);
    const checker = page.locator('section[aria-label="checker /apisix/upstreams/formup"]');
    await expect.poll(() => checker.locator('td .pill').allTextContents(), { timeout: 12_000 }).toEqual(['healthy']);
    expect(echo.seen.some((r) => r.url === '/health-probe')).toBe(true);

    await page.goto(`${ui}#/routes`);
    await page.locator('a[href="#/routes/new"]').click();
    await page.locator('#obj-id').fill('viaup');
    await field('uri').fill('/viaup/*');
    await field('upstream_id').fill('formup');
    await page.locator('#add-plugin').selectOption('proxy-rewrite');
    await page.locator('#add-plugin-btn').click();
    await field('plugins.proxy-rewrite.uri').fill('/up-rewritten');
    await page.locator('#add-plugin').selectOption('limit-count');
    await page.locator('#add-plugin-btn').click();
    await field('plugins.limit-count.count').fill('3');
    await field('plugins.limit-count.time_window').fill('60');
    await page.locator('#save').click();
    await page.locator('tr[data-id="viaup"]').waitFor();
    const route = (await g.admin('GET', '/routes/viaup')).body.value;
    expect(route).toMatchObject({ uri: '/viaup/*', upstream_id: 'formup', plugins: { 'proxy-rewrite': { uri: '/up-rewritten' }, 'limit-count': { count: 3, time_window: 60 } } });
    expect(route.upstream).toBeUndefined();
    await g.synced();
    const before = echo.seen.length;
    expect([(await fetch(`${g.url}/viaup/a`)).status, (await fetch(`${g.url}/viaup/b`)).status]).toEqual([200, 200]);
    expect(echo.seen.slice(before).filter((r) => r.url === '/up-rewritten')).toHaveLength(2);

    // Edit the upstream's nodes in its form: the route's traffic moves to the new node.
    await page.goto(`${ui}#/upstreams`);
    await page.locator('tr[data-id="formup"] a.btn', { hasText: 'Edit' }).click();
    expect(JSON.parse(await field('nodes').inputValue())).toEqual({ [`127.0.0.1:${echo.port}`]: 1 });
    expect(await field('checks.active.http_path').inputValue()).toBe('/health-probe');
    await field('nodes').fill(JSON.stringify({ [`127.0.0.1:${echo2.port}`]: 1 }));
    await page.locator('#save').click();
    await page.locator('tr[data-id="formup"]').waitFor();
    expect((await g.admin('GET', '/upstreams/formup')).body.value).toMatchObject({
      nodes: { [`127.0.0.1:${echo2.port}`]: 1 },
      checks: { active: { http_path: '/health-probe' } },
    });
    await g.synced();
    const before2 = echo2.seen.filter((r) => r.url === '/up-rewritten').length;
    expect((await fetch(`${g.url}/viaup/c`)).status).toBe(200);
    expect(echo2.seen.filter((r) => r.url === '/up-rewritten').length).toBe(before2 + 1);
    expect((await fetch(`${g.url}/viaup/d`)).status).toBe(503);

    // Delete both through the UI: the route first, so the upstream goes without a force delete.
    await page.goto(`${ui}#/routes`);
    await page.locator('button[aria-label="Delete route viaup"]').click();
    await page.locator('dialog.confirm button.danger').click();
    await page.locator('tr[data-id="viaup"]').waitFor({ state: 'detached' });
    await page.goto(`${ui}#/upstreams`);
    await page.locator('button[aria-label="Delete upstream formup"]').click();
    expect(await page.locator('dialog.confirm h2').textContent()).toBe('Delete upstream formup?');
    await page.locator('dialog.confirm button.danger').click();
    await page.locator('tr[data-id="formup"]').waitFor({ state: 'detached' });
    expect((await g.admin('GET', '/routes/viaup')).status).toBe(404);
    expect((await g.admin('GET', '/upstreams/formup')).status).toBe(404);
    expect(problems).toEqual([]);
  });

  it('works from the keyboard alone: sign in, navigate, create and delete (Escape cancels the confirmation)', async () => {
    // The focused element as `tag#id[label]` (the label: aria-label, else its text), read in the page.
    const active = () => page.evaluate<string>(`(() => {
      const el = document.activeElement;
      return el === null ? '' : el.tagName.toLowerCase() + '#' + el.id + '[' + (el.getAttribute('aria-label') ?? el.textContent.trim().slice(0, 40)) + ']';
    })()`);
    const focused = (prop: 'id' | 'data-path') => page.evaluate<string | null>(`document.activeElement?.getAttribute(${JSON.stringify(prop)}) ?? null`);
    /** Presses Tab (Shift+Tab backwards) until the focused element matches; fails if it never does. */
    const tabTo = async (selector: string, back = false) => {
      for (let i = 0; i < 80; i++) {
        if (await page.evaluate<boolean>(`document.activeElement?.matches(${JSON.stringify(selector)}) ?? false`)) return;
        await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
      }
      throw new Error(`Tab never reached ${selector} (focus on ${await active()})`);
    };
    await page.evaluate(() => sessionStorage.clear());
    await page.goto(ui);
    // The key field has the focus on arrival.
    expect(await active()).toBe('input#admin-key[]');
    await page.keyboard.type(ADMIN_KEY);
    await page.keyboard.press('Enter');
    await page.locator('#role').waitFor();
    await expect.poll(() => page.url()).toBe(`${ui}#/routes`);
    // On a fresh load the skip link is the first stop and moves focus to the page itself (it used to be read
    // as a route named "main").
    await page.reload();
    await page.locator('#role').waitFor();
    await page.keyboard.press('Tab');
    expect(await active()).toBe('a#[Skip to content]');
    await page.keyboard.press('Enter');
    expect(await focused('id')).toBe('main');
    expect(page.url()).toBe(`${ui}#/routes`);

    // Navigation: back from the page into the side nav, then Enter on a link; focus lands on the new page.
    await tabTo('nav.side a[href="#/consumers"]', true);
    await page.keyboard.press('Enter');
    await page.locator('main h1', { hasText: 'Consumers' }).waitFor();
    await expect.poll(() => focused('id')).toBe('main');
    await tabTo('a[href="#/consumers/new"]');
    await page.keyboard.press('Enter');
    await page.locator('form.editor').waitFor();
    // The editor focuses its first field (username: required fields come first).
    await expect.poll(() => focused('data-path')).toBe('username');
    await page.keyboard.type('kbd');
    await tabTo('[data-path="desc"]');
    await page.keyboard.type('made from the keyboard');
    await tabTo('#save');
    await page.keyboard.press('Enter');
    await page.locator('tr[data-id="kbd"]').waitFor();
    expect((await g.admin('GET', '/consumers/kbd')).body.value).toMatchObject({ username: 'kbd', desc: 'made from the keyboard' });

    // Delete: Escape cancels the dialog and returns focus to the button; Enter on the dialog's first button deletes.
    await tabTo('button[aria-label="Delete consumer kbd"]');
    await page.keyboard.press('Enter');
    await page.locator('dialog.confirm').waitFor();
    expect(await active()).toBe('button#[Delete]');
    await page.keyboard.press('Escape');
    await page.locator('dialog.confirm').waitFor({ state: 'detached' });
    expect(await active()).toBe('button#[Delete consumer kbd]');
    expect((await g.admin('GET', '/consumers/kbd')).status).toBe(200);
    await page.keyboard.press('Enter');
    await page.locator('dialog.confirm').waitFor();
    await page.keyboard.press('Enter');
    await page.locator('tr[data-id="kbd"]').waitFor({ state: 'detached' });
    expect((await g.admin('GET', '/consumers/kbd')).status).toBe(404);
    expect(problems).toEqual([]);
  });

  it('saves screenshots of the main pages as test artifacts', async () => {
    await g.put('/routes/shop', {
      name: 'shop', uri: '/shop/*', methods: ['GET', 'POST'], hosts: ['shop.example.com'], upstream_id: 'hc',
      plugins: { 'proxy-rewrite': { regex_uri: ['^/shop/(.*)', '/$1'] }, 'limit-count': { count: 100, time_window: 60 } },
    });
    await g.put('/routes/api', { name: 'api', uri: '/api/*', host: 'api.example.com', upstream_id: 'hc', plugins: { 'key-auth': {}, 'limit-count': { count: 10, time_window: 1 } } });
    // The route left pointing at the force-deleted upstream would only show a dangling reference.
    expect((await g.admin('DELETE', '/routes/uses-shared')).status).toBe(200);
    for (let i = 0; i < 3; i++) await fetch(`${g.url}/metered`);
    mkdirSync(SHOTS, { recursive: true });
    // A fresh load (no toast left from earlier steps), away from #/routes: going to the hash already shown
    // would not reload its list.
    await page.goto(`${ui}#/config`);
    await page.reload();
    const shots: [string, string, string][] = [
      ['routes', '#/routes', 'tr[data-id="shop"]'],
      ['route-editor', '#/routes/edit/shop', '[data-path="plugins.limit-count.count"]'],
      ['upstreams', '#/upstreams', 'tr[data-id="hc"]'],
      ['consumers', '#/consumers', 'tr[data-id="jack"]'],
      ['ssls', '#/ssls', 'tr[data-id="dash"] .pill'],
      ['health', '#/health', 'section[aria-label="checker /apisix/upstreams/hc"] td .pill'],
      ['traffic', '#/traffic', '.stat.c2'],
      ['effective', '#/routes/effective/shop', 'pre.code'],
    ];
    for (const [name, hash, ready] of shots) {
      await page.goto(`${ui}${hash}`);
      await page.locator(ready).first().waitFor();
      const file = path.join(SHOTS, `${name}.png`);
      await page.screenshot({ path: file, fullPage: name !== 'route-editor' });
      const png = readFileSync(file);
      expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), name).toBe(true);
      // IHDR width: the 1280 px viewport.
      expect(png.readUInt32BE(16), name).toBe(1280);
    }
    expect(problems).toEqual([]);
  });

  it('gives the viewer key a read-only UI that cannot save', async () => {
    await g.put('/routes/ro', { uri: '/ro', upstream: { nodes: { [`127.0.0.1:${echo.port}`]: 1 } }, plugins: { 'proxy-rewrite': { uri: '/x' } } });
    await page.locator('#logout').click();
    await signIn(VIEWER_KEY);
    expect(await page.locator('#role').textContent()).toBe('viewer');
    await page.locator('tr[data-id="ro"]').waitFor();
    expect(await page.locator('a[href="#/routes/new"]').count()).toBe(0);
    expect(await page.locator('button', { hasText: 'Delete' }).count()).toBe(0);
    await page.locator('tr[data-id="ro"] a.btn', { hasText: 'View' }).click();
    await field('uri').waitFor();
    expect(await field('uri').getAttribute('readonly')).toBe('');
    expect(await field('plugins.proxy-rewrite.uri').inputValue()).toBe('/x');
    expect(await page.locator('#save').count()).toBe(0);
    expect(await page.locator('#add-plugin').count()).toBe(0);
    // Even a hand-made write from the page is refused by the Admin API for this key.
    const status = await page.evaluate(async () => {
      const r = await fetch('/apisix/admin/routes/ro', {
        method: 'DELETE',
        headers: { 'X-API-KEY': sessionStorage.getItem('switchyard.adminKey') ?? '' },
      });
      return r.status;
    });
    expect(status).toBe(401);
    expect((await g.admin('GET', '/routes/ro')).status).toBe(200);
    await page.setViewportSize({ width: 420, height: 800 });
    await page.goto(`${ui}#/routes`);
    await page.locator('tr[data-id="ro"]').waitFor();
    expect(await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1')).toBe(true);
    expect(problems).toEqual([]);
  });
});

describe('test prerequisites', () => {
  it('runs the system Chromium, never a downloaded browser', () => {
    expect(existsSync(CHROMIUM)).toBe(true);
    expect(execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' })).toMatch(/Chromium/);
  });
});

void waitFor;
