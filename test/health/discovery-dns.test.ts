// `discovery_type: dns` against a real dnsmasq whose records the test changes (dnsmasq is restarted on the
// same port with new records, TTL 1 s): A records with a port in service_name, SRV weights and ports, and
// health checks on discovered nodes. No config write happens after the upstream is created.
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DnsClient } from '../../src/health/dns-wire.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort, freeTcpUdpPort } from '../helpers/ports.ts';
import { startPeer, waitFor, type Peer } from '../helpers/proc.ts';
import { get, httpBackend, type Backend } from './helpers.ts';

let dnsPort: number;
let dns: Peer | null = null;
let gw: TestGateway;
const backends: Backend[] = [];

/** (Re)starts dnsmasq on dnsPort with `records` (dnsmasq option values, TTL 1 s) and waits until it answers. */
async function serveDns(records: string[]): Promise<void> {
  await dns?.stop();
  const args = ['--no-daemon', '--port', String(dnsPort), '--listen-address', '127.0.0.1', '--bind-interfaces', '--no-resolv', '--no-hosts'];
  args.push('--conf-file=/dev/null', '--user=root', '--pid-file=', '--local-ttl=1', ...records);
  dns = startPeer('dnsmasq', args);
  const client = new DnsClient({ servers: [`127.0.0.1:${dnsPort}`], timeoutMs: 500, tries: 1 });
  await waitFor(async () => {
    if (dns!.proc.exitCode !== null) throw new Error(`dnsmasq exited: ${dns!.output()}`);
    return (await client.query('probe.test', 'A')).addresses.length === 1;
  }, 10_000, 100);
}

const PROBE_RECORD = '--host-record=probe.test,127.0.0.9';

/** A port free on both 127.0.0.2 and 127.0.0.3. */
async function sharedPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freePort('127.0.0.2');
    const ok = await new Promise<boolean>((resolve) => {
      const s = http.createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.3', () => s.close(() => resolve(true)));
    });
    if (ok) return port;
  }
  throw new Error('no shared port');
}

beforeAll(async () => {
  dnsPort = await freeTcpUdpPort();
  await serveDns([PROBE_RECORD]);
  gw = await startTestGateway({ config: { discovery: { dns: { servers: [`127.0.0.1:${dnsPort}`] } } } });
});

afterAll(async () => {
  await gw?.close();
  await dns?.stop();
});

afterEach(async () => {
  for (const b of backends.splice(0)) await b.stop();
});

async function backend(name: string, host: string, port?: number): Promise<Backend> {
  const b = await httpBackend(name, { host, port });
  backends.push(b);
  return b;
}

async function served(path: string, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const r = await get(`${gw.url}${path}`);
    const who = r.status === 200 ? r.upstream : `status ${r.status}`;
    counts.set(who, (counts.get(who) ?? 0) + 1);
  }
  return counts;
}

describe('dns discovery', () => {
  it('A records: nodes follow the DNS answer without config writes', async () => {
    const port = await sharedPort();
    await backend('w2', '127.0.0.2', port);
    await backend('w3', '127.0.0.3', port);
    await serveDns([PROBE_RECORD, '--host-record=a.svc.test,127.0.0.2']);
    await gw.put('/upstreams/a', { discovery_type: 'dns', service_name: `a.svc.test:${port}`, type: 'roundrobin' });
    await gw.put('/routes/a', { uri: '/a', upstream_id: 'a' });
    await waitFor(async () => (await served('/a', 1)).get('w2') === 1, 10_000, 50);
    expect(await served('/a', 5)).toEqual(new Map([['w2', 5]]));
    const revision = gw.gw.store!.revision;

    await serveDns([PROBE_RECORD, '--host-record=a.svc.test,127.0.0.3']);
    await waitFor(async () => (await served('/a', 1)).get('w3') === 1, 10_000, 50);
    expect(await served('/a', 5)).toEqual(new Map([['w3', 5]]));
    expect(gw.gw.store!.revision).toBe(revision);
  });

  it('SRV records: weights and ports honoured, changes followed, discovered nodes health-checked', async () => {
    const w2 = await backend('w2', '127.0.0.2');
    const w3 = await backend('w3', '127.0.0.3');
    const srv = (w2w: number, w3w: number) => [
      PROBE_RECORD,
      '--host-record=w2.test,127.0.0.2',
      '--host-record=w3.test,127.0.0.3',
      `--srv-host=_http._tcp.svc.test,w2.test,${w2.port},0,${w2w}`,
      ...(w3w > 0 ? [`--srv-host=_http._tcp.svc.test,w3.test,${w3.port},0,${w3w}`] : []),
    ];
    await serveDns(srv(1, 3));
    await gw.put('/upstreams/srv', {
      discovery_type: 'dns',
      service_name: '_http._tcp.svc.test',
      checks: { active: { type: 'tcp', healthy: { interval: 1 }, unhealthy: { interval: 1 } } },
    });
    await gw.put('/routes/srv', { uri: '/srv', upstream_id: 'srv' });
    await waitFor(async () => (await served('/srv', 4)).size === 2, 10_000, 50);
    // Smooth weighted round robin: exactly 1:3 over a multiple of the weight sum.
    expect(await served('/srv', 40)).toEqual(new Map([['w2', 10], ['w3', 30]]));
    const checked = gw.gw.health!.get('upstreams/srv')!.nodes.map((n) => `${n.ip}:${n.port}`).sort();
    expect(checked).toEqual([`127.0.0.2:${w2.port}`, `127.0.0.3:${w3.port}`]);

    await serveDns(srv(1, 0));
    await waitFor(async () => (await served('/srv', 4)).get('w2') === 4, 10_000, 50);
    await waitFor(() => gw.gw.health!.get('upstreams/srv')!.nodes.length === 1, 10_000, 50);
  });
});
