// Objects naming a plugin that is not enabled (left out of config.yaml `plugins`, removed by a reload, or not
// implemented). APISIX's plugin_checker (apisix/plugin.lua, skip_disabled_plugin) keeps such objects on the etcd
// data plane and skips the plugin with one warning per check of the object, while its Admin API and its
// yaml/json providers reject them with "unknown plugin [name]". The first part checks the snapshot rule for
// every kind holding plugins; the second drives a real gateway on a real etcd through a plugin-list reload.
import { writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import type { Kind } from '../../src/config/resources.ts';
import { buildSnapshot } from '../../src/config/snapshot.ts';
import { checkExpr } from '../../src/router/expr.ts';
import { admin, baseConfig, get, killAll, ports, runCli, served, startCli, writeConfig, type Gw, type Ports } from '../foundation/cli-helpers.ts';
import { startEtcd, type EtcdPeer } from '../helpers/etcd.ts';
import { item, registries } from '../helpers/items.ts';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoReply, type EchoServer } from '../helpers/upstream.ts';

vi.setConfig({ testTimeout: 60_000, hookTimeout: 30_000 });

describe('snapshot: plugins that are not enabled', () => {
  const { plugins } = registries();
  // proxy-rewrite is registered but disabled; no-such-plugin does not exist at all.
  plugins.setEnabled(['key-auth', 'response-rewrite'], ['ip-restriction']);
  const up = { type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } };
  const extra = { 'proxy-rewrite': { uri: '/x' }, 'no-such-plugin': { any: 1 } };
  const rr = { 'response-rewrite': { headers: { set: { 'x-a': 'a' } } } };
  const items = [
    item('routes', 'r1', { uri: '/a', plugins: { ...rr, ...extra }, upstream: up }),
    item('services', 's1', { plugins: extra, upstream: up }),
    item('plugin_configs', 'pc1', { id: 'pc1', plugins: extra }),
    item('global_rules', 'g1', { id: 'g1', plugins: extra }),
    item('consumer_groups', 'cg1', { id: 'cg1', plugins: extra }),
    item('consumers', 'jack', { username: 'jack', plugins: { 'key-auth': { key: 'k' }, ...extra } }),
    item('credentials', 'jack/credentials/c1', { plugins: { 'no-such-plugin': {} } }),
    item('stream_routes', 'sr1', { plugins: { 'mqtt-proxy': { protocol_name: 'MQTT', protocol_level: 4 } }, upstream: up }),
  ];
  const kinds: Kind[] = ['routes', 'services', 'plugin_configs', 'global_rules', 'consumer_groups', 'consumers', 'credentials', 'stream_routes'];

  it('the etcd data plane keeps every object, skips those plugins and reports each (object, plugin) once', () => {
    const seen: string[] = [];
    const snap = buildSnapshot(items, 1, { plugins, compileVars: checkExpr, onUnknownPlugin: (key, name) => seen.push(`${key} ${name}`) });
    expect(snap.errors).toEqual([]);
    for (const k of kinds) expect(snap.size(k), k).toBe(1);
    // Known plugins are still checked and get their defaults; the skipped confs are kept as stored.
    const r1 = snap.get('routes', 'r1')!.value.plugins as Record<string, Record<string, unknown>>;
    expect(r1['proxy-rewrite']).toEqual({ uri: '/x' });
    expect(r1['response-rewrite']!.headers).toEqual({ set: { 'x-a': 'a' } });
    expect(seen.sort()).toEqual([
      '/apisix/consumer_groups/cg1 no-such-plugin',
      '/apisix/consumer_groups/cg1 proxy-rewrite',
      '/apisix/consumers/jack no-such-plugin',
      '/apisix/consumers/jack proxy-rewrite',
      '/apisix/credentials/jack/credentials/c1 no-such-plugin',
      '/apisix/global_rules/g1 no-such-plugin',
      '/apisix/global_rules/g1 proxy-rewrite',
      '/apisix/plugin_configs/pc1 no-such-plugin',
      '/apisix/plugin_configs/pc1 proxy-rewrite',
      '/apisix/routes/r1 no-such-plugin',
      '/apisix/routes/r1 proxy-rewrite',
      '/apisix/services/s1 no-such-plugin',
      '/apisix/services/s1 proxy-rewrite',
      '/apisix/stream_routes/sr1 mqtt-proxy',
    ]);
    // A rebuild that reuses the snapshot validates nothing again: no repeated warnings.
    const again = buildSnapshot([...items, item('upstreams', 'u1', up)], 2, {
      plugins,
      compileVars: checkExpr,
      previous: snap,
      onUnknownPlugin: (key, name) => seen.push(`${key} ${name}`),
    });
    expect(again.size('routes')).toBe(1);
    expect(seen).toHaveLength(14);
  });

  it('still rejects a plugin conf that is not an object, and enabled plugins with invalid confs', () => {
    const bad = [
      item('routes', 'b1', { uri: '/b1', plugins: { 'proxy-rewrite': 'x' }, upstream: up }),
      item('routes', 'b2', { uri: '/b2', plugins: { 'response-rewrite': { status_code: 'nope' }, 'proxy-rewrite': {} }, upstream: up }),
    ];
    const snap = buildSnapshot(bad, 1, { plugins, compileVars: checkExpr, onUnknownPlugin: () => {} });
    expect(snap.size('routes')).toBe(0);
    expect(snap.errors.map((e) => e.message)).toEqual([
      'invalid plugin conf "x" for plugin [proxy-rewrite]',
      expect.stringMatching(/^failed to check the configuration of plugin response-rewrite err: /),
    ]);
  });

  it('without the option (Admin API, yaml/json providers) the objects are invalid: unknown plugin', () => {
    const snap = buildSnapshot(items, 1, { plugins, compileVars: checkExpr });
    for (const k of kinds) expect(snap.size(k), k).toBe(0);
    expect(snap.errors.find((e) => e.key === '/apisix/routes/r1')?.message).toMatch(/^unknown plugin \[(proxy-rewrite|no-such-plugin)\]$/);
    expect(snap.errors.find((e) => e.key === '/apisix/consumers/jack')?.message).toMatch(/^invalid plugins configuration: unknown plugin \[/);
  });
});

