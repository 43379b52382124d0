// Log sinks against real receivers on loopback: an HTTP server (http-logger), a TCP server (tcp-logger), a UDP
// socket (udp-logger), a file (file-logger) and rsyslogd (syslog over TCP, written to a file by rsyslog
// itself). Checks the wire format, batching (batch_max_size, inactive_timeout), log_format, include_*_body,
// and that a dead receiver does not slow requests down.
import dgram from 'node:dgram';
import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

interface HttpBatch {
  headers: http.IncomingHttpHeaders;
  body: string;
}

describe('log sinks', () => {
  let gw: TestGateway;
  let up: EchoServer;
  let dir: string;
  let cleanup: () => Promise<void>;
  const httpBatches: HttpBatch[] = [];
  const tcpPayloads: string[] = [];
  const udpPayloads: string[] = [];
  let httpSrv: http.Server;
  let tcpSrv: net.Server;
  let udpSock: dgram.Socket;
  let rsyslog: Peer | null = null;
  let rsyslogPort = 0;
  let deadPort = 0;

  const post = (p: string, body?: string) =>
    fetch(`${gw.url}${p}`, { method: body === undefined ? 'GET' : 'POST', body }).then(async (r) => ({ status: r.status, body: await r.text() }));

  beforeAll(async () => {
    ({ dir, cleanup } = await tempDir('swy-loggers-'));
    up = await startEcho('a');
    httpSrv = http.createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        httpBatches.push({ headers: req.headers, body });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => httpSrv.listen(0, '127.0.0.1', r));
    tcpSrv = net.createServer((s) => {
      let data = '';
      s.on('data', (d: Buffer) => (data += d.toString()));
      s.on('end', () => tcpPayloads.push(data));
    });
    await new Promise<void>((r) => tcpSrv.listen(0, '127.0.0.1', r));
    udpSock = dgram.createSocket('udp4');
    udpSock.on('message', (m) => udpPayloads.push(m.toString()));
    await new Promise<void>((r) => udpSock.bind(0, '127.0.0.1', r));

    rsyslogPort = await freePort();
    const conf = path.join(dir, 'rsyslog.conf');
    await writeFile(
      conf,
      [
        'module(load="imtcp")',
        `input(type="imtcp" address="127.0.0.1" port="${rsyslogPort}")`,
        '$WorkDirectory ' + dir,
        `*.* action(type="omfile" file="${dir}/syslog.out" template="RSYSLOG_SyslogProtocol23Format")`,
        '',
      ].join('\n'),
    );
    rsyslog = startPeer('/usr/sbin/rsyslogd', ['-n', '-f', conf, '-i', path.join(dir, 'rsyslog.pid')]);
    await waitFor(
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect(rsyslogPort, '127.0.0.1', () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        }),
      10_000,
      100,
    );

    gw = await startTestGateway();
    deadPort = await freePort();
    const upstream = { nodes: { [up.addr]: 1 } };
    const fast = { batch_max_size: 2, inactive_timeout: 1 };
    await gw.put('/routes/http', {
      uri: '/h/*',
      upstream,
      plugins: { 'http-logger': { uri: `http://127.0.0.1:${(httpSrv.address() as AddressInfo).port}/logs?x=1`, auth_header: 'Bearer t', include_req_body: true, include_resp_body: true, ...fast } },
    });
    await gw.put('/routes/tcp', {
      uri: '/t/*',
      upstream,
      plugins: { 'tcp-logger': { host: '127.0.0.1', port: (tcpSrv.address() as AddressInfo).port, log_format: { host: '$host', client: '$remote_addr', status: '$status', fixed: 'literal' }, ...fast } },
    });
    await gw.put('/routes/udp', { uri: '/u/*', upstream, plugins: { 'udp-logger': { host: '127.0.0.1', port: (udpSock.address() as AddressInfo).port, batch_max_size: 1 } } });
    await gw.put('/routes/file', { uri: '/f/*', upstream, plugins: { 'file-logger': { path: path.join(dir, 'access.json') } } });
    await gw.put('/routes/syslog', { uri: '/s/*', upstream, plugins: { syslog: { host: '127.0.0.1', port: rsyslogPort, batch_max_size: 1 } } });
    await gw.put('/routes/dead', {
      uri: '/d/*',
      upstream,
      plugins: { 'http-logger': { uri: `http://127.0.0.1:${deadPort}/`, batch_max_size: 10, inactive_timeout: 1, max_retry_count: 1, retry_delay: 0, timeout: 1 } },
    });
  }, 30_000);
  afterAll(async () => {
    await gw?.close();
    await rsyslog?.stop();
    httpSrv?.close();
    tcpSrv?.close();
    udpSock?.close();
    await up?.close();
    await cleanup?.();
  });

  it('http-logger: batches of batch_max_size as a JSON array, then the rest after inactive_timeout', async () => {
    for (const i of [1, 2, 3]) expect((await post(`/h/${i}?q=${i}`, `body-${i}`)).status).toBe(200);
    await waitFor(() => httpBatches.length >= 2, 5000, 20);
    const [first, second] = httpBatches;
    expect(first!.headers['content-type']).toBe('application/json');
    expect(first!.headers.authorization).toBe('Bearer t');
    const batch = JSON.parse(first!.body) as any[];
    expect(batch).toHaveLength(2);
    expect(batch[0].route_id).toBe('http');
    expect(batch[0].request.method).toBe('POST');
    expect(batch[0].request.uri).toBe('/h/1?q=1');
    expect(batch[0].request.querystring).toEqual({ q: '1' });
    expect(batch[0].request.body).toBe('body-1');
    expect(batch[0].response.status).toBe(200);
    expect(JSON.parse(batch[0].response.body).url).toBe('/h/1?q=1');
    expect(batch[0].upstream).toBe(up.addr);
    expect(typeof batch[0].latency).toBe('number');
    expect(batch[0].server.version).toMatch(/\d/);
    // The third entry alone: one object, not an array.
    const single = JSON.parse(second!.body);
    expect(Array.isArray(single)).toBe(false);
    expect(single.request.uri).toBe('/h/3?q=3');
  });

  it('tcp-logger with log_format; udp-logger; file-logger; syslog through rsyslogd', async () => {
    expect((await post('/t/1')).status).toBe(200);
    expect((await post('/t/2')).status).toBe(200);
    expect((await post('/u/1')).status).toBe(200);
    expect((await post('/f/1')).status).toBe(200);
    expect((await post('/s/1')).status).toBe(200);
    await waitFor(() => tcpPayloads.length >= 1 && udpPayloads.length >= 1, 5000, 20);
    expect(JSON.parse(tcpPayloads[0]!)).toEqual([
      { host: '127.0.0.1', client: '127.0.0.1', status: 200, fixed: 'literal', route_id: 'tcp' },
      { host: '127.0.0.1', client: '127.0.0.1', status: 200, fixed: 'literal', route_id: 'tcp' },
    ]);
    expect(JSON.parse(udpPayloads[0]!).request.uri).toBe('/u/1');
    const line = await waitFor(async () => (await readFile(path.join(dir, 'access.json'), 'utf8').catch(() => '')).split('\n')[0] || null, 5000, 20);
    expect(JSON.parse(line!).route_id).toBe('file');
    const sys = await waitFor(async () => (await readFile(path.join(dir, 'syslog.out'), 'utf8').catch(() => '')).split('\n').find((l) => l.includes('"route_id":"syslog"')) ?? null, 5000, 50);
    // rsyslog re-emits RFC 5424 with the fields it parsed: PRI 46 (syslog.info), hostname, app apisix, our pid.
    expect(sys).toMatch(new RegExp(`^<46>1 \\S+ 127\\.0\\.0\\.1 apisix ${process.pid} - - `));
  });

  it('a dead receiver (connection refused, retried once): requests stay fast', async () => {
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      expect((await post(`/d/${i}`)).status).toBe(200);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    // Loose: the sink's failures (connection refused, retried once) never sit in the request path.
    expect(times[Math.floor(times.length * 0.9)]).toBeLessThan(500);
  });
});
