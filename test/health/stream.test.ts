// tcp health checks of a stream upstream through a running gateway: a killed TCP backend leaves the stream
// balancer and comes back after a restart.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { waitFor } from '../helpers/proc.ts';
import { tcpBackend, type Backend } from './helpers.ts';

let gw: TestGateway;
let streamPort: number;
let a: Backend;
let b: Backend;

beforeAll(async () => {
  streamPort = await freePort();
  gw = await startTestGateway({ config: { apisix: { proxy_mode: 'http&stream', stream_proxy: { tcp: [`127.0.0.1:${streamPort}`] } } } });
  a = await tcpBackend('a');
  b = await tcpBackend('b');
});

afterAll(async () => {
  await gw?.close();
  await a?.stop();
  await b?.stop();
});

/** One stream session: sends `msg`, resolves the first answer (`<backend>:<msg>`). */
function roundTrip(msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port: streamPort });
    const timer = setTimeout(() => sock.destroy(new Error('stream timeout')), 5000);
    sock.once('connect', () => sock.write(msg));
    sock.once('data', (d) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(d.toString());
    });
    sock.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

describe('stream upstream tcp checks', () => {
  it('ejects a killed backend and restores it after restart', async () => {
    await gw.put('/stream_routes/s1', {
      server_port: streamPort,
      upstream: {
        scheme: 'tcp',
        nodes: { [`127.0.0.1:${a.port}`]: 1, [`127.0.0.1:${b.port}`]: 1 },
        checks: { active: { type: 'tcp', timeout: 1, healthy: { interval: 1, successes: 1 }, unhealthy: { interval: 1, tcp_failures: 1 } } },
      },
    });
    const health = gw.gw.health!;
    const status = (port: number) => health.get('stream_routes/s1')?.nodes.find((n) => n.port === port)?.status;
    await waitFor(() => status(a.port) === 'healthy' && status(b.port) === 'healthy', 5000, 20);
    expect(health.get('stream_routes/s1')?.type).toBe('tcp');

    await b.stop();
    await waitFor(() => status(b.port) === 'unhealthy', 6000, 20);
    for (let i = 0; i < 10; i++) expect(await roundTrip(`m${i}`)).toBe(`a:m${i}`);

    await b.start();
    await waitFor(() => status(b.port) === 'healthy', 6000, 20);
    const seen = new Set<string>();
    for (let i = 0; i < 10; i++) seen.add((await roundTrip('x')).split(':')[0]!);
    expect([...seen].sort()).toEqual(['a', 'b']);
  });
});
