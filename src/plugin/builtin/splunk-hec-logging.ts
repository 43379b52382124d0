// splunk-hec-logging (APISIX priority 409, apisix/plugins/splunk-hec-logging.lua): batches of events POSTed
// to a Splunk HTTP Event Collector at endpoint.uri, `Authorization: Splunk <token>`, optional
// `X-Splunk-Request-Channel`, the body the events' JSON objects concatenated without separator (HEC's batch
// format). Each event is `{time, host, source, sourcetype, event}`, built at log time: `time` in seconds
// with millisecond decimals, source "apache-apisix-splunk-hec-logging", sourcetype "_json"; `event` is a
// fixed selection of the default log entry (request_url, request_method, request_headers, request_query,
// request_size, response_headers, response_status, response_size, latency, upstream) or, with log_format
// (conf or plugin_metadata), the formatted entry; log_format_extra fields (conf or plugin_metadata) join the
// fixed event where it has no such key. Only status 200 counts as sent. APISIX's schema has no
// include_*_body switches for this plugin: the fixed event would not carry the bodies.
import os from 'node:os';
import type { JsonObject } from '../../config/resources.ts';
import { batchSchemaProps } from '../../observability/batch-processor.ts';
import type { HttpContext } from '../context.ts';
import type { PluginDef, PluginInstance } from '../plugin.ts';
import { acquireProcessor, BATCH_LOG_METADATA_SCHEMA, extraEntry, logEntry, logOptions, type LogOptions, type ProcessorHandle } from './log-common.ts';
import { SinkHttp } from './log-http.ts';

const NAME = 'splunk-hec-logging';
const SOURCE = 'apache-apisix-splunk-hec-logging';
const SOURCETYPE = '_json';
const HOSTNAME = os.hostname();

const schema: JsonObject = {
  type: 'object',
  properties: {
    endpoint: {
      type: 'object',
      properties: {
        uri: { type: 'string', pattern: '^[^\\/]+:\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?' },
        token: { type: 'string' },
        channel: { type: 'string' },
        timeout: { type: 'integer', minimum: 1, default: 10 },
        keepalive_timeout: { type: 'integer', minimum: 1000, default: 60000, description: 'keepalive timeout in milliseconds' },
      },
      required: ['uri', 'token'],
    },
    ssl_verify: { type: 'boolean', default: true },
    log_format: { type: 'object' },
    log_format_extra: { type: 'object' },
    ...batchSchemaProps(NAME),
  },
  required: ['endpoint'],
} as JsonObject;

interface SplunkEvent {
  time: number;
  host: string;
  source: string;
  sourcetype: string;
  event: Record<string, unknown>;
}

/**
 * APISIX's event for one request: the fixed selection of the default entry (plus the log_format_extra fields
 * it lacks), or the log_format entry.
 */
export function splunkEvent(entry: Record<string, unknown>, customized: boolean, now: number, extra: Record<string, unknown> | null = null): SplunkEvent {
  if (customized) return { time: now / 1000, host: HOSTNAME, source: SOURCE, sourcetype: SOURCETYPE, event: entry };
  const rq = entry.request as Record<string, unknown>;
  const rs = entry.response as Record<string, unknown>;
  const event: Record<string, unknown> = {
    request_url: rq.url,
    request_method: rq.method,
    request_headers: rq.headers,
    request_query: rq.querystring,
    request_size: rq.size,
    response_headers: rs.headers,
    response_status: rs.status,
    response_size: rs.size,
    latency: entry.latency,
    upstream: entry.upstream,
  };
  if (extra !== null) for (const k in extra) if (event[k] === undefined) event[k] = extra[k];
  return { time: now / 1000, host: (entry.server as { hostname: string }).hostname, source: SOURCE, sourcetype: SOURCETYPE, event };
}

function sinkFor(conf: JsonObject): (events: SplunkEvent[]) => Promise<void> {
  const ep = conf.endpoint as JsonObject;
  const uri = String(ep.uri);
  const headers: Record<string, string> = { 'content-type': 'application/json', authorization: `Splunk ${String(ep.token)}` };
  if (typeof ep.channel === 'string') headers['x-splunk-request-channel'] = ep.channel;
  const http = new SinkHttp({ sslVerify: conf.ssl_verify !== false, timeoutMs: (ep.timeout as number) * 1000, keepAliveTimeoutMs: ep.keepalive_timeout as number });
  return async (events) => {
    let body = '';
    for (const e of events) body += JSON.stringify(e);
    const res = await http.send('POST', uri, headers, body);
    if (res.status === 200) return;
    let text: unknown;
    try {
      text = (JSON.parse(res.body) as { text?: unknown }).text;
    } catch {
      text = undefined;
    }
    throw new Error(text === undefined ? `failed to send splunk, http status code: ${res.status}` : `failed to send splunk, ${String(text)}`);
  };
}

class SplunkLogger implements PluginInstance {
  readonly #opts: LogOptions;
  /** The same options without log_format_extra: the extras go into the event, not the full entry. */
  readonly #entryOpts: LogOptions;
  readonly #handle: ProcessorHandle<SplunkEvent>;

  constructor(opts: LogOptions, handle: ProcessorHandle<SplunkEvent>) {
    this.#entryOpts = { ...opts, extra: null };
    this.#opts = opts;
    this.#handle = handle;
  }

  log(ctx: HttpContext): void {
    const o = this.#opts;
    this.#handle.push(splunkEvent(logEntry(ctx, this.#entryOpts), o.format !== null, Date.now(), extraEntry(ctx, o)));
  }

  destroy(): void {
    this.#handle.release();
  }
}

export const splunkHecLoggingPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 409,
  schema,
  metadataSchema: BATCH_LOG_METADATA_SCHEMA,
  encryptFields: ['endpoint.token'],
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    // The include_*_body switches are not in this plugin's schema; the entry is built without bodies.
    const opts: LogOptions = { ...logOptions(conf, env), includeReqBody: false, includeRespBody: false };
    return new SplunkLogger(opts, acquireProcessor(NAME, conf, env, sinkFor(conf)));
  },
};

export default splunkHecLoggingPlugin;
