import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uriBlockerPlugin as def } from '../../../src/plugin/builtin/uri-blocker.ts';
import { compileUserRegex } from '../../../src/plugin/user-regex.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { curl } from '../../helpers/curl.ts';
import { confError } from '../helpers.ts';

describe('uri-blocker', () => {
  let gw: TestGateway;
  let up: EchoServer;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('content');
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', {
      uri: '/msg/*',
      plugins: { 'uri-blocker': { block_rules: ['root.exe', 'root.m+'], rejected_msg: 'access is not allowed' } },
      upstream,
    });
    await gw.put('/routes/2', { uri: '/plain/*', plugins: { 'uri-blocker': { block_rules: ['secret', 'debug=1'] } }, upstream });
    await gw.put('/routes/3', {
      uri: '/ci/*',
      plugins: { 'uri-blocker': { block_rules: ['/ADMIN\\b', '\\.PHP$'], case_insensitive: true, rejected_code: 404 } },
      upstream,
    });
    await gw.put('/routes/4', { uri: '/redos/*', plugins: { 'uri-blocker': { block_rules: ['(a+)+$', '(x|xx)+y'] } }, upstream });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates confs like APISIX and refuses patterns that cannot run in linear time', async () => {
    expect(confError(def, { block_rules: ['root.exe'] })).toBeNull();
    expect(confError(def, {})).toMatch(/block_rules/);
    expect(confError(def, { block_rules: ['a', 'a'] })).not.toBeNull();
    expect(confError(def, { block_rules: [''] })).not.toBeNull();
    expect(confError(def, { block_rules: ['x'], rejected_code: 199 })).not.toBeNull();
    expect(confError(def, { block_rules: ['(unclosed'] })).toMatch(/invalid regular expression "\(unclosed"/);
    expect(confError(def, { block_rules: ['ok', '(a)\\1'] })).toMatch(/"\(a\)\\1" is not allowed: it cannot be matched in linear time/);
    expect(confError(def, { block_rules: ['(?=admin)adm'] })).toMatch(/linear time/);
    const r = await gw.admin('PUT', '/routes/9', { uri: '/r9', plugins: { 'uri-blocker': { block_rules: ['(\\w+)=\\1'] } }, upstream: { nodes: { [up.addr]: 1 } } });
    expect(r.status).toBe(400);
    expect(r.body.error_msg).toMatch(/^failed to check the configuration of plugin uri-blocker err: pattern .* linear time/);
  });

  it('answers rejected_code with {"error_msg": rejected_msg} and never reaches the upstream', async () => {
    const before = up.seen.length;
    const r = await curl(`${gw.url}/msg/root.exe`);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({ error_msg: 'access is not allowed' });
    const r2 = await curl(`${gw.url}/msg/x/root.mmm?a=1`);
    expect(r2.status).toBe(403);
    // Percent-encoding and dot segments do not hide a rule: the decoded, normalized path is matched.
    expect((await curl(`${gw.url}/msg/root%2Eexe`, ['--path-as-is'])).status).toBe(403);
    expect((await curl(`${gw.url}/msg/a/../root%2eexe`, ['--path-as-is'])).status).toBe(403);
    expect(up.seen.length).toBe(before);
    const ok = await curl(`${gw.url}/msg/index.html`);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body).url).toBe('/msg/index.html');
    expect(up.seen.length).toBe(before + 1);
  });

  it('answers the bare status page without rejected_msg and matches the query string too', async () => {
    let r = await fetch(`${gw.url}/plain/secret`);
    expect(r.status).toBe(403);
    expect(r.headers.get('content-type')).toMatch(/text\/html/);
    expect(await r.text()).toContain('403 Forbidden');
    r = await fetch(`${gw.url}/plain/x?debug=1`);
    expect(r.status).toBe(403);
    r = await fetch(`${gw.url}/plain/x?debug=0`);
    expect(r.status).toBe(200);
  });

  it('case_insensitive applies to literals while escapes keep their meaning', async () => {
    expect((await fetch(`${gw.url}/ci/admin/x`)).status).toBe(404);
    expect((await fetch(`${gw.url}/ci/AdMiN`)).status).toBe(404);
    expect((await fetch(`${gw.url}/ci/index.Php`)).status).toBe(404);
    expect((await fetch(`${gw.url}/ci/administrator`)).status).toBe(200);
    const re = compileUserRegex('\\D\\d', true);
    expect(typeof re !== 'string' && re.test('A1')).toBe(true);
    expect(typeof re !== 'string' && re.test('11')).toBe(false);
  });

  it('matches catastrophic-backtracking patterns against hostile URIs in linear time', async () => {
    // `(a+)+$` against a long run of `a` ending in `!` takes exponential time on a backtracking engine
    // (already seconds at 30 characters); here the whole request completes like any other.
    const hostile = `/redos/${'a'.repeat(8000)}!`;
    const t0 = performance.now();
    const r = await fetch(gw.url + hostile);
    const ms = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(ms).toBeLessThan(5000);
    expect((await fetch(`${gw.url}/redos/${'x'.repeat(8000)}z`)).status).toBe(200);
    expect((await fetch(`${gw.url}/redos/aaaa`)).status).toBe(403);
    expect((await fetch(`${gw.url}/redos/xxxy`)).status).toBe(403);
  });
});
