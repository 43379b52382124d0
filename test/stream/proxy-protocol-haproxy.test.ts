// PROXY protocol v1 and v2 from an independent encoder: haproxy (send-proxy / send-proxy-v2 on its backend
// server line) in front of a gateway TCP stream listener with proxy_protocol enabled. The gateway forwards a
// v1 header of its own to a recording upstream, so the upstream sees the source the gateway parsed from
// haproxy's header: the real client's address and port, which the test knows from its own socket. Routing by
// remote_addr proves the parsed source (not haproxy's loopback peer address) is the session's remote_addr.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { freePort } from '../helpers/ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from '../helpers/proc.ts';

let gw: TestGateway;
let haproxy: Peer;
let tmp: { dir: string; cleanup(): Promise<void> };
let upstream: net.Server;
let streamPort = 0;
/** A second listener on [::1], so IPv6 sessions get a TCP6 header (not UNKNOWN) towards the upstream. */
let streamPort6 = 0;
/** haproxy frontends by name: the header each one's backend sends. */
const fe: Record<'v1' | 'v2' | 'v2tlv' | 'v1six' | 'v2six', number> = { v1: 0, v2: 0, v2tlv: 0, v1six: 0, v2six: 0 };
const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy'].find((p) => {
  try {
    execFileSync(p, ['-v'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
});
const hasV6 = (() => {
  try {
    const s = net.createServer().listen(0, '::1');
    s.close();
    return true;
  } catch {
    return false;
  }
})();

/**
 * The recording upstream: reads the gateway's PROXY v1 line, then answers `<src ip> <src port>|<payload>`
 * for everything that follows (so the client sees what the gateway parsed).
 */
function recorder(): net.Server {
  return net.createServer((s) => {
    let head: string | null = null;
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      if (head !== null) return void s.write(d);
      buf = Buffer.concat([buf, d]);
      const lf = buf.indexOf('\r\n');
      if (lf < 0) return;
      const m = /^PROXY TCP[46] (\S+) \S+ (\d+) \d+$/.exec(buf.subarray(0, lf).toString('latin1'));
      head = m ? `${m[1]} ${m[2]}` : `bad:${buf.subarray(0, lf).toString('latin1')}`;
      s.write(`${head}|`);
      const rest = buf.subarray(lf + 2);
      if (rest.length > 0) s.write(rest);
    });
    s.on('end', () => s.end());
    s.on('error', () => undefined);
  });
}

/** Connects through haproxy from `localAddress`, sends `payload` and half-closes, collects the answer until close. */
function through(port: number, host: string, localAddress: string, payload: Buffer): Promise<{ data: Buffer; localPort: number; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host, localAddress });
    const chunks: Buffer[] = [];
    let localPort = 0;
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), localPort, closed });
    };
    const timer = setTimeout(() => finish(false), 8000);
    sock.on('connect', () => {
      localPort = sock.localPort ?? 0;
      sock.end(payload);
    });
    sock.on('data', (d: Buffer) => chunks.push(d));
    sock.on('close', () => finish(true));
    sock.on('error', () => undefined);
  });
}

