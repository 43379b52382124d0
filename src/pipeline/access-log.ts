// Access log: one JSON line per request, fields named like APISIX's default access log. The line is built by
// hand (fixed key order, strings escaped only when they need it, the ISO time cached per millisecond) and
// queued on a LineWriter (one write per event-loop turn); see bench/micro/access-log.ts for the cost next to
// the pino logger call it replaced. Lines keep pino's shape ({"level":30,"time":...}). Application logs stay on
// pino (src/observability/logger.ts).
import { LineWriter } from '../observability/line-writer.ts';
import type { RequestContext } from './context.ts';

/** Characters JSON needs escaped, plus surrogates (JSON.stringify turns lone ones into \u escapes). */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

let isoMs = 0;
let iso = '';

function isoTime(): string {
  const now = Date.now();
  if (now !== isoMs) {
    isoMs = now;
    iso = new Date(now).toISOString();
  }
  return iso;
}

export class AccessLog {
  private readonly dest: LineWriter;

  constructor(path: string) {
    this.dest = new LineWriter(path);
  }

  /** The line for one exchange (exported shape for tests: JSON, one line, pino-compatible). */
  static line(ctx: RequestContext, bytes: number): string {
    // hot path
    const rq = ctx.request;
    const ms = Number(process.hrtime.bigint() - ctx.startNs) / 1e6;
    let l = `{"level":30,"time":"${isoTime()}","remote_addr":${str(ctx.peerAddr)},"host":${str(rq.host)},"request_method":${str(rq.method)}` +
      `,"request_uri":${str(ctx.rawUri)},"server_protocol":"HTTP/${rq.httpVersion}","status":${ctx.response.status}` +
      `,"body_bytes_sent":${bytes},"request_time":${Math.round(ms * 1000) / 1e6}`;
    const referer = ctx.headerValue('referer');
    if (referer !== undefined) l += `,"http_referer":${str(referer)}`;
    const ua = ctx.headerValue('user-agent');
    if (ua !== undefined) l += `,"http_user_agent":${str(ua)}`;
    if (ctx.upstreamAddr !== undefined) l += `,"upstream_addr":${str(ctx.upstreamAddr)}`;
    if (ctx.upstreamStatus !== undefined) l += `,"upstream_status":${ctx.upstreamStatus}`;
    if (ctx.upstreamLatencyMs !== undefined) l += `,"upstream_response_time":${Math.round(ctx.upstreamLatencyMs) / 1000}`;
    if (ctx.routeId) l += `,"route_id":${str(ctx.routeId)}`;
    if (ctx.serviceId !== undefined) l += `,"service_id":${str(ctx.serviceId)}`;
    const consumer = ctx.consumer?.username;
    if (consumer !== undefined) l += `,"consumer_name":${str(consumer)}`;
    return `${l}}\n`;
  }

  write(ctx: RequestContext, bytes: number): void {
    this.dest.write(AccessLog.line(ctx, bytes));
  }

  flush(): void {
    this.dest.flushSync();
  }
}
