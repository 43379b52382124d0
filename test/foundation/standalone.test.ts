// Standalone providers: apisix.yaml / apisix.json hot reload on a data plane (#END handling, invalid objects
// skipped), and the embedded traditional mode where Admin API writes persist in apisix.yaml across a restart.
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { NO_EXPORTER, admin, baseConfig, get, ports, served, startCli, writeConfig, killAll } from './cli-helpers.ts';

// Each test spawns the CLI (a cold Node start loading the TypeScript sources); generous on a loaded machine.
vi.setConfig({ testTimeout: 60_000 });

let echo: EchoServer;

beforeAll(async () => {
  echo = await startEcho('standalone-up');
});
afterAll(async () => {
  await killAll();
  await echo.close();
});

function r(id: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { id, uri: `/${id}`, upstream: { type: 'roundrobin', nodes: { [echo.addr]: 1 } }, ...extra };
}

/** Replaces the file atomically, as an editor or config tool would. */
async function replace(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp`;
  await writeFile(tmp, text);
  await rename(tmp, file);
}

/** The store has polled at least twice (1 s interval) since `rev` was read, without applying anything new. */
async function twoPolls(): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 2500));
}

describe('data_plane + yaml provider', () => {
  let gw: TestGateway;
  let file: string;
  beforeAll(async () => {
    gw = await startTestGateway({
      config: { ...NO_EXPORTER, deployment: { role: 'data_plane', role_data_plane: { config_provider: 'yaml' } } },
      standalone: { routes: [r('one')] },
    });
    file = path.join(gw.dir, 'apisix.yaml');
  });
  afterAll(async () => {
    await gw?.close();
  });

  it('serves the file and has no Admin API', async () => {
    await served(`${gw.url}/one`);
    expect(gw.gw.adminPort()).toBeNull();
  });

  it('applies an edited file (atomic replace and in-place write)', async () => {
    await replace(file, stringify({ routes: [r('one'), r('two')] }) + '#END\n');
    await served(`${gw.url}/two`);
    await writeFile(file, stringify({ routes: [r('two'), r('three')] }) + '#END\n');
    await served(`${gw.url}/three`);
    await served(`${gw.url}/one`, 404);
    expect((await get(`${gw.url}/two`)).status).toBe(200);
  });

  it('does not apply a file without #END; the old configuration keeps serving', async () => {
    const rev = gw.gw.store!.revision;
    await replace(file, stringify({ routes: [r('two'), r('three'), r('four')] }));
    await twoPolls();
    expect(gw.gw.store!.revision).toBe(rev);
    expect((await get(`${gw.url}/four`)).status).toBe(404);
    expect((await get(`${gw.url}/three`)).status).toBe(200);
    // A truncated write (cut before #END) is the same case.
    const full = stringify({ routes: [r('two'), r('three'), r('four')] }) + '#END\n';
    await replace(file, full.slice(0, full.length - 20));
    await twoPolls();
    expect((await get(`${gw.url}/four`)).status).toBe(404);
    await replace(file, full);
    await served(`${gw.url}/four`);
  });

  it('skips an invalid object and applies the rest', async () => {
    await replace(
      file,
      stringify({
        routes: [r('two'), r('bad', { uri: 42 }), r('five'), r('badplugin', { plugins: { 'proxy-rewrite': { uri: 7 } } })],
      }) + '#END\n',
    );
    await served(`${gw.url}/five`);
    expect((await get(`${gw.url}/two`)).status).toBe(200);
    expect((await get(`${gw.url}/badplugin`)).status).toBe(404);
    await served(`${gw.url}/four`, 404);
  });

  it('substitutes ${{VAR}} in the file', async () => {
    process.env.SWY_STANDALONE_URI = '/from-env';
    try {
      await replace(file, stringify({ routes: [r('env', { uri: '${{SWY_STANDALONE_URI}}' })] }) + '#END\n');
      await served(`${gw.url}/from-env`);
    } finally {
      delete process.env.SWY_STANDALONE_URI;
    }
  });
});

describe('data_plane + json provider', () => {
  it('serves apisix.json and reloads it (no #END needed)', async () => {
    const { dir, cleanup } = await tempDir('swy-json-');
    const p = await ports();
    const conf = baseConfig(p);
    conf.deployment = { role: 'data_plane', role_data_plane: { config_provider: 'json' } };
    const json = path.join(dir, 'apisix.json');
    await writeFile(json, JSON.stringify({ routes: [r('j1')] }));
    const gw = await startCli(await writeConfig(dir, conf), p.status);
    try {
      await served(`http://127.0.0.1:${p.http}/j1`);
      await replace(json, JSON.stringify({ routes: [r('j2')], upstreams: [{ id: 'u', nodes: 'broken' }] }));
      await served(`http://127.0.0.1:${p.http}/j2`);
      await served(`http://127.0.0.1:${p.http}/j1`, 404);
      // Invalid JSON is not applied.
      await replace(json, '{"routes": [');
      await twoPolls();
      expect((await get(`http://127.0.0.1:${p.http}/j2`)).status).toBe(200);
    } finally {
      await gw.peer.stop('SIGTERM');
      await cleanup();
    }
  }, 60_000);
});

