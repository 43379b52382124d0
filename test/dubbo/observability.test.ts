// Per-call metrics and access log of the L4 Dubbo proxy through a whole gateway: three calls from a raw
// hessian.js consumer (one answered with a Java exception, one routed to a subordinate route), then the
// counters and latency histogram read back from the Prometheus exporter and the log entries from a syslog
// receiver named by the stream route's protocol.logger (APISIX xRPC logger: name, filter, conf).
import dgram from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectDubboClient, startDubboProvider, type DubboProvider } from '../helpers/dubbo-provider.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';

const SVC = 'org.apache.dubbo.backend.DemoService';
const OTHER = 'org.demo.Other';

let gw: TestGateway;
let port = 0;
let main: DubboProvider;
let other: DubboProvider;
let syslog: dgram.Socket;
const lines: string[] = [];

async function scrape(): Promise<string> {
  const p = (gw.config.plugin_attr.prometheus!.export_addr as { port: number }).port;
  return (await fetch(`http://127.0.0.1:${p}/apisix/prometheus/metrics`)).text();
}

function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const inner = line.slice(name.length + 1, line.lastIndexOf('}'));
    const have = inner.split(',');
    if (want.every((w) => have.includes(w)) && have.length === want.length) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

async function until<T>(what: () => T | undefined, ms = 5_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = what();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

beforeAll(async () => {
  main = await startDubboProvider({ [SVC]: { hello: ([n]) => `hello ${String(n)}`, boom: () => { throw new Error('boom on purpose'); } } }, 'main');
  other = await startDubboProvider({ [OTHER]: { who: () => 'other' } }, 'other');
  syslog = dgram.createSocket('udp4');
  syslog.on('message', (m) => lines.push(...m.toString().split('\n').filter((l) => l !== '')));
  await new Promise<void>((r) => syslog.bind(0, '127.0.0.1', () => r()));
  port = await freePort();
  gw = await startTestGateway({ config: { apisix: { proxy_mode: 'http&stream', stream_proxy: { tcp: [`127.0.0.1:${port}`] } } } });
  const logger = (filter: unknown) => ({
    name: 'syslog',
    filter,
    conf: { host: '127.0.0.1', port: syslog.address().port, sock_type: 'udp', batch_max_size: 1 },
  });
  await gw.put('/stream_routes/dubbo-obs', {
    server_port: port,
    protocol: {
      name: 'dubbo',
      logger: [
        logger([['rpc_time', '>=', 0]]),
        // APISIX: a logger without a filter never runs; one whose filter does not match neither.
        { name: 'syslog', conf: { host: '127.0.0.1', port: syslog.address().port, sock_type: 'udp', batch_max_size: 1 } },
        logger([['dubbo_method', '==', 'never-called']]),
      ],
    },
    upstream: { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: main.port, weight: 1 }] },
  });
  await gw.put('/stream_routes/dubbo-obs-other', {
    protocol: { name: 'dubbo', superior_id: 'dubbo-obs', conf: { service_name: OTHER } },
    upstream: { type: 'roundrobin', nodes: [{ host: '127.0.0.1', port: other.port, weight: 1 }] },
  });
}, 20_000);

afterAll(async () => {
  await gw?.close();
  await main?.kill();
  await other?.kill();
  syslog?.close();
});

describe('dubbo call metrics and access log', () => {
  it('counts each call by route, service, method and status, observes its latency, and logs one line per call', async () => {
    const c = await connectDubboClient(port);
    expect((await c.call(1n, SVC, 'hello', ['a'], { version: '1.0.0' })).values[1]).toBe('hello a');
    const ex = await c.call(2n, SVC, 'boom', [], { version: '1.0.0' });
    expect(ex.values[0]).toBe(3);
    expect((await c.call(3n, OTHER, 'who')).values[1]).toBe('other');
    c.socket.destroy();

    const text = await scrape();
    expect(sample(text, 'apisix_dubbo_calls_total', { route: 'dubbo-obs', service: SVC, method: 'hello', status: '20' })).toBe(1);
    expect(sample(text, 'apisix_dubbo_calls_total', { route: 'dubbo-obs', service: SVC, method: 'boom', status: 'exception' })).toBe(1);
    expect(sample(text, 'apisix_dubbo_calls_total', { route: 'dubbo-obs-other', service: OTHER, method: 'who', status: '20' })).toBe(1);
    expect(sample(text, 'apisix_dubbo_calls_latency_seconds_count', { route: 'dubbo-obs', service: SVC, method: 'hello' })).toBe(1);
    expect(sample(text, 'apisix_dubbo_calls_latency_seconds_bucket', { route: 'dubbo-obs', service: SVC, method: 'boom', le: '+Inf' })).toBe(1);
    expect(text).toMatch(/^# TYPE apisix_dubbo_calls_latency_seconds histogram$/m);

    await until(() => (lines.length >= 3 ? true : undefined));
    await new Promise((r) => setTimeout(r, 200));
    expect(lines).toHaveLength(3);
    const entries = lines.map((l) => {
      expect(l).toMatch(/^<46>1 \S+ \S+ apisix \d+ - - \{/);
      return JSON.parse(l.slice(l.indexOf('{'))) as Record<string, unknown>;
    });
    const byMethod = Object.fromEntries(entries.map((e) => [e.method, e]));
    expect(byMethod.hello).toMatchObject({ route_id: 'dubbo-obs', service: SVC, version: '1.0.0', status: '20', upstream: `127.0.0.1:${main.port}`, client_ip: '127.0.0.1', server_port: port });
    expect(byMethod.boom).toMatchObject({ status: 'exception', service: SVC });
    expect(byMethod.who).toMatchObject({ route_id: 'dubbo-obs-other', upstream: `127.0.0.1:${other.port}` });
    for (const e of entries) {
      expect(typeof e.rpc_time).toBe('number');
      expect(e.rpc_time as number).toBeGreaterThanOrEqual(0);
      expect(Math.abs((e.start_time as number) - Date.now())).toBeLessThan(60_000);
    }
  });
});
