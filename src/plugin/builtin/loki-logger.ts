// loki-logger (APISIX priority 414, apisix/plugins/loki-logger.lua): batches of log entries pushed to Grafana
// Loki, POST `<endpoint_addr><endpoint_uri>` (an address picked at random per batch) with `X-Scope-OrgID:
// <tenant_id>` and the configured `headers`, body `{"streams":[{"stream":{labels},"values":[["<ns>","<entry
// JSON>"],...]}]}`. Entries sharing a resolved label set share a stream (streams in order of first
// appearance). The timestamp is the request's start in milliseconds followed by six zeros, as APISIX writes it.
// `log_labels` values are resolve_var templates evaluated per request; a value whose variables all resolve
// to nothing stays as written (APISIX keeps the template when n_resolved is 0). A status >= 300 fails the
// batch. timeout and keepalive_timeout are milliseconds.
import type { JsonObject } from '../../config/resources.ts';
import { batchSchemaProps } from '../../observability/batch-processor.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance } from '../plugin.ts';
import { VarTemplate } from './limit-count/key.ts';
import {
  acquireProcessor,
  BATCH_LOG_METADATA_SCHEMA,
  checkBodyExprs,
  LOG_PROPS,
  logEntry,
  logOptions,
  requestBodyPhase,
  responseBodyPhase,
  type LogOptions,
} from './log-common.ts';
import { SinkHttp } from './log-http.ts';

const NAME = 'loki-logger';
// APISIX names this plugin's batch processor "loki logger" (the default of `name`, the metrics label).
const BATCH_NAME = 'loki logger';
const URI = { type: 'string', pattern: '^[^\\/]+:\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?' };
const STRINGS = { type: 'object', patternProperties: { '.*': { type: 'string', minLength: 1 } } };

const schema: JsonObject = {
  type: 'object',
  properties: {
    endpoint_addrs: { type: 'array', minItems: 1, items: URI },
    endpoint_uri: { type: 'string', minLength: 1, default: '/loki/api/v1/push' },
    tenant_id: { type: 'string', default: 'fake' },
    headers: STRINGS,
    log_labels: { ...STRINGS, default: { job: 'apisix' } },
    ssl_verify: { type: 'boolean', default: false },
    timeout: { type: 'integer', minimum: 1, maximum: 60000, default: 3000, description: 'timeout in milliseconds' },
    keepalive: { type: 'boolean', default: true },
    keepalive_timeout: { type: 'integer', minimum: 1000, default: 60000, description: 'keepalive timeout in milliseconds' },
    keepalive_pool: { type: 'integer', minimum: 1, default: 5 },
    ...LOG_PROPS,
    ...batchSchemaProps(BATCH_NAME),
  },
  required: ['endpoint_addrs'],
} as JsonObject;

interface LokiEntry {
  readonly labels: Readonly<Record<string, string>>;
  /** Identifies the label set: values in the conf's key order, NUL-separated. */
  readonly key: string;
  readonly time: string;
  readonly entry: Record<string, unknown>;
}

interface Stream {
  stream: Readonly<Record<string, string>>;
  values: [string, string][];
}

/** The push body of one batch: one stream per distinct label set. */
export function lokiPush(entries: readonly LokiEntry[]): { streams: Stream[] } {
  const streams: Stream[] = [];
  const byKey = new Map<string, Stream>();
  for (const e of entries) {
    let s = byKey.get(e.key);
    if (s === undefined) {
      s = { stream: e.labels, values: [] };
      byKey.set(e.key, s);
      streams.push(s);
    }
    s.values.push([e.time, JSON.stringify(e.entry)]);
  }
  return { streams };
}

function sinkFor(conf: JsonObject): (entries: LokiEntry[]) => Promise<void> {
  const addrs = conf.endpoint_addrs as string[];
  const path = String(conf.endpoint_uri);
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries((conf.headers as Record<string, string> | undefined) ?? {})) headers[k.toLowerCase()] = v;
  headers['x-scope-orgid'] = String(conf.tenant_id);
  headers['content-type'] = 'application/json';
  const keepalive = conf.keepalive !== false;
  const http = new SinkHttp({
    sslVerify: conf.ssl_verify === true,
    timeoutMs: conf.timeout as number,
    keepalive,
    ...(keepalive ? { keepAliveTimeoutMs: conf.keepalive_timeout as number, connections: conf.keepalive_pool as number } : {}),
  });
  return async (entries) => {
    const url = addrs[Math.floor(Math.random() * addrs.length)]! + path;
    const res = await http.send('POST', url, headers, JSON.stringify(lokiPush(entries)));
    if (res.status >= 300) throw new Error(`loki server returned status: ${res.status}, body: ${res.body}`);
  };
}

type Label = readonly [name: string, template: VarTemplate, raw: string];

class LokiLogger implements PluginInstance {
  readonly #opts: LogOptions;
  readonly #handle: ReturnType<typeof acquireProcessor<LokiEntry>>;
  readonly #labels: readonly Label[];
  /** The label set when no value has a variable: shared by every entry. */
  readonly #fixed: { labels: Record<string, string>; key: string } | null;

  constructor(opts: LogOptions, labels: Record<string, string>, handle: ReturnType<typeof acquireProcessor<LokiEntry>>) {
    this.#opts = opts;
    this.#handle = handle;
    this.#labels = Object.entries(labels).map(([k, v]) => [k, new VarTemplate(v), v] as const);
    this.#fixed = this.#labels.every(([, t]) => t.constant !== null) ? { labels, key: Object.values(labels).map((v) => v + '\0').join('') } : null;
    if (opts.includeReqBody) this.access = requestBodyPhase(opts);
    if (opts.includeRespBody) this.body_filter = responseBodyPhase(opts);
  }

  access?: (ctx: HttpContext) => PhaseResult | Promise<PhaseResult>;
  body_filter?: (ctx: HttpContext, chunk: Buffer) => Buffer;

  log(ctx: HttpContext): void {
    const entry = logEntry(ctx, this.#opts);
    if (entry.route_id === undefined) entry.route_id = 'no-matched';
    const startMs = Date.now() - Math.round(Number(process.hrtime.bigint() - ctx.startNs) / 1e6);
    let labels = this.#fixed?.labels;
    let key = this.#fixed?.key;
    if (labels === undefined || key === undefined) {
      const resolved: Record<string, string> = {};
      key = '';
      for (const [name, t, raw] of this.#labels) {
        const v = t.render(ctx.vars);
        const value = t.resolved > 0 ? v : raw;
        resolved[name] = value;
        key += value + '\0';
      }
      labels = resolved;
    }
    this.#handle.push({ labels, key, time: `${startMs}000000`, entry });
  }

  destroy(): void {
    this.#handle.release();
  }
}

export const lokiLoggerPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 414,
  schema,
  metadataSchema: BATCH_LOG_METADATA_SCHEMA,
  encryptFields: ['headers'],
  subsystems: ['http'],
  status: 'stable',
  check(conf, schemaType) {
    return schemaType === 'route' ? checkBodyExprs(conf) : null;
  },
  create(conf, env) {
    const labels = (conf.log_labels as Record<string, string> | undefined) ?? { job: 'apisix' };
    return new LokiLogger(logOptions(conf, env), labels, acquireProcessor(NAME, conf, env, sinkFor(conf)));
  },
};

export default lokiLoggerPlugin;
