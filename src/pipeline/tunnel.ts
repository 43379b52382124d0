// The tunnel terminal of the pipeline (WebSocket and other HTTP/1.1 upgrades on routes with
// enable_websocket): pick and connect with retries on connect failures, before_proxy, replay the upgrade
// request, read the upstream's response head (its real status is what gets logged and reported to passive
// health), run header_filter on it, then either splice the two connections (101) or relay the refusal.
// Retries follow src/upstream/proxy.ts's retryAllowed: up to `retries` more endpoints within `retry_timeout`,
// never after the client left. A connect failure or connect timeout is all that can fail here
// before anything is sent, and dispatch classifies both as retryable; once the upgrade request went out (the
// client's connection is taken over then), an upstream that closes without a head is not retried.
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import { catalogReply } from '../errors.ts';
import type { HeaderMap } from '../plugin/context.ts';
import { runHeaderFilter, runPhase } from '../plugin/runner.ts';
import type { Endpoint } from '../upstream/balancer.ts';
import { retryAllowed, retryDeadline } from '../upstream/proxy.ts';
import { openTunnel } from '../upstream/tunnel.ts';
import type { UpstreamRuntime } from '../upstream/upstream.ts';
import { publishUpstreamError, upstreamError } from './channels.ts';
import { rawAnswer } from './raw-answer.ts';
import type { HttpPipeline } from './pipeline.ts';
import type { Transaction } from './transaction.ts';

/** Largest upstream response head accepted on a tunnel. */
const MAX_HEAD = 16 * 1024;

export async function runTunnel(p: HttpPipeline, tx: Transaction, upstream: UpstreamRuntime): Promise<void> {
  const ctx = tx.ctx;
  const outcomes = p.opts.outcomes;
  let ranBeforeProxy = false;
  const deadline = retryDeadline(upstream);
  for (let attempt = 0; ; attempt++) {
    const pick = upstream.pick(tx.pickCtx);
    if (!pick.ok) {
      if (attempt === 0) return p.local(tx, tx.chain, catalogReply('SWY_ERR_NO_UPSTREAM_NODE'));
      break;
    }
    const ep = pick.endpoint;
    tx.attempting(ep);
    if (!ranBeforeProxy) {
      ranBeforeProxy = true;
      const r = await runPhase(tx.rt.global, tx.chain, 'before_proxy', ctx);
      if (r) return p.local(tx, tx.chain, r);
    }
    if (tx.closed) return tx.finish();
    const host = upstream.hostHeader(ep, hostHeaderOf(tx));
    const conn = await openTunnel(upstream, ep, tx.connectTimeoutMs, host);
    if (!conn.ok) {
      outcomes?.failure(upstream, ep, conn.kind);
      if (tx.pickCtx.tried === null) tx.pickCtx.tried = new Set();
      tx.pickCtx.tried.add(ep.key);
      tx.failedStatuses += `${tx.failedStatuses === '' ? '' : ', '}${conn.kind === 'timeout' ? 504 : 502}`;
      p.logger.warn({ route: ctx.routeId, upstream: ep.key, kind: conn.kind, msg: conn.message }, 'upstream tunnel connect failed');
      if (upstreamError.hasSubscribers) publishUpstreamError(tx, ep, { kind: conn.kind, message: conn.message, retryable: true });
      if (!retryAllowed(upstream, attempt, deadline, tx.closed)) break;
      continue;
    }
    if (tx.closed) {
      conn.socket.destroy();
      return tx.finish();
    }
    return splice(p, tx, upstream, ep, conn.socket, host);
  }
  if (tx.closed) return tx.finish();
  const timeout = tx.failedStatuses.endsWith('504');
  ctx.upstreamStatus = timeout ? 504 : 502;
  return p.local(tx, tx.chain, {
    ...catalogReply(timeout ? 'SWY_ERR_UPSTREAM_TIMEOUT' : 'SWY_ERR_UPSTREAM_UNAVAILABLE'),
    headers: { 'x-apisix-upstream-status': tx.failedStatuses },
  });
}

function hostHeaderOf(tx: Transaction): string {
  const h = tx.ctx.request.headers.host;
  return (Array.isArray(h) ? h[0] : h) ?? tx.ctx.request.host;
}

