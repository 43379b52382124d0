// Micro benchmark of the access log per request, writes included: (a) src/pipeline/access-log.ts as built
// (hand-built JSON line, cached ISO time, LineWriter with its default 16 KB buffer), (b) the same with
// `buffer: 0` (a write per line, or per completed write while one is in flight), (c) the pino logger call it
// replaced (same fields, isoTime, SonicBoom async), all appending to a temp file. A loaded gateway logs a few
// requests per event-loop turn and a paced one about one, so each runs at 1, 8 and 50 lines per turn. The
// figure is process CPU (every thread: fs.write runs on the libuv threadpool) per line, minus the same loop of
// turns without logging, median of batches; the cases alternate batch by batch so a noisy machine slows them
// alike. Each line is checked to parse as JSON with the same fields.
// `npx node bench/micro/access-log.ts [--smoke]`.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { AccessLog } from '../../src/pipeline/access-log.ts';
import { RequestContext } from '../../src/pipeline/context.ts';

function context(i: number): RequestContext {
  const ctx = new RequestContext({
    method: 'GET', path: `/api/v${i % 4}/items`, forwardPath: `/api/v${i % 4}/items`, query: 'page=2', rawUri: `/api/v${i % 4}/items?page=2`,
    headers: { host: 'api.example.com', 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) bench/1.0', referer: 'https://example.com/a?b="c"' },
    remoteAddr: '192.0.2.10', remotePort: 40000 + i, serverAddr: '127.0.0.1', serverPort: 9080, scheme: 'http', httpVersion: '1.1',
    host: 'api.example.com', tls: null,
  });
  ctx.routeId = `route-${i % 4}`;
  ctx.upstreamAddr = '10.0.0.1:80';
  ctx.upstreamStatus = 200;
  ctx.upstreamLatencyMs = 3.2;
  ctx.response.status = 200;
  return ctx;
}

interface Case {
  name: string;
  write(ctx: RequestContext, bytes: number): void;
  /** Called at the end of each batch, inside the measurement: lines still buffered are written. */
  flush(): Promise<void> | void;
}

function pinoCase(file: string): Case {
  const dest = pino.destination({ dest: file, sync: false });
  const out = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' }, dest);
  return {
    name: 'pino logger.info (SonicBoom)',
    write: (ctx, bytes) => {
      const rq = ctx.request;
      const ms = Number(process.hrtime.bigint() - ctx.startNs) / 1e6;
      out.info({
        remote_addr: ctx.peerAddr, host: rq.host, request_method: rq.method, request_uri: ctx.rawUri, server_protocol: `HTTP/${rq.httpVersion}`,
        status: ctx.response.status, body_bytes_sent: bytes, request_time: Math.round(ms * 1000) / 1e6, http_referer: ctx.headerValue('referer'),
        http_user_agent: ctx.headerValue('user-agent'), upstream_addr: ctx.upstreamAddr, upstream_status: ctx.upstreamStatus,
        upstream_response_time: ctx.upstreamLatencyMs === undefined ? undefined : Math.round(ctx.upstreamLatencyMs) / 1000,
        route_id: ctx.routeId || undefined, service_id: ctx.serviceId, consumer_name: ctx.consumer?.username,
      });
    },
    flush: () => {},
  };
}

function accessLogCase(name: string, file: string, buffer: number | undefined): Case {
  const log = new AccessLog({ path: file, buffer });
  return { name, write: (c, b) => log.write(c, b), flush: () => log.flush() };
}

const IDLE: Case = { name: 'no logging (the loop of turns alone)', write: () => {}, flush: () => {} };

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Process CPU ns (all threads) of `lines` lines written `perTurn` per event-loop turn. */
async function batch(c: Case, ctxs: RequestContext[], lines: number, perTurn: number): Promise<number> {
  const start = process.cpuUsage();
  for (let done = 0; done < lines; done += perTurn) {
    for (let i = 0; i < perTurn; i++) c.write(ctxs[(done + i) & 7]!, 1024);
    await new Promise((r) => setImmediate(r));
  }
  await c.flush();
  const u = process.cpuUsage(start);
  return (u.user + u.system) * 1000;
}

export async function run(smoke: boolean): Promise<{ name: string; nsPerOp: number }[]> {
  const ctxs = Array.from({ length: 8 }, (_, i) => context(i));
  const line = JSON.parse(AccessLog.line(ctxs[1]!, 1024));
  if (line.level !== 30 || line.route_id !== 'route-1' || line.http_referer !== 'https://example.com/a?b="c"' || typeof line.time !== 'string') {
    throw new Error(`unexpected access log line ${JSON.stringify(line)}`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), 'swy-bench-alog-'));
  try {
    const cases = [
      accessLogCase('access log, LineWriter buffer 16 KB (default)', path.join(dir, 'buffered.log'), undefined),
      accessLogCase('access log, LineWriter buffer 0', path.join(dir, 'unbuffered.log'), 0),
      pinoCase(path.join(dir, 'pino.log')),
    ];
    const [batches, lines] = smoke ? [3, 2000] : [15, 20000];
    const out: { name: string; nsPerOp: number }[] = [];
    for (const perTurn of [1, 8, 50]) {
      const samples = new Map<Case, number[]>([IDLE, ...cases].map((c) => [c, []]));
      for (const c of [IDLE, ...cases]) await batch(c, ctxs, lines, perTurn); // warm-up
      for (let k = 0; k < batches; k++) for (const [c, xs] of samples) xs.push(await batch(c, ctxs, lines, perTurn));
      const idle = median(samples.get(IDLE)!);
      for (const c of cases) out.push({ name: `${c.name}, ${perTurn}/turn`, nsPerOp: (median(samples.get(c)!) - idle) / lines });
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run(process.argv.includes('--smoke'))) console.log(`${r.name.padEnd(56)} ${Math.round(r.nsPerOp)} ns/line`);
}
