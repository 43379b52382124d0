// Micro benchmark of the access log per request: (a) src/pipeline/access-log.ts as built (hand-built JSON line,
// cached ISO time, LineWriter), (b) the pino logger call it replaced (same fields, isoTime, same destination
// kind), both writing to /dev/null. CPU ns per line, median of batches; each line is checked to parse as JSON
// with the same fields. `npx node bench/micro/access-log.ts [--smoke]`.
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

function pinoWriter(): (ctx: RequestContext, bytes: number) => void {
  const out = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' }, pino.destination({ dest: '/dev/null', sync: false }));
  return (ctx, bytes) => {
    const rq = ctx.request;
    const ms = Number(process.hrtime.bigint() - ctx.startNs) / 1e6;
    out.info({
      remote_addr: ctx.peerAddr, host: rq.host, request_method: rq.method, request_uri: ctx.rawUri, server_protocol: `HTTP/${rq.httpVersion}`,
      status: ctx.response.status, body_bytes_sent: bytes, request_time: Math.round(ms * 1000) / 1e6, http_referer: ctx.headerValue('referer'),
      http_user_agent: ctx.headerValue('user-agent'), upstream_addr: ctx.upstreamAddr, upstream_status: ctx.upstreamStatus,
      upstream_response_time: ctx.upstreamLatencyMs === undefined ? undefined : Math.round(ctx.upstreamLatencyMs) / 1000,
      route_id: ctx.routeId || undefined, service_id: ctx.serviceId, consumer_name: ctx.consumer?.username,
    });
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Lines per event-loop turn: a loaded gateway logs a few dozen requests per turn, then the writers flush. */
const PER_TURN = 50;

async function measure(fn: (ctx: RequestContext, bytes: number) => void, ctxs: RequestContext[], batches: number, perBatch: number): Promise<number> {
  const samples: number[] = [];
  for (let k = 0; k < batches; k++) {
    let ns = 0;
    for (let done = 0; done < perBatch; done += PER_TURN) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < PER_TURN; i++) fn(ctxs[i & 7]!, 1024);
      ns += Number(process.hrtime.bigint() - start);
      await new Promise((r) => setImmediate(r));
    }
    samples.push(ns / perBatch);
  }
  return median(samples);
}

export async function run(smoke: boolean): Promise<{ name: string; nsPerOp: number }[]> {
  const ctxs = Array.from({ length: 8 }, (_, i) => context(i));
  const line = JSON.parse(AccessLog.line(ctxs[1]!, 1024));
  if (line.level !== 30 || line.route_id !== 'route-1' || line.http_referer !== 'https://example.com/a?b="c"' || typeof line.time !== 'string') {
    throw new Error(`unexpected access log line ${JSON.stringify(line)}`);
  }
  const built = new AccessLog({ path: '/dev/null' });
  const viaPino = pinoWriter();
  const [batches, per] = smoke ? [3, 2000] : [15, 20000];
  const ours = (c: RequestContext, b: number) => built.write(c, b);
  await measure(ours, ctxs, 2, per);
  await measure(viaPino, ctxs, 2, per);
  return [
    { name: 'access log line (hand-built + LineWriter)', nsPerOp: await measure(ours, ctxs, batches, per) },
    { name: 'access log line via pino logger.info', nsPerOp: await measure(viaPino, ctxs, batches, per) },
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  for (const r of await run(process.argv.includes('--smoke'))) console.log(`${r.name.padEnd(44)} ${Math.round(r.nsPerOp)} ns/op`);
}
