// skywalking-logger (APISIX priority 408): the access log entry (log-common.ts: full entry or log_format) sent
// to a SkyWalking OAP as LogData over its HTTP JSON protocol: batches POSTed as a JSON array to
// `<endpoint_addr origin>/v3/logs`, each `{traceContext, body: {json: {json: <entry as a JSON string>}},
// service, serviceInstance, endpoint: <request path>}` (logging/Logging.proto field names). traceContext comes
// from the request's sw8 header at log time: with the skywalking plugin on the same request that is the sw8 it
// wrote for the upstream, so the log links to this gateway's segment and exit span; a malformed sw8 leaves it
// out. service_instance_name `$hostname` becomes the host name. A status >= 400 or a network error fails the
// batch (the batch processor retries per its conf). APISIX connects to endpoint_addr's host and port without
// TLS whatever the scheme; here an https endpoint_addr is spoken to over TLS.
import os from 'node:os';
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance } from '../plugin.ts';
import { uriDef } from '../../schema/defs.ts';
import {
  acquireProcessor,
  BATCH_LOG_METADATA_SCHEMA,
  loggerSchema,
  logEntry,
  logOptions,
  requestBodyPhase,
  responseBodyPhase,
  type LogOptions,
} from './log-common.ts';
import { SinkHttp } from './log-http.ts';
import { parseSw8 } from './skywalking.ts';

const NAME = 'skywalking-logger';

const schema = loggerSchema(
  {
    endpoint_addr: uriDef,
    service_name: { type: 'string', default: 'APISIX' },
    service_instance_name: { type: 'string', default: 'APISIX Instance Name' },
    timeout: { type: 'integer', minimum: 1, default: 3 },
  },
  ['endpoint_addr'],
  'skywalking logger',
);

/** SkyWalking v3 LogData as JSON. */
interface SwLog {
  readonly traceContext?: { readonly traceId: string; readonly traceSegmentId: string; readonly spanId: number } | undefined;
  readonly body: { readonly json: { readonly json: string } };
  readonly service: string;
  readonly serviceInstance: string;
  readonly endpoint: string;
}

function sinkFor(conf: JsonObject): (entries: SwLog[]) => Promise<void> {
  const url = `${new URL(String(conf.endpoint_addr)).origin}/v3/logs`;
  const http = new SinkHttp({ sslVerify: false, timeoutMs: (conf.timeout as number) * 1000 });
  const headers = { 'content-type': 'application/json' };
  return async (entries) => {
    const res = await http.send('POST', url, headers, JSON.stringify(entries));
    if (res.status >= 400) throw new Error(`server returned status code[${res.status}] body[${res.body}]`);
  };
}

class SkyWalkingLogger implements PluginInstance {
  readonly #opts: LogOptions;
  readonly #handle: ReturnType<typeof acquireProcessor<SwLog>>;
  readonly #service: string;
  readonly #instance: string;

  constructor(conf: JsonObject, opts: LogOptions, handle: ReturnType<typeof acquireProcessor<SwLog>>) {
    this.#opts = opts;
    this.#handle = handle;
    this.#service = conf.service_name as string;
    this.#instance = conf.service_instance_name === '$hostname' ? os.hostname() : (conf.service_instance_name as string);
    if (opts.includeReqBody) this.access = requestBodyPhase(opts);
    if (opts.includeRespBody) this.body_filter = responseBodyPhase(opts);
  }

  access?: (ctx: HttpContext) => PhaseResult | Promise<PhaseResult>;
  body_filter?: (ctx: HttpContext, chunk: Buffer) => Buffer;

  log(ctx: HttpContext): void {
    const h = ctx.request.headers.sw8;
    const sw8 = parseSw8(Array.isArray(h) ? h[0] : h);
    this.#handle.push({
      traceContext: sw8 === null ? undefined : { traceId: sw8.traceId, traceSegmentId: sw8.segmentId, spanId: sw8.spanId },
      body: { json: { json: JSON.stringify(logEntry(ctx, this.#opts)) } },
      service: this.#service,
      serviceInstance: this.#instance,
      endpoint: String(ctx.vars.get('uri') ?? ctx.request.path),
    });
  }

  destroy(): void {
    this.#handle.release();
  }
}

export const skywalkingLoggerPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 408,
  schema,
  metadataSchema: BATCH_LOG_METADATA_SCHEMA,
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new SkyWalkingLogger(conf, logOptions(conf, env), acquireProcessor(NAME, conf, env, sinkFor(conf)));
  },
};

export default skywalkingLoggerPlugin;