function serializeHead(first: string, headers: HeaderMap): string {
  let out = `${first}\r\n`;
  for (const k in headers) {
    const v = headers[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out += `${k}: ${x}\r\n`;
    else out += `${k}: ${v}\r\n`;
  }
  return `${out}\r\n`;
}

/** Parses an HTTP/1.1 response head; null when malformed. */
function parseHead(text: string): { status: number; headers: HeaderMap } | null {
  const lines = text.split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (m === null) return null;
  const headers: HeaderMap = {};
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const k = line.slice(0, colon).trim().toLowerCase();
    const v = line.slice(colon + 1).trim();
    const prev = headers[k];
    headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return { status: Number(m[1]), headers };
}

function splice(p: HttpPipeline, tx: Transaction, upstream: UpstreamRuntime, ep: Endpoint, up: Socket, host: string): void {
  const ctx = tx.ctx;
  const rq = ctx.request;
  const headers = tx.upstreamRequestHeaders(false, true);
  headers.host = host;
  const path = rq.path === ctx.originalPath ? ctx.rawPath : rq.path;
  const target = rq.query === '' ? path : `${path}?${rq.query}`;
  up.write(serializeHead(`${rq.method} ${target} HTTP/1.1`, headers));
  const taken = tx.down!.takeover?.() ?? null;
  if (taken === null) {
    up.destroy();
    return p.local(tx, tx.chain, catalogReply('SWY_ERR_INTERNAL'));
  }
  const client = taken.socket;
  if (taken.head.length > 0) up.write(taken.head);
  upstream.begin(ep);
  const began = performance.now();
  let buf: Buffer = Buffer.alloc(0);
  let reported = false;
  const readTimer = setTimeout(() => up.destroy(new Error('upstream read timeout')), tx.readTimeoutMs);
  const report = (failed: boolean) => {
    if (reported) return;
    reported = true;
    upstream.end(ep, { latencyMs: performance.now() - began, failed });
  };
  const onHeadData = (chunk: Buffer) => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    const end = buf.indexOf('\r\n\r\n');
    if (end < 0) {
      if (buf.length > MAX_HEAD) up.destroy(new Error('upstream response head too large'));
      return;
    }
    up.off('data', onHeadData);
    up.pause();
    clearTimeout(readTimer);
    const head = parseHead(buf.subarray(0, end).toString('latin1'));
    const rest = buf.subarray(end + 4);
    if (head === null) {
      up.destroy(new Error('malformed upstream response head'));
      return;
    }
    ctx.upstreamLatencyMs = performance.now() - began;
    ctx.upstreamStatus = head.status;
    p.opts.outcomes?.status(upstream, ep, head.status);
    const resp = ctx.response;
    resp.status = head.status;
    for (const k in head.headers) resp.headers[k] = head.headers[k];
    runHeaderFilter(tx.rt.global, tx.chain, ctx);
    if (head.status !== 101) {
      // A refused upgrade: relay the answer and close both sides once the upstream is done.
      resp.headers['connection'] = 'close';
    }
    client.write(serializeHead(`HTTP/1.1 ${resp.status} ${STATUS_CODES[resp.status] ?? ''}`, resp.headers));
    if (rest.length > 0) client.write(rest);
    client.pipe(up);
    up.pipe(client);
    up.resume();
  };
  up.on('data', onHeadData);
  up.setTimeout(tx.readTimeoutMs, () => up.destroy());
  up.on('error', () => client.destroy());
  client.on('error', () => up.destroy());
  up.once('close', () => {
    clearTimeout(readTimer);
    if (ctx.upstreamStatus === undefined) {
      // No head came back: the client gets the catalog's 502 on the raw connection (already taken over).
      p.opts.outcomes?.failure(upstream, ep, 'reset');
      report(true);
      ctx.response.status = 502;
      ctx.upstreamStatus = 502;
      if (!client.destroyed) client.end(rawAnswer('SWY_ERR_UPSTREAM_UNAVAILABLE'));
    }
    client.destroy();
  });
  client.once('close', () => {
    up.destroy();
    report(false);
    tx.bytes = (client as { bytesWritten?: number }).bytesWritten ?? 0;
    tx.finish();
  });
}
