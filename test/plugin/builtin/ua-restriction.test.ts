import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uaRestrictionPlugin as def } from '../../../src/plugin/builtin/ua-restriction.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { curl } from '../../helpers/curl.ts';
import { confError } from '../helpers.ts';

describe('ua-restriction', () => {
  let gw: TestGateway;
  let up: EchoServer;

  beforeAll(async () => {
    gw = await startTestGateway();
    up = await startEcho('content');
    const upstream = { nodes: { [up.addr]: 1 } };
    await gw.put('/routes/1', { uri: '/deny', plugins: { 'ua-restriction': { denylist: ['my-bot1', '(Baiduspider)/(\\d+)\\.(\\d+)'] } }, upstream });
    await gw.put('/routes/2', {
      uri: '/allow',
      plugins: { 'ua-restriction': { allowlist: ['^curl/', 'Mozilla/5\\.0'], message: 'Do you want to do something bad?' } },
      upstream,
    });
    await gw.put('/routes/3', { uri: '/bypass', plugins: { 'ua-restriction': { denylist: ['bot'], bypass_missing: true } }, upstream });
    await gw.put('/routes/4', { uri: '/redos', plugins: { 'ua-restriction': { denylist: ['^(\\w+\\s?)+$'] } }, upstream });
  });
  afterAll(async () => {
    await gw?.close();
    await up?.close();
  });

  it('validates confs like APISIX and refuses patterns that cannot run in linear time', () => {
    expect(confError(def, { denylist: ['bot'] })).toBeNull();
    expect(confError(def, {})).not.toBeNull();
    expect(confError(def, { denylist: ['a'], allowlist: ['b'] })).not.toBeNull();
    expect(confError(def, { denylist: [] })).not.toBeNull();
    expect(confError(def, { denylist: ['['] })).toMatch(/invalid regular expression/);
    expect(confError(def, { allowlist: ['(bot)\\1'] })).toMatch(/linear time/);
  });

  it('denylist: matching agents get 403 {"message":"Not allowed"}, others reach the upstream', async () => {
    const before = up.seen.length;
    let r = await curl(`${gw.url}/deny`, ['-A', 'my-bot1']);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({ message: 'Not allowed' });
    r = await curl(`${gw.url}/deny`, ['-A', 'Mozilla/5.0 (compatible; Baiduspider/2.0)']);
    expect(r.status).toBe(403);
    expect(up.seen.length).toBe(before);
    r = await curl(`${gw.url}/deny`, ['-A', 'my-browser']);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).headers['user-agent']).toBe('my-browser');
    // Missing User-Agent without bypass_missing: rejected.
    expect((await curl(`${gw.url}/deny`, ['-A', ''])).status).toBe(403);
  });

  it('allowlist: only matching agents pass; the configured message is sent', async () => {
    expect((await curl(`${gw.url}/allow`)).status).toBe(200);
    const r = await curl(`${gw.url}/allow`, ['-A', 'wget/1.0']);
    expect(r.status).toBe(403);
    expect(JSON.parse(r.body)).toEqual({ message: 'Do you want to do something bad?' });
    // Surrounding whitespace is stripped before matching (APISIX strips the header value).
    expect((await fetch(`${gw.url}/allow`, { headers: { 'user-agent': '  curl/8.0' } })).status).toBe(200);
  });

  it('bypass_missing lets requests without User-Agent through', async () => {
    expect((await curl(`${gw.url}/bypass`, ['-A', ''])).status).toBe(200);
    expect((await curl(`${gw.url}/bypass`, ['-A', 'a bot'])).status).toBe(403);
  });

  it('a hostile User-Agent against a backtracking-prone pattern is answered promptly', async () => {
    // `^(\w+\s?)+$` on many words followed by `!` backtracks exponentially in a backtracking engine.
    const ua = `${'word '.repeat(2000)}!`;
    const t0 = performance.now();
    const r = await curl(`${gw.url}/redos`, ['-A', ua]);
    expect(r.status).toBe(200);
    expect(performance.now() - t0).toBeLessThan(5000);
    expect((await curl(`${gw.url}/redos`, ['-A', 'plain words here'])).status).toBe(403);
  });
});