beforeAll(async () => {
  if (HAPROXY === undefined) return;
  tmp = await tempDir('swy-haproxy-');
  upstream = recorder();
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
  const upPort = (upstream.address() as net.AddressInfo).port;
  streamPort = await freePort();
  streamPort6 = hasV6 ? await freePort('::1') : 0;
  const listeners = [{ addr: `127.0.0.1:${streamPort}`, proxy_protocol: true, proxy_protocol_to_upstream: 'v1' }];
  if (hasV6) listeners.push({ addr: `[::1]:${streamPort6}`, proxy_protocol: true, proxy_protocol_to_upstream: 'v1' });
  gw = await startTestGateway({ config: { apisix: { proxy_mode: 'http&stream', stream_proxy: { tcp: listeners } } } });
  // Only clients announced as 127.0.0.5, 127.0.0.7 or ::1 have a route; haproxy itself connects from 127.0.0.1.
  for (const [id, addr] of [['pp5', '127.0.0.5'], ['pp7', '127.0.0.7'], ['pp6', '::1']]) {
    await gw.put(`/stream_routes/${id}`, { remote_addr: addr, upstream: { nodes: { [`127.0.0.1:${upPort}`]: 1 } } });
  }

  for (const k of Object.keys(fe) as (keyof typeof fe)[]) fe[k] = await freePort();
  const server = (opts: string, at = `127.0.0.1:${streamPort}`) => `  server gw ${at} ${opts}`;
  const cfg = [
    'global',
    '  maxconn 200',
    'defaults',
    '  mode tcp',
    '  timeout connect 3s',
    '  timeout client 10s',
    '  timeout server 10s',
    `frontend v1\n  bind 127.0.0.1:${fe.v1}\n  default_backend v1`,
    `backend v1\n${server('send-proxy')}`,
    `frontend v2\n  bind 127.0.0.1:${fe.v2}\n  default_backend v2`,
    `backend v2\n${server('send-proxy-v2')}`,
    // TLVs after the address block (unique id, here the client address) must be skipped by the parser.
    `frontend v2tlv\n  bind 127.0.0.1:${fe.v2tlv}\n  unique-id-format %{+X}o\\ %ci:%cp_%fi:%fp_%Ts_%rt\n  default_backend v2tlv`,
    `backend v2tlv\n${server('send-proxy-v2 proxy-v2-options unique-id')}`,
    ...(hasV6
      ? [
          `frontend v1six\n  bind [::1]:${fe.v1six}\n  default_backend v1six`,
          `backend v1six\n${server('send-proxy', `[::1]:${streamPort6}`)}`,
          `frontend v2six\n  bind [::1]:${fe.v2six}\n  default_backend v2six`,
          `backend v2six\n${server('send-proxy-v2', `[::1]:${streamPort6}`)}`,
        ]
      : []),
  ].join('\n');
  const file = path.join(tmp.dir, 'haproxy.cfg');
  writeFileSync(file, cfg + '\n');
  execFileSync(HAPROXY, ['-c', '-q', '-f', file]);
  haproxy = startPeer(HAPROXY, ['-db', '-f', file]);
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(fe.v2, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    10_000,
    50,
  );
}, 60_000);

afterAll(async () => {
  await haproxy?.stop();
  await gw?.close();
  upstream?.close();
  await tmp?.cleanup();
});

// A missing haproxy fails here instead of skipping the suite silently (npm test installs it).
it('has haproxy (scripts/test.mjs installs the Debian package)', () => {
  expect(HAPROXY, 'haproxy not found: apt-get install haproxy').toBeDefined();
});

describe.skipIf(HAPROXY === undefined)('PROXY protocol headers sent by haproxy', () => {
  for (const [name, label] of [['v1', 'send-proxy (v1)'], ['v2', 'send-proxy-v2'], ['v2tlv', 'send-proxy-v2 with a unique-id TLV']] as const) {
    it(`${label}: the client's address and port become remote_addr; the stream after the header is intact`, async () => {
      const payload = Buffer.concat([Buffer.from('hello '), Buffer.alloc(64 * 1024, 0x5a), Buffer.from(' end')]);
      for (const from of ['127.0.0.5', '127.0.0.7']) {
        const r = await through(fe[name], '127.0.0.1', from, payload);
        const text = r.data.toString('latin1');
        const bar = text.indexOf('|');
        expect(text.slice(0, bar), `${name} from ${from}`).toBe(`${from} ${r.localPort}`);
        expect(r.closed).toBe(true);
        expect(r.data.length - bar - 1).toBe(payload.length);
        expect(r.data.subarray(bar + 1).equals(payload)).toBe(true);
      }
    });
  }

  it.skipIf(!hasV6)('IPv6 clients: TCP6 (v1) and AF_INET6 (v2) headers parse to ::1 and the client port', async () => {
    for (const name of ['v1six', 'v2six'] as const) {
      const r = await through(fe[name], '::1', '::1', Buffer.from('ping'));
      const text = r.data.toString('latin1');
      expect(text.slice(0, text.indexOf('|')), name).toBe(`::1 ${r.localPort}`);
      expect(text.endsWith('|ping')).toBe(true);
    }
  });

  it('a client announced with an address no route accepts is closed (the header decides, not the TCP peer)', async () => {
    for (const name of ['v1', 'v2'] as const) {
      const r = await through(fe[name], '127.0.0.1', '127.0.0.9', Buffer.from('hello'));
      expect(r.data.length, name).toBe(0);
      expect(r.closed).toBe(true);
    }
  });

  it('a connection that skips haproxy (no PROXY header) is closed before reaching the upstream', async () => {
    const r = await through(streamPort, '127.0.0.1', '127.0.0.5', Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    expect(r.data.length).toBe(0);
    expect(r.closed).toBe(true);
  });
});