describe('etcd gateway: a plugin disabled by a reload is skipped, the objects keep serving', () => {
  const ALL = ['request-id', 'key-auth', 'response-rewrite', 'proxy-rewrite'];
  let etcd: EtcdPeer;
  let echo: EchoServer;
  let tmp: { dir: string; cleanup(): Promise<void> };

  beforeAll(async () => {
    [etcd, echo, tmp] = await Promise.all([startEtcd(), startEcho('dp'), tempDir('swy-disabled-')]);
  });
  afterAll(async () => {
    await killAll();
    await Promise.all([etcd?.stop(), echo?.close(), tmp?.cleanup()]);
  });

  function config(p: Ports, list: string[]): Record<string, any> {
    const conf = baseConfig(p, 'etcd');
    conf.deployment.etcd = { host: [etcd.endpoint], prefix: '/apisix', timeout: 5 };
    conf.plugins = list;
    return conf;
  }

  const rr = (v: string) => ({ 'response-rewrite': { headers: { set: { 'x-a': v } } } });
  const pr = (v: string) => ({ 'proxy-rewrite': { headers: { set: { 'x-b': v } } } });

  async function call(p: Ports, path: string, headers: Record<string, string> = {}): Promise<{ status: number; a?: string; rid?: string; b?: string }> {
    const r = await get(`http://127.0.0.1:${p.http}${path}`, { headers });
    const body = r.status === 200 ? (JSON.parse(r.body) as EchoReply) : undefined;
    return {
      status: r.status,
      a: r.headers['x-a'] as string | undefined,
      rid: r.headers['x-request-id'] as string | undefined,
      b: body?.headers['x-b'] as string | undefined,
    };
  }

  const warning = (key: string, plugin: string) => `skipping disabled or unknown plugin [${plugin}] of ${key};`;
  const occurrences = (gw: Gw, s: string) => gw.peer.output().split(s).length - 1;

  it('keeps routes, services, plugin configs, global rules and consumers; skips only the disabled plugins', async () => {
    const p = await ports();
    const file = await writeConfig(tmp.dir, config(p, ALL));
    const up = { type: 'roundrobin', nodes: { [echo.addr]: 1 } };
    // Written behind the Admin API's back, as an object stored by another APISIX with more plugins would be.
    await etcd.etcdctl('put', '/apisix/routes/ghost', JSON.stringify({ id: 'ghost', uri: '/ghost', plugins: { ...rr('ghost'), 'no-such-plugin': {} }, upstream: up }));
    const gw = await startCli(file, p.status);
    await served(`http://127.0.0.1:${p.http}/ghost`);
    expect(await call(p, '/ghost')).toMatchObject({ status: 200, a: 'ghost' });
    expect(occurrences(gw, warning('/apisix/routes/ghost', 'no-such-plugin'))).toBe(1);

    const writes: [string, unknown][] = [
      ['/routes/r1', { uri: '/r1', plugins: { ...rr('r1'), ...pr('route') }, upstream: up }],
      ['/services/s1', { plugins: pr('service'), upstream: up }],
      ['/routes/r2', { uri: '/r2', service_id: 's1', plugins: rr('r2') }],
      ['/plugin_configs/pc1', { plugins: pr('plugin_config') }],
      ['/routes/r3', { uri: '/r3', plugin_config_id: 'pc1', plugins: rr('r3'), upstream: up }],
      ['/global_rules/g1', { plugins: { 'request-id': {} } }],
      ['/consumers', { username: 'jack', plugins: { 'key-auth': { key: 'jack-key' }, ...pr('consumer') } }],
      ['/routes/r4', { uri: '/r4', plugins: { 'key-auth': {}, ...rr('r4') }, upstream: up }],
    ];
    for (const [path, body] of writes) expect((await admin(p, 'PUT', path, body)).status, path).toBeLessThan(300);
    await served(`http://127.0.0.1:${p.http}/r4`, 401);
    const jack = { apikey: 'jack-key' };
    const before = [await call(p, '/r1'), await call(p, '/r2'), await call(p, '/r3'), await call(p, '/r4', jack)];
    expect(before.map((r) => [r.status, r.a, r.b, typeof r.rid])).toEqual([
      [200, 'r1', 'route', 'string'],
      [200, 'r2', 'service', 'string'],
      [200, 'r3', 'plugin_config', 'string'],
      [200, 'r4', 'consumer', 'string'],
    ]);

    // proxy-rewrite and request-id leave the list; `switchyard reload` applies it live (SIGHUP).
    await writeFile(file, stringify(config(p, ['key-auth', 'response-rewrite'])));
    const out = await runCli(['reload', '-c', file]);
    expect(out.code, out.stderr).toBe(0);
    await waitFor(async () => (await call(p, '/r1')).b === undefined, 10_000, 50);
    for (let i = 0; i < 5; i++) {
      const after = [await call(p, '/r1'), await call(p, '/r2'), await call(p, '/r3'), await call(p, '/r4', jack), await call(p, '/ghost')];
      expect(after.map((r) => [r.status, r.a, r.b, r.rid])).toEqual([
        [200, 'r1', undefined, undefined],
        [200, 'r2', undefined, undefined],
        [200, 'r3', undefined, undefined],
        [200, 'r4', undefined, undefined],
        [200, 'ghost', undefined, undefined],
      ]);
    }
    // The consumer is still there: key-auth still identifies jack and refuses anyone else.
    expect((await call(p, '/r4')).status).toBe(401);
    expect((await call(p, '/r4', { apikey: 'nope' })).status).toBe(401);

    // One warning per object and plugin for the reload's rebuild, none per request.
    const expected: [string, string][] = [
      ['/apisix/routes/r1', 'proxy-rewrite'],
      ['/apisix/services/s1', 'proxy-rewrite'],
      ['/apisix/plugin_configs/pc1', 'proxy-rewrite'],
      ['/apisix/global_rules/g1', 'request-id'],
      ['/apisix/consumers/jack', 'proxy-rewrite'],
    ];
    for (const [key, plugin] of expected) expect(occurrences(gw, warning(key, plugin)), `${key} ${plugin}`).toBe(1);
    // The ghost route was checked at its first load and once more by the reload's full rebuild.
    expect(occurrences(gw, warning('/apisix/routes/ghost', 'no-such-plugin'))).toBe(2);
    expect(gw.peer.output()).not.toContain('invalid config object skipped');

    // The Admin API still refuses writes naming a plugin that is not enabled.
    const refused = await admin(p, 'PUT', '/routes/r5', { uri: '/r5', plugins: pr('x'), upstream: up });
    expect(refused).toEqual({ status: 400, body: { error_msg: 'unknown plugin [proxy-rewrite]' } });
    // Stored objects are unchanged: re-enabling the plugins brings them back into effect.
    await writeFile(file, stringify(config(p, ALL)));
    expect((await runCli(['reload', '-c', file])).code).toBe(0);
    await waitFor(async () => (await call(p, '/r1')).b === 'route', 10_000, 50);
    expect(await call(p, '/r3')).toMatchObject({ status: 200, a: 'r3', b: 'plugin_config' });
    expect(typeof (await call(p, '/r2')).rid).toBe('string');
  });
});
