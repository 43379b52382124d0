// grpc / grpcs probes (Switchyard extension; Envoy's gRPC health checker is the model): one unary
// grpc.health.v1.Health/Check call on a fresh HTTP/2 connection (h2c for `grpc`, TLS with ALPN h2 for `grpcs`),
// never pooled, closed once answered. HealthCheckRequest.service is `checks.active.grpc_service` ('' = the
// server as a whole). An answer with grpc-status 0 and status SERVING is a success; NOT_SERVING, UNKNOWN,
// SERVICE_UNKNOWN, any non-zero grpc-status (UNIMPLEMENTED when the server has no health service, NOT_FOUND for
// an unknown service) or a non-200 / non-gRPC answer are http failures; connection and protocol errors are
// tcp failures; no complete answer within `timeout` is a timeout. The messages come from the official
// grpc/health/v1/health.proto (the two messages this probe needs), encoded by protobufjs.
import http2 from 'node:http2';
import net from 'node:net';
import protobuf from 'protobufjs';
import type { ActiveConf } from './conf.ts';
import { failure, probeHeaders, SUCCESS, type ProbeRegistry, type ProbeResult, type ProbeTarget } from './probe.ts';

const HEALTH_PROTO = `
syntax = "proto3";
package grpc.health.v1;
message HealthCheckRequest { string service = 1; }
message HealthCheckResponse {
  enum ServingStatus { UNKNOWN = 0; SERVING = 1; NOT_SERVING = 2; SERVICE_UNKNOWN = 3; }
  ServingStatus status = 1;
}
`;

const root = protobuf.parse(HEALTH_PROTO, { keepCase: true }).root;
const RequestType = root.lookupType('grpc.health.v1.HealthCheckRequest');
const ResponseType = root.lookupType('grpc.health.v1.HealthCheckResponse');
const ServingStatus = root.lookupEnum('grpc.health.v1.HealthCheckResponse.ServingStatus');
const SERVING = ServingStatus.values.SERVING!;
const PATH = '/grpc.health.v1.Health/Check';
/** A HealthCheckResponse is two bytes; anything far larger is not one. */
const MAX_RESPONSE = 64 * 1024;

/** The request body: one uncompressed gRPC message frame. */
function requestFrame(service: string): Buffer {
  const msg = RequestType.encode(RequestType.fromObject({ service })).finish();
  const out = Buffer.allocUnsafe(5 + msg.length);
  out[0] = 0;
  out.writeUInt32BE(msg.length, 1);
  out.set(msg, 5);
  return out;
}

/** Decodes the first message frame of a response body; null when it is not one uncompressed message. */
function servingStatusOf(body: Buffer): number | null {
  if (body.length < 5 || body[0] !== 0) return null;
  const len = body.readUInt32BE(1);
  if (body.length < 5 + len) return null;
  try {
    const msg = ResponseType.toObject(ResponseType.decode(body.subarray(5, 5 + len)), { enums: Number, defaults: true });
    return typeof msg.status === 'number' ? msg.status : null;
  } catch {
    return null;
  }
}

/** grpc-message is percent-encoded; a malformed one is shown as sent (this runs in a stream listener). */
function messageText(m: string): string {
  try {
    return decodeURIComponent(m);
  } catch {
    return m;
  }
}

function statusName(n: number): string {
  return ServingStatus.valuesById[n] ?? String(n);
}

function judge(httpStatus: number, grpcStatus: string | undefined, grpcMessage: string | undefined, body: Buffer): ProbeResult {
  if (httpStatus !== 200) return failure('http', `status ${httpStatus}`);
  if (grpcStatus === undefined) return failure('http', 'no grpc-status');
  if (grpcStatus !== '0') return failure('http', `grpc-status ${grpcStatus}${grpcMessage ? ` ${messageText(grpcMessage)}` : ''}`);
  const serving = servingStatusOf(body);
  if (serving === null) return failure('http', 'malformed HealthCheckResponse');
  return serving === SERVING ? SUCCESS : failure('http', `health ${statusName(serving)}`);
}

function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function check(tls: boolean, target: ProbeTarget, conf: ActiveConf): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const authority = `${net.isIPv6(target.ip) ? `[${target.ip}]` : target.ip}:${target.port}`;
    const opts: http2.SecureClientSessionOptions = {};
    if (tls) {
      opts.rejectUnauthorized = conf.verifyCertificate;
      if (net.isIP(target.hostname) === 0) opts.servername = target.hostname;
    }
    const session = http2.connect(`${tls ? 'https' : 'http'}://${authority}`, opts);
    let settled = false;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      session.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done(failure('timeout', 'probe timeout')), conf.timeout * 1000);
    session.on('error', (err) => done(failure('tcp', err.message)));
    // Configured headers go first so that none of them can replace the call's own (a different content-type or
    // path would not be a health check).
    const headers: Record<string, string> = {};
    probeHeaders(conf.reqHeaders, headers, true);
    headers[':method'] = 'POST';
    headers[':path'] = PATH;
    headers[':authority'] = target.hostname === target.ip ? authority : target.hostname;
    headers['content-type'] = 'application/grpc';
    headers.te = 'trailers';
    headers['user-agent'] ??= 'switchyard-healthcheck';
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers);
    } catch (err) {
      // Whatever node still refuses is a failed probe, never a rejection.
      return done(failure('tcp', (err as Error).message));
    }
    let httpStatus = 0;
    let headStatus: string | undefined;
    let headMessage: string | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('response', (h) => {
      httpStatus = Number(h[':status'] ?? 0);
      headStatus = first(h['grpc-status']);
      headMessage = first(h['grpc-message']);
    });
    stream.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_RESPONSE) return done(failure('http', 'response too large'));
      chunks.push(c);
    });
    let trailers: http2.IncomingHttpHeaders | null = null;
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('end', () => {
      const t = trailers as http2.IncomingHttpHeaders | null;
      const gs = first(t?.['grpc-status']) ?? headStatus;
      const gm = first(t?.['grpc-message']) ?? headMessage;
      done(judge(httpStatus, gs, gm, Buffer.concat(chunks)));
    });
    stream.on('error', (err) => done(failure('tcp', err.message)));
    // Reset or GOAWAY without an 'error' (RST_STREAM NO_ERROR): no answer, not a timeout.
    stream.on('close', () => done(failure('tcp', 'stream closed before the answer')));
    stream.end(requestFrame(conf.grpcService));
  });
}

export function setup(registry: ProbeRegistry): void {
  registry.register('grpc', (t, c) => check(false, t, c));
  registry.register('grpcs', (t, c) => check(true, t, c));
}
