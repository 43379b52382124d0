// The HTTP connection statistics count open connections from the servers that accepted them: an accepted socket
// carries no listener of theirs (an idle keep-alive connection is held by the ten thousand, issue 19), and the
// active count still follows real sockets opening and closing.
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpStats } from '../../src/observability/http-stats.ts';
import { requestEnd, requestStart } from '../../src/pipeline/channels.ts';
import { waitFor } from '../helpers/proc.ts';

let server: net.Server;
let port = 0;
const accepted: net.Socket[] = [];

function connect(): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });
}

beforeAll(async () => {
  httpStats.start();
  server = net.createServer((s) => accepted.push(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as net.AddressInfo).port;
  // The port counts once the pipeline has served a request on it (what an HTTP listener's first request does).
  const tx = { req: { serverPort: port } };
  requestStart.publish(tx);
  requestEnd.publish(tx);
});

afterAll(async () => {
  for (const s of accepted) s.destroy();
  await new Promise((r) => server.close(r));
});

describe('HTTP connection statistics', () => {
  it('attach nothing to an accepted socket and follow sockets opening and closing', async () => {
    const active0 = httpStats.view().active;
    const accepted0 = httpStats.view().accepted;
    const clients = await Promise.all([connect(), connect(), connect()]);
    await waitFor(() => accepted.length === 3, 5000, 10);
    // The channel message follows the server's 'connection' event: let it run.
    await new Promise((r) => setImmediate(r));
    for (const s of accepted) expect(s.listenerCount('close')).toBe(0);
    expect(httpStats.view().active - active0).toBe(3);
    expect(httpStats.view().accepted - accepted0).toBe(3);

    for (const c of clients) c.destroy();
    for (const s of accepted) s.destroy();
    await waitFor(() => httpStats.view().active === active0, 5000, 10);
    expect(httpStats.view().accepted - accepted0).toBe(3);
  });
});
