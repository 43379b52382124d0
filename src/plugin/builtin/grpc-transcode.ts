// grpc-transcode (APISIX priority 506, access + header_filter + body_filter): HTTP/JSON in, unary gRPC to the
// upstream, JSON out. The proto (`proto_id`, the protos resource, compiled once per version: ../protos.ts)
// and the method are resolved when the instance is created.
// - access: the request table (JSON body, form args or query args: ./grpc-transcode/request.ts) is encoded
//   as `service`'s `method` input and framed; the upstream request becomes POST /<service>/<method> over h2
//   (h2c for http nodes) with content-type application/grpc, te: trailers, no query, and grpc-timeout
//   `<deadline>m` when `deadline` > 0. An unknown service/method (or a missing proto) answers 503, a body
//   that does not fit the message 400, both with nginx's error page and an error log, as APISIX.
// - header_filter (statuses < 300 only): content-type application/json; a non-zero grpc-status header (the
//   upstream's trailers-only answer) maps to HTTP (./grpc-transcode/status.ts, 599 when unknown).
// - body_filter: buffers the single response frame (up to max_resp_body_size; beyond that it is truncated
//   and fails to decode, as in APISIX) and answers its JSON form (pb_option: ./grpc-transcode/response.ts).
//   An error answer (>= 300) passes through unless show_status_in_body, which decodes grpc-status-details-bin.
import type { JsonObject } from '../../config/resources.ts';
import { idSchema } from '../../schema/defs.ts';
import type { Logger } from '../../observability/logger.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { fetchProto, protoSourceOf, type ProtoSource } from '../protos.ts';
import { EncodeError, encodeRequest, requestTable } from './grpc-transcode/request.ts';
import { decodeOptions, messageText, unframe, type DecodeOptions } from './grpc-transcode/response.ts';
import { httpStatusOf, statusBody } from './grpc-transcode/status.ts';
import type protobuf from 'protobufjs';

const NAME = 'grpc-transcode';

const pbOptionDef = [
  { description: 'enum as result', type: 'string', enum: ['enum_as_name', 'enum_as_value'] },
  { description: 'int64 as result', type: 'string', enum: ['int64_as_number', 'int64_as_string', 'int64_as_hexstring'] },
  {
    description: 'default values option',
    type: 'string',
    enum: ['auto_default_values', 'no_default_values', 'use_default_values', 'use_default_metatable'],
  },
  { description: 'hooks option', type: 'string', enum: ['enable_hooks', 'disable_hooks'] },
];

const schema: JsonObject = {
  type: 'object',
  properties: {
    max_resp_body_size: {
      type: 'integer',
      minimum: 1,
      default: 67108864,
      description: 'maximum response body size in bytes buffered into memory for transcoding; larger responses are truncated',
    },
    proto_id: idSchema,
    service: { description: 'the grpc service name', type: 'string' },
    method: { description: 'the method name in the grpc service.', type: 'string' },
    deadline: { description: 'deadline for grpc, millisecond', type: 'number', default: 0 },
    pb_option: {
      type: 'array',
      items: { type: 'string', anyOf: pbOptionDef },
      minItems: 1,
      default: ['enum_as_name', 'int64_as_number', 'auto_default_values', 'disable_hooks'],
    },
    show_status_in_body: { description: 'show decoded grpc-status-details-bin in response body', type: 'boolean', default: false },
    status_detail_type: {
      description: "the message type of the grpc-status-details-bin's details part, if not given, the details part will not be decoded",
      type: 'string',
    },
  },
  additionalProperties: true,
  required: ['proto_id', 'service', 'method'],
};

/** What the instance resolved at config time: the method to call, or why it cannot. */
type Target =
  | { readonly ok: true; readonly path: string; readonly input: protobuf.Type; readonly output: protobuf.Type; readonly proto: { type(n: string): protobuf.Type | undefined } }
  | { readonly ok: false; readonly log: string };

/** Per-request state: the buffered response body. */
class Held {
  chunks: Buffer[] = [];
  bytes = 0;
  truncated = false;
}

const UNAVAILABLE: PluginResponse = { status: 503 };
const BAD_REQUEST: PluginResponse = { status: 400 };
const EMPTY = Buffer.alloc(0);

function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** grpc-timeout for a deadline in ms: at most 8 digits per the gRPC spec, so long deadlines use seconds. */
function grpcTimeout(ms: number): string {
  const whole = Math.ceil(ms);
  return whole <= 99_999_999 ? `${whole}m` : `${Math.ceil(whole / 1000)}S`;
}

function resolveTarget(conf: JsonObject, source: ProtoSource | undefined): Target {
  const service = String(conf.service);
  const method = String(conf.method);
  if (source === undefined) return { ok: false, log: 'proto load error: no protos available' };
  const compiled = fetchProto(source, String(conf.proto_id));
  if (!compiled.ok) return { ok: false, log: `proto load error: ${compiled.error}` };
  const m = compiled.proto.method(service, method);
  if (m === undefined) return { ok: false, log: `transform request error: Undefined service method: ${service}/${method} end` };
  return { ok: true, path: `/${service}/${method}`, input: m.resolvedRequestType!, output: m.resolvedResponseType!, proto: compiled.proto };
}

class GrpcTranscode implements PluginInstance {
  readonly #target: Target;
  readonly #timeout: string | null;
  readonly #options: DecodeOptions;
  readonly #showStatus: boolean;
  readonly #detailName: string | undefined;
  readonly #detailType: protobuf.Type | undefined;
  readonly #maxBody: number;
  readonly #log: Logger;