describe('traditional + yaml provider (embedded default)', () => {
  it('persists Admin API writes in apisix.yaml; a new process serves them', async () => {
    const { dir, cleanup } = await tempDir('swy-embedded-');
    try {
      const p = await ports();
      const cfg = await writeConfig(dir, baseConfig(p, 'yaml'));
      const first = await startCli(cfg, p.status);
      expect((await admin(p, 'PUT', '/upstreams/up1', { type: 'roundrobin', nodes: { [echo.addr]: 1 } })).status).toBe(201);
      expect((await admin(p, 'PUT', '/routes/r1', { uri: '/persisted', upstream_id: 'up1' })).status).toBe(201);
      const posted = await admin(p, 'POST', '/routes', { uri: '/posted', upstream_id: 'up1' });
      expect(posted.status).toBe(201);
      const postedId = posted.body.key.split('/').pop() as string;
      expect((await admin(p, 'PUT', '/consumers', { username: 'jack' })).status).toBe(201);
      expect((await admin(p, 'PUT', '/routes/gone', { uri: '/gone', upstream_id: 'up1' })).status).toBe(201);
      expect((await admin(p, 'DELETE', '/routes/gone')).status).toBe(200);
      await served(`http://127.0.0.1:${p.http}/persisted`);

      const text = await readFile(path.join(dir, 'apisix.yaml'), 'utf8');
      expect(text.trimEnd().endsWith('#END')).toBe(true);
      const doc = parse(text) as Record<string, { id?: string; username?: string }[]>;
      expect(doc.routes!.map((x) => x.id).sort()).toEqual([postedId, 'r1'].sort());
      expect(doc.consumers!.map((x) => x.username)).toEqual(['jack']);

      // A hand edit of the file while the Admin API runs is picked up too.
      await replace(path.join(dir, 'apisix.yaml'), stringify({ ...doc, routes: [...doc.routes!, { id: 'hand', uri: '/hand', upstream_id: 'up1' }] }) + '#END\n');
      await served(`http://127.0.0.1:${p.http}/hand`);

      await first.peer.stop('SIGTERM');
      expect(await first.exited).toBe(0);

      const second = await startCli(cfg, p.status);
      try {
        for (const u of ['/persisted', '/posted', '/hand']) await served(`http://127.0.0.1:${p.http}${u}`);
        expect((await get(`http://127.0.0.1:${p.http}/gone`)).status).toBe(404);
        expect((await admin(p, 'GET', '/consumers/jack')).status).toBe(200);
        // Generated ids keep increasing across the restart.
        const again = await admin(p, 'POST', '/routes', { uri: '/posted2', upstream_id: 'up1' });
        expect(again.status).toBe(201);
        expect(BigInt(again.body.key.split('/').pop())).toBeGreaterThan(BigInt(postedId));
        await waitFor(async () => (await get(`http://127.0.0.1:${p.http}/posted2`)).status === 200, 10_000, 50);
      } finally {
        await second.peer.stop('SIGTERM');
      }
    } finally {
      await cleanup();
    }
  }, 60_000);
});
