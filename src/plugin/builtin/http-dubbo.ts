// http-dubbo (APISIX priority 504): transcodes an HTTP request into one Dubbo 2 call with fastjson
// serialization (Dubbo 2 providers configured with `serialization="fastjson"`) and answers from before_proxy:
// - service_name, service_version (default 0.0.0), method and params_type_desc come from the conf.
// - arguments: with `serialized` (or the request header named by serialization_header_key equal to "true")
//   the body is taken as already serialized, one JSON value per line; otherwise the body is a JSON array (or
//   object, its values in order) and each element becomes one argument line. A body that is not JSON, or
//   not an array or object, is 400 (APISIX fails with a Lua error, 500). Bodies above max_req_body_size: 413.
// - answer: a value is 200 with the provider's JSON text as body, a null (void) is an empty 200; an exception,
//   an error status or an unreadable reply is 500, as APISIX. A provider that cannot be reached within
//   connect_timeout is 502; connect failures first move to another node of the upstream (the shared balancer
//   and the upstream's retries; APISIX's plugin tries only the picked node). A call slower than
//   send_timeout + read_timeout is 500 (APISIX's read timeout), and counts as a timeout for passive health.
// Calls share multiplexed provider connections (APISIX opens one connection per request).
//
// Switchyard extension, `serialization` ("fastjson" by default, as APISIX; or "hessian2"): with "hessian2" the
// call goes to an ordinary hessian2 provider (Dubbo's default serialization). The body is a JSON array (or
// object, its values in order) with one element per parameter of params_type_desc, each converted to the
// declared Java type (dubbo/hessian-json.ts; a mismatch is 400 with an error_msg). Answers:
// - a value: 200, content-type application/json, the value as JSON;
// - null (void): an empty 200, as APISIX answers null in fastjson mode;
// - an exception: 500 (APISIX's http-dubbo status for it) with {"error_msg": "dubbo provider raised an
//   exception"}; a non-OK Dubbo status (service not found, version mismatch...): 500 with {"error_msg": "dubbo
//   call failed", "dubbo_status": <status>}. The provider's texts stay in the gateway's log: exception messages
//   and Dubbo status messages carry provider internals ("Not found exported service" lists the exported
//   services and internal addresses). `expose_provider_errors` (default false) adds them to the body, for
//   trusted clients only: error_msg becomes the provider's message, plus "exception": <its Java class>.
//   Transport failures answer as in fastjson mode.
// `serialized` and serialization_header_key describe fastjson text and are refused with "hessian2".
import type { JsonObject } from '../../config/resources.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Endpoint } from '../../upstream/balancer.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance, PluginResponse } from '../plugin.ts';
import { runAttempts, type AttemptResult, type AttemptsRun } from '../terminal-attempts.ts';
import { upstreamCallers, type DubboCaller } from '../terminals.ts';
import { classify, readBody } from './dubbo/common.ts';
import { FASTJSON, jsonParams, parseReply, requestBody, requestHead, serializedParams } from './dubbo/fastjson.ts';
import { argsFromJson, jsonOf, parseDescriptor, type ParamType } from './dubbo/hessian-json.ts';

const schema: JsonObject = {
  type: 'object',
  properties: {
    max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
    service_name: { type: 'string', minLength: 1 },
    service_version: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+', default: '0.0.0' },
    method: { type: 'string', minLength: 1 },
    params_type_desc: { type: 'string', default: '' },
    serialization_header_key: { type: 'string' },
    serialized: { type: 'boolean', default: false },
    connect_timeout: { type: 'number', default: 6000 },
    read_timeout: { type: 'number', default: 6000 },
    send_timeout: { type: 'number', default: 6000 },
    serialization: { type: 'string', enum: ['fastjson', 'hessian2'], default: 'fastjson' },
    // hessian2 only: answer the provider's exception/status message (and exception class) to the client.
    // Off by default: those texts describe provider internals (see the header).
    expose_provider_errors: { type: 'boolean', default: false },
  },
  required: ['service_name', 'method'],
  if: { properties: { serialization: { const: 'hessian2' } }, required: ['serialization'] },
  then: { properties: { serialized: { const: false } }, not: { required: ['serialization_header_key'] } },
};