  constructor(conf: JsonObject, source: ProtoSource | undefined, log: Logger) {
    this.#target = resolveTarget(conf, source);
    const deadline = typeof conf.deadline === 'number' ? conf.deadline : 0;
    this.#timeout = deadline > 0 ? grpcTimeout(deadline) : null;
    this.#options = decodeOptions(Array.isArray(conf.pb_option) ? (conf.pb_option as string[]) : []);
    this.#showStatus = conf.show_status_in_body === true;
    this.#detailName = typeof conf.status_detail_type === 'string' ? conf.status_detail_type : undefined;
    this.#detailType = this.#target.ok && this.#detailName !== undefined ? this.#target.proto.type(this.#detailName) : undefined;
    this.#maxBody = typeof conf.max_resp_body_size === 'number' ? conf.max_resp_body_size : 67108864;
    this.#log = log;
    if (!this.#target.ok) log.warn({ reason: this.#target.log }, 'grpc-transcode cannot transcode');
  }

  access(ctx: HttpContext): PhaseResult | Promise<PhaseResult> {
    const target = this.#target;
    if (!target.ok) {
      this.#log.error({ route: ctx.routeId }, target.log);
      return UNAVAILABLE;
    }
    return this.#transcode(ctx, target);
  }

  async #transcode(ctx: HttpContext, target: Target & { ok: true }): Promise<PhaseResult> {
    const req = ctx.request;
    let body: Buffer;
    try {
      body = await req.readBody();
    } catch (err) {
      const status = (err as { status?: unknown }).status;
      if (typeof status === 'number') return { status };
      throw err;
    }
    let framed: Buffer;
    try {
      const table = requestTable({ method: req.method, contentType: firstHeader(req.headers['content-type']) ?? '', query: req.query, body });
      framed = encodeRequest(target.input, table);
    } catch (err) {
      if (!(err instanceof EncodeError)) throw err;
      this.#log.error({ route: ctx.routeId, reason: err.message }, 'transform request error: failed to encode request data to protobuf');
      return BAD_REQUEST;
    }
    req.method = 'POST';
    req.path = target.path;
    req.query = '';
    req.setHeader('content-type', 'application/grpc');
    req.setHeader('te', 'trailers');
    req.setHeader('grpc-accept-encoding', 'identity');
    req.setHeader('grpc-encoding', null);
    req.setHeader('content-encoding', null);
    req.setHeader('transfer-encoding', null);
    if (this.#timeout !== null) req.setHeader('grpc-timeout', this.#timeout);
    req.setBody(framed);
    ctx.setUpstreamProtocol('h2');
    ctx.pluginData.set(NAME, new Held());
    return undefined;
  }

  header_filter(ctx: HttpContext): void {
    const res = ctx.response;
    if (res.status >= 300 || !ctx.pluginData.has(NAME)) return;
    res.setHeader('content-type', 'application/json');
    res.setHeader('content-length', null);
    const grpcStatus = firstHeader(res.headers['grpc-status']);
    if (grpcStatus !== undefined && grpcStatus !== '0') res.status = httpStatusOf(grpcStatus);
    // The error answer carries grpc-status/grpc-message as headers; a success sends them as trailers.
    else res.setHeader('trailer', 'grpc-status, grpc-message');
  }

  body_filter(ctx: HttpContext, chunk: Buffer, eof: boolean): Buffer | null {
    const held = ctx.pluginData.get(NAME) as Held | undefined;
    if (held === undefined) return chunk;
    const status = ctx.response.status;
    if (status >= 300 && !this.#showStatus) return chunk;
    if (chunk.length > 0 && !held.truncated) {
      held.chunks.push(chunk);
      held.bytes += chunk.length;
      if (held.bytes >= this.#maxBody) held.truncated = true;
    }
    if (!eof) return null;
    const buffered = held.chunks.length === 1 ? held.chunks[0]! : Buffer.concat(held.chunks);
    const body = held.truncated ? buffered.subarray(0, this.#maxBody) : buffered;
    held.chunks = [];
    return status >= 300 ? this.#errorBody(ctx, body) : this.#decode(ctx, body);
  }

  #decode(ctx: HttpContext, body: Buffer): Buffer {
    const target = this.#target as Target & { ok: true };
    // An empty body decodes as the empty message, as in APISIX.
    const message = body.length === 0 ? EMPTY : unframe(body);
    let text: string | null = null;
    if (message !== null) {
      try {
        text = messageText(target.output, target.output.decode(message), this.#options);
      } catch {
        text = null;
      }
    }
    if (text === null) {
      this.#log.error({ route: ctx.routeId }, 'transform response error: failed to decode response data by protobuf');
      return Buffer.from('failed to decode response data by protobuf');
    }
    return Buffer.from(text);
  }

  #errorBody(ctx: HttpContext, body: Buffer): Buffer {
    const details = firstHeader(ctx.response.headers['grpc-status-details-bin']);
    if (details === undefined) return body;
    const out = statusBody(details, this.#detailType, this.#detailName, this.#options);
    if (!out.ok) this.#log.error({ route: ctx.routeId }, `transform response error: ${out.log}`);
    return Buffer.from(out.body);
  }
}

export const grpcTranscodePlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 506,
  schema,
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new GrpcTranscode(conf, protoSourceOf(env), env.logger);
  },
};

export default grpcTranscodePlugin;
