import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SmoothWeighted, trafficSplitPlugin as def } from '../../../src/plugin/builtin/traffic-split.ts';
import { startTestGateway, type TestGateway } from '../../helpers/gateway.ts';
import { freePort } from '../../helpers/ports.ts';
import { startEcho, type EchoServer } from '../../helpers/upstream.ts';
import { item, startProxy } from '../../stream/fixtures.ts';
import { confError } from '../helpers.ts';

async function who(url: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await fetch(url, { headers });
  return ((await r.json()) as { server: string }).server;
}

describe('traffic-split', () => {
  let gw: TestGateway;
  let a: EchoServer;
  let b: EchoServer;
  let c: EchoServer;

  beforeAll(async () => {
    [gw, a, b, c] = await Promise.all([startTestGateway(), startEcho('a'), startEcho('b'), startEcho('c')]);
    await gw.put('/upstreams/ub', { nodes: { [b.addr]: 1 } });
    await gw.put('/routes/1', {
      uri: '/split',
      plugins: {
        'traffic-split': {
          rules: [
            {
              match: [{ vars: [['http_x_canary', '==', 'yes']] }, { vars: [['arg_canary', '==', '1']] }],
              weighted_upstreams: [{ upstream: { nodes: { [c.addr]: 1 } }, weight: 1 }],
            },
            { weighted_upstreams: [{ upstream_id: 'ub', weight: 2 }, { weight: 1 }] },
          ],
        },
      },
      upstream: { nodes: { [a.addr]: 1 } },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await Promise.all([a?.close(), b?.close(), c?.close()]);
  });

  it('validates like APISIX', () => {
    expect(confError(def, { rules: [{ weighted_upstreams: [] }] })).not.toBeNull();
    expect(confError(def, { rules: [{ weighted_upstreams: [{ weight: -1 }] }] })).not.toBeNull();
    expect(confError(def, { rules: [{ match: [{ vars: [['a', 'bogus', 1]] }] }] })).toMatch(/invalid operator/);
    expect(confError(def, { rules: [{ weighted_upstreams: [{ upstream: { nodes: {} }, weight: 1 }] }] })).toBeNull();
  });

  it('routes matching requests (any match entry) to the rule upstream', async () => {
    expect(await who(`${gw.url}/split`, { 'x-canary': 'yes' })).toBe('c');
    expect(await who(`${gw.url}/split?canary=1`)).toBe('c');
  });

  it('spreads other requests by weight, an entry without upstream meaning the route upstream', async () => {
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(await who(`${gw.url}/split`));
    expect(seen.filter((s) => s === 'b').length).toBe(4);
    expect(seen.filter((s) => s === 'a').length).toBe(2);
  });

  it('an upstream_id that names no upstream answers 502 as APISIX (not the 503 of a route without upstream)', async () => {
    // The Admin API refuses such a reference (and deleting a referenced upstream); a standalone file can hold one.
    const file = await startTestGateway({
      standalone: {
        routes: [
          {
            id: 'missing',
            uri: '/split-missing',
            plugins: { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: 'nope', weight: 1 }] }] } },
            upstream: { nodes: { [a.addr]: 1 } },
          },
          { id: 'plain', uri: '/plain', upstream: { nodes: { [a.addr]: 1 } } },
        ],
      },
    });
    try {
      const r = await fetch(`${file.url}/split-missing`);
      await r.arrayBuffer();
      expect(r.status).toBe(502);
      // Everyone else is served.
      expect(await who(`${file.url}/plain`)).toBe('a');
    } finally {
      await file.close();
    }
  });

  it('smooth weighted round robin interleaves and skips weight 0', () => {
    const p = new SmoothWeighted([{ item: 'x', weight: 5 }, { item: 'y', weight: 1 }, { item: 'z', weight: 1 }, { item: 'never', weight: 0 }]);
    const picks = Array.from({ length: 7 }, () => p.next());
    expect(picks).toEqual(['x', 'x', 'y', 'x', 'z', 'x', 'x']);
    expect(new SmoothWeighted([{ item: 1, weight: 0 }]).next()).toBeUndefined();
  });

  it('switches stream routes to the picked upstream in preread', async () => {
    const tag = (name: string) =>
      net.createServer((s) => {
        s.on('data', () => s.end(name));
        s.on('error', () => undefined);
      });
    const sa = tag('A');
    const sb = tag('B');
    const portOf = async (s: net.Server) => {
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
      return (s.address() as net.AddressInfo).port;
    };
    const [pa, pb, listen] = [await portOf(sa), await portOf(sb), await freePort()];
    const proxy = await startProxy({
      items: [
        item('upstreams', 'sb', { nodes: { [`127.0.0.1:${pb}`]: 1 } }),
        item('stream_routes', 'r1', {
          server_port: listen,
          plugins: { 'traffic-split': { rules: [{ weighted_upstreams: [{ upstream_id: 'sb', weight: 1 }] }] } },
          upstream: { nodes: { [`127.0.0.1:${pa}`]: 1 } },
        }),
      ],
      tcp: [{ addr: `127.0.0.1:${listen}`, tls: false }],
    });
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const sock = net.connect(listen, '127.0.0.1', () => sock.write('hi'));
        let data = '';
        sock.on('data', (d) => (data += d.toString()));
        sock.on('close', () => resolve(data));
        sock.on('error', reject);
        sock.setTimeout(5000, () => sock.destroy(new Error('timeout')));
      });
      expect(reply).toBe('B');
    } finally {
      await proxy.close();
      sa.close();
      sb.close();
    }
  });
});