function check(conf: JsonObject): string | null {
  if (conf.serialization !== 'hessian2') return null;
  const t = parseDescriptor(typeof conf.params_type_desc === 'string' ? conf.params_type_desc : '');
  return typeof t === 'string' ? t : null;
}

const STATUS_OK = 20;
const OK_EMPTY: PluginResponse = { status: 200, body: '' };
const FAILED: PluginResponse = { status: 500 };
const UNREACHABLE: PluginResponse = { status: 502 };
const JSON_TYPE = { 'content-type': 'application/json' } as const;

interface Call {
  readonly caller: DubboCaller;
  readonly plugin: HttpDubbo;
  /** fastjson: the serialized request body. */
  readonly body: Buffer;
  /** hessian2: the typed arguments. */
  readonly args: readonly unknown[];
}

async function attempt(endpoint: Endpoint, _t: unknown, c: Call): Promise<AttemptResult<PluginResponse>> {
  const p = c.plugin;
  const r = await c.caller.exchange(endpoint, {
    serialization: FASTJSON,
    body: c.body,
    timeoutMs: p.callTimeoutMs,
    connectTimeoutMs: p.connectTimeoutMs,
  });
  if (!r.ok) {
    const f = classify(r);
    p.logger.error({ provider: endpoint.key, code: r.code, msg: r.message }, f.retryable ? 'http-dubbo: failed to connect to upstream' : 'http-dubbo: upstream call failed');
    return { ok: false, kind: f.kind, retryable: f.retryable, value: f.retryable ? UNREACHABLE : FAILED };
  }
  if (r.status !== STATUS_OK) {
    p.logger.warn({ provider: endpoint.key, service: p.service, status: r.status }, 'http-dubbo: the provider refused the call');
    return { ok: true, status: 500, value: FAILED };
  }
  const reply = parseReply(r.body);
  if (reply.kind === 'value') return { ok: true, status: 200, value: { status: 200, body: reply.json } };
  if (reply.kind === 'null') return { ok: true, status: 200, value: OK_EMPTY };
  p.logger.warn({ provider: endpoint.key, service: p.service, type: reply.type }, 'http-dubbo: the provider answered an exception');
  return { ok: true, status: 500, value: FAILED };
}

async function attemptHessian(endpoint: Endpoint, _t: unknown, c: Call): Promise<AttemptResult<PluginResponse>> {
  const p = c.plugin;
  const r = await c.caller.invoke(endpoint, {
    service: p.service,
    version: p.version,
    method: p.method,
    paramTypes: p.paramsDesc,
    args: c.args,
    timeoutMs: p.callTimeoutMs,
    connectTimeoutMs: p.connectTimeoutMs,
  });
  switch (r.kind) {
    case 'value':
      return { ok: true, status: 200, value: { status: 200, body: jsonOf(r.value), headers: JSON_TYPE } };
    case 'null':
      return { ok: true, status: 200, value: OK_EMPTY };
    case 'exception':
      p.logger.warn({ provider: endpoint.key, service: p.service, method: p.method, exception: r.exception.className, msg: r.exception.message }, 'http-dubbo: the provider threw');
      return {
        ok: true,
        status: 500,
        value: p.exposeErrors ? { status: 500, body: { error_msg: r.exception.message, exception: r.exception.className } } : PROVIDER_EXCEPTION,
      };
    case 'status':
      p.logger.warn({ provider: endpoint.key, service: p.service, version: p.version, method: p.method, status: r.status, msg: r.message }, 'http-dubbo: the provider refused the call');
      return { ok: true, status: 500, value: { status: 500, body: { error_msg: p.exposeErrors ? r.message : 'dubbo call failed', dubbo_status: r.status } } };
    default: {
      const f = classify(r);
      p.logger.error({ provider: endpoint.key, code: r.code, msg: r.message }, f.retryable ? 'http-dubbo: failed to connect to upstream' : 'http-dubbo: upstream call failed');
      return { ok: false, kind: f.kind, retryable: f.retryable, value: f.retryable ? UNREACHABLE : FAILED };
    }
  }
}

