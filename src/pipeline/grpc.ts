// gRPC facts the HTTP pipeline needs: which requests are gRPC, and how an answer the gateway gives itself (no
// route, no healthy node, upstream timeout, a plugin's rejection) reaches a gRPC client. A gRPC client cannot
// read an HTML or JSON error body; like Envoy's local replies it gets a trailers-only response: HTTP 200,
// content-type application/grpc, grpc-status mapped from the HTTP status, grpc-message with the reason, no body.
import type { HeaderMap } from '../plugin/context.ts';
import type { PluginResponse } from '../plugin/plugin.ts';
import { STATUS_TEXT } from './respond.ts';

/** gRPC status codes (grpc/doc/statuscodes.md). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

const GRPC_CT = 'application/grpc';

/**
 * A gRPC request (not gRPC-Web): content-type `application/grpc`, `application/grpc+<codec>` or with
 * parameters (`application/grpc;...`). gRPC-Web (`application/grpc-web*`) is the grpc-web plugin's business.
 */
export function isGrpcRequest(headers: HeaderMap): boolean {
  // hot path
  const v = headers['content-type'];
  const ct = Array.isArray(v) ? v[0] : v;
  // 'g' of 'grpc' (either case) at offset 12 rules out nearly every other type before any copy.
  if (ct === undefined || ct.length < GRPC_CT.length || (ct.charCodeAt(12) | 0x20) !== 0x67) return false;
  if (ct.length === GRPC_CT.length) return ct.toLowerCase() === GRPC_CT;
  const next = ct.charCodeAt(GRPC_CT.length);
  // '+' (codec suffix) or ';' (parameters); '-' would be grpc-web.
  return (next === 43 || next === 59) && ct.slice(0, GRPC_CT.length).toLowerCase() === GRPC_CT;
}

/** A gRPC-Web request (`application/grpc-web`, `+proto`, `-text`, `-text+proto`). */
export function isGrpcWebRequest(headers: HeaderMap): boolean {
  const v = headers['content-type'];
  const ct = Array.isArray(v) ? v[0] : v;
  return ct !== undefined && ct.length >= 20 && ct.slice(0, 20).toLowerCase() === 'application/grpc-web';
}

/**
 * HTTP status to gRPC status for intermediaries (grpc/doc/http-grpc-status-mapping.md), as Envoy's
 * Grpc::Utility::httpToGrpcStatus: 400 INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
 * 429/502/503/504 UNAVAILABLE, anything else UNKNOWN.
 */
export function httpToGrpcStatus(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

/**
 * gRPC status to HTTP status by code 0-16, as Envoy's Grpc::Utility::grpcToHttpStatus (what its router feeds
 * outlier detection for gRPC answers) and APISIX's grpc-transcode status_rel (after Google's API design guide):
 * 0 200, 1 499, 2 500, 3/9/11 400, 4 504, 5 404, 6/10 409, 7 403, 8 429, 12 501, 13 500, 14 503, 15 500, 16 401.
 */
export const GRPC_TO_HTTP: readonly number[] = [200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401];

/** A grpc-status value's code 0-16 (the decimal digits, no sign, no padding), or -1 for anything else. */
export function grpcStatusCode(v: string | undefined): number {
  // hot path
  if (v === undefined) return -1;
  const a = v.charCodeAt(0) - 48;
  if (v.length === 1) return a >= 0 && a <= 9 ? a : -1;
  if (v.length !== 2 || a !== 1) return -1;
  const b = v.charCodeAt(1) - 48;
  return b >= 0 && b <= 6 ? 10 + b : -1;
}

/** The 17 status texts, made once so that every exchange shares them. */
const STATUS_TEXTS: readonly string[] = GRPC_TO_HTTP.map((_, i) => String(i));

/**
 * The status text recorded for a gRPC answer ($grpc_status, the Prometheus label): one of '0'..'16', and '2'
 * (UNKNOWN, as gRPC clients read a value they cannot parse) for anything else. The value comes from the
 * upstream; taken raw it would let any upstream create metric series without bound.
 */
export function grpcStatusText(v: string): string {
  // hot path
  const code = grpcStatusCode(v);
  return STATUS_TEXTS[code < 0 ? GrpcStatus.UNKNOWN : code]!;
}

/**
 * The HTTP status passive health judges a gRPC answer by (GRPC_TO_HTTP): 500 for a value outside 0-16 and for
 * a missing one. With APISIX's default unhealthy list [429, 500, 503], the failing gRPC codes are UNKNOWN(2),
 * RESOURCE_EXHAUSTED(8), INTERNAL(13), UNAVAILABLE(14), DATA_LOSS(15) and anything else.
 */
export function grpcToHttpStatus(grpcStatus: string | undefined): number {
  const code = grpcStatusCode(grpcStatus);
  return code < 0 ? 500 : GRPC_TO_HTTP[code]!;
}

/**
 * Passive health view of a proxied answer's head: the status to report now (the HTTP status, or for a gRPC
 * answer carrying grpc-status in its head, trailers-only, that status mapped by grpcToHttpStatus), or -1 for
 * a gRPC answer whose status comes in the trailers (reported then; its 200 head says nothing).
 */
export function passiveStatusOfHead(status: number, headers: Record<string, string | string[]>): number {
  // hot path
  if (status !== 200 || !isGrpcRequest(headers)) return status;
  const gs = headers['grpc-status'];
  if (gs === undefined) return -1;
  return grpcToHttpStatus(typeof gs === 'string' ? gs : gs[0]);
}

const MAX_MESSAGE = 1024;

/** The reason of a local answer: its `error_msg` / `message`, a text body, else the status line. */
function reasonOf(r: PluginResponse): string {
  const b = r.body;
  let text: string | undefined;
  if (typeof b === 'string') text = b;
  else if (Buffer.isBuffer(b)) text = b.toString('utf8');
  else if (b !== undefined && b !== null && !Array.isArray(b)) {
    const o = b as Record<string, unknown>;
    const m = o.error_msg ?? o.message;
    if (typeof m === 'string') text = m;
    else text = JSON.stringify(b);
  }
  text = text?.trim();
  if (text === undefined || text === '') return `${r.status} ${STATUS_TEXT[r.status] ?? 'Error'}`;
  return text.length > MAX_MESSAGE ? text.slice(0, MAX_MESSAGE) : text;
}

/**
 * grpc-message is percent-encoded (PROTOCOL-HTTP2.md): bytes outside printable ASCII, and '%' itself, as %XX
 * of their UTF-8 encoding.
 */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte < 0x20 || byte > 0x7e || byte === 0x25 ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}

/**
 * For a gRPC request answered locally: the headers of the trailers-only response (content-type, grpc-status,
 * grpc-message) that replace the HTTP error body; null for other requests. A plugin that answered with its
 * own grpc-status header keeps it. The caller sends HTTP 200 with no body.
 */
export function grpcLocalHeaders(clientIsGrpc: boolean, r: PluginResponse): Record<string, string> | null {
  if (!clientIsGrpc) return null;
  const own = r.headers?.['grpc-status'];
  return {
    'content-type': GRPC_CT,
    'grpc-status': own ?? String(httpToGrpcStatus(r.status)),
    'grpc-message': r.headers?.['grpc-message'] ?? encodeGrpcMessage(reasonOf(r)),
  };
}
