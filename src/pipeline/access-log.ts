// Access log: one line per request, asynchronous (pino with a non-blocking destination), fields named like
// APISIX's default access log.
import pino from 'pino';
import type { RequestContext } from './context.ts';

export class AccessLog {
  private readonly out: pino.Logger;
  constructor(path: string) {
    const dest = pino.destination({ dest: path === 'stdout' ? 1 : path, sync: false, mkdir: true });
    this.out = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime, messageKey: 'msg' }, dest);
  }

  write(ctx: RequestContext, bytes: number): void {
    const rq = ctx.request;
    const ms = Number(process.hrtime.bigint() - ctx.startNs) / 1e6;
    this.out.info({
      remote_addr: ctx.peerAddr,
      host: rq.host,
      request_method: rq.method,
      request_uri: ctx.rawUri,
      server_protocol: `HTTP/${rq.httpVersion}`,
      status: ctx.response.status,
      body_bytes_sent: bytes,
      request_time: Math.round(ms * 1000) / 1e6,
      http_referer: ctx.headerValue('referer'),
      http_user_agent: ctx.headerValue('user-agent'),
      upstream_addr: ctx.upstreamAddr,
      upstream_status: ctx.upstreamStatus,
      upstream_response_time: ctx.upstreamLatencyMs === undefined ? undefined : Math.round(ctx.upstreamLatencyMs) / 1000,
      route_id: ctx.routeId || undefined,
      service_id: ctx.serviceId,
      consumer_name: ctx.consumer?.username,
    });
  }

  flush(): void {
    this.out.flush();
  }
}