const PROVIDER_EXCEPTION: PluginResponse = { status: 500, body: { error_msg: 'dubbo provider raised an exception' } };
const NO_ARGS: readonly unknown[] = [];
const NO_BODY = Buffer.alloc(0);

export class HttpDubbo implements PluginInstance {
  readonly service: string;
  readonly version: string;
  readonly method: string;
  readonly paramsDesc: string;
  /** hessian2 mode: the declared parameter types; null in fastjson mode. */
  readonly #types: readonly ParamType[] | null;
  readonly connectTimeoutMs: number;
  readonly callTimeoutMs: number;
  readonly logger: Logger;
  /** expose_provider_errors: provider messages reach the client. */
  readonly exposeErrors: boolean;
  readonly #head: Buffer;
  readonly #maxBody: number;
  readonly #serialized: boolean;
  /** Lower-cased serialization_header_key, or null. */
  readonly #serializationHeader: string | null;

  constructor(conf: JsonObject, logger: Logger) {
    this.service = conf.service_name as string;
    this.version = (conf.service_version as string | undefined) ?? '0.0.0';
    this.method = conf.method as string;
    this.paramsDesc = (conf.params_type_desc as string | undefined) ?? '';
    this.#head = requestHead(this.service, this.version, this.method, this.paramsDesc);
    if (conf.serialization === 'hessian2') {
      const t = parseDescriptor(this.paramsDesc);
      // The schema check refused a bad descriptor; a conf that skipped it fails closed.
      if (typeof t === 'string') throw new Error(t);
      this.#types = t;
    } else this.#types = null;
    this.#maxBody = (conf.max_req_body_size as number | undefined) ?? 67108864;
    this.#serialized = conf.serialized === true;
    this.#serializationHeader = typeof conf.serialization_header_key === 'string' ? conf.serialization_header_key.toLowerCase() : null;
    this.connectTimeoutMs = (conf.connect_timeout as number | undefined) ?? 6000;
    this.callTimeoutMs = ((conf.send_timeout as number | undefined) ?? 6000) + ((conf.read_timeout as number | undefined) ?? 6000);
    this.logger = logger;
    this.exposeErrors = conf.expose_provider_errors === true;
  }

  async before_proxy(ctx: HttpContext): Promise<PhaseResult> {
    if (ctx.upstreamAddr === undefined) return undefined;
    const caller = upstreamCallers.get('dubbo');
    if (caller === undefined) {
      this.logger.error('http-dubbo: no Dubbo caller registered (protocols/dubbo setup did not run)');
      return FAILED;
    }
    const raw = await readBody(ctx, this.#maxBody);
    if (!Buffer.isBuffer(raw)) return raw;
    if (this.#types !== null) {
      const a = argsFromJson(this.#types, raw);
      if (!a.ok) return { status: 400, body: { error_msg: a.message } };
      return this.#answer(ctx, await runAttempts(ctx, attemptHessian, { caller, plugin: this, body: NO_BODY, args: a.args }));
    }
    let serialized = this.#serialized;
    if (this.#serializationHeader !== null) {
      const h = ctx.request.headers[this.#serializationHeader];
      serialized = (Array.isArray(h) ? h[0] : h) === 'true';
    }
    let params: Buffer | string;
    if (serialized) params = serializedParams(raw);
    else {
      const parsed = jsonParams(raw);
      if (!parsed.ok) return { status: 400, body: { error_msg: parsed.message } };
      params = parsed.params;
    }
    return this.#answer(ctx, await runAttempts(ctx, attempt, { caller, plugin: this, body: requestBody(this.#head, params), args: NO_ARGS }));
  }

  #answer(ctx: HttpContext, run: AttemptsRun<PluginResponse> | null): PhaseResult {
    if (run === null) {
      this.logger.error({ route: ctx.routeId }, 'http-dubbo: the upstream attempt state of the request is not reachable');
      return FAILED;
    }
    return run.value;
  }
}

export const httpDubboPlugin: PluginDef = {
  name: 'http-dubbo',
  version: '0.1',
  priority: 504,
  schema,
  subsystems: ['http'],
  status: 'experimental',
  check,
  create(conf, env) {
    return new HttpDubbo(conf, env.logger);
  },
};
