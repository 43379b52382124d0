// elasticsearch-logger (APISIX priority 413, apisix/plugins/elasticsearch-logger.lua as of 3.18): batches of
// log entries sent to Elasticsearch's Bulk API, POST `<addr>/_bulk` with an NDJSON body of
// `{"index":{"_index":<index>}}` + entry line pairs (`Content-Type: application/x-ndjson`, `Accept:
// application/vnd.elasticsearch+json`), Basic auth from `auth`, extra `headers`. Only status 200 counts as
// sent (the batch processor retries anything else). Before the first batch the plugin asks the endpoint for
// its version (GET <addr>, `version.number`) as APISIX does, and adds `"_type":"_doc"` to the action line for
// Elasticsearch 5 and 6, which require a type; a failed probe is logged and retried with the next batch.
// APISIX probes on a request's access phase, which holds that request; here the probe runs with the batch,
// off the request path. `field.index` may hold `{<strftime format>}` (local time, as Lua's os.date) and
// `$var` / `${var}` parts, resolved per request. Several endpoint_addrs are used round robin per batch
// (APISIX picks at random; both spread the load, round robin evenly).
import type { JsonObject } from '../../config/resources.ts';
import { batchSchemaProps } from '../../observability/batch-processor.ts';
import type { Vars } from '../../router/vars.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance } from '../plugin.ts';
import type { Logger } from '../../observability/logger.ts';
import { VarTemplate } from './limit-count/key.ts';
import {
  acquireProcessor,
  BATCH_LOG_METADATA_SCHEMA,
  LOG_PROPS,
  logEntry,
  logOptions,
  requestBodyPhase,
  responseBodyPhase,
  type LogOptions,
} from './log-common.ts';
import { SinkHttp } from './log-http.ts';

const NAME = 'elasticsearch-logger';
const ADDR = { type: 'string', pattern: '[^/]$' };

const schema: JsonObject = {
  type: 'object',
  properties: {
    // deprecated in APISIX in favour of endpoint_addrs, still accepted
    endpoint_addr: ADDR,
    endpoint_addrs: { type: 'array', minItems: 1, items: ADDR },
    field: { type: 'object', properties: { index: { type: 'string' } }, required: ['index'] },
    auth: {
      type: 'object',
      properties: { username: { type: 'string', minLength: 1 }, password: { type: 'string', minLength: 1 } },
      oneOf: [{ required: ['username', 'password'] }],
    },
    headers: {
      type: 'object',
      minProperties: 1,
      patternProperties: { '^[^:]+$': { type: 'string', minLength: 1 } },
      additionalProperties: false,
    },
    timeout: { type: 'integer', minimum: 1, default: 10 },
    ssl_verify: { type: 'boolean', default: true },
    ...LOG_PROPS,
    ...batchSchemaProps(NAME),
  },
  oneOf: [{ required: ['endpoint_addr', 'field'] }, { required: ['endpoint_addrs', 'field'] }],
} as JsonObject;

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const pad = (n: number, w = 2, c = '0') => String(n).padStart(w, c);

/** C-locale strftime in local time (Lua's os.date); unknown conversions stay as written. */
export function strftime(fmt: string, d: Date): string {
  let out = '';
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i]!;
    if (c !== '%' || i + 1 === fmt.length) {
      out += c;
      continue;
    }
    const k = fmt[++i]!;
    switch (k) {
      case 'Y': out += d.getFullYear(); break;
      case 'y': out += pad(d.getFullYear() % 100); break;
      case 'C': out += pad(Math.floor(d.getFullYear() / 100)); break;
      case 'm': out += pad(d.getMonth() + 1); break;
      case 'd': out += pad(d.getDate()); break;
      case 'e': out += pad(d.getDate(), 2, ' '); break;
      case 'H': out += pad(d.getHours()); break;
      case 'I': out += pad(d.getHours() % 12 || 12); break;
      case 'M': out += pad(d.getMinutes()); break;
      case 'S': out += pad(d.getSeconds()); break;
      case 'p': out += d.getHours() < 12 ? 'AM' : 'PM'; break;
      case 'j': out += pad(Math.floor((Date.UTC(d.getFullYear(), d.getMonth(), d.getDate()) - Date.UTC(d.getFullYear(), 0, 1)) / 86_400_000) + 1, 3); break;
      case 'a': out += DAYS[d.getDay()]!.slice(0, 3); break;
      case 'A': out += DAYS[d.getDay()]; break;
      case 'b': case 'h': out += MONTHS[d.getMonth()]!.slice(0, 3); break;
      case 'B': out += MONTHS[d.getMonth()]; break;
      case 'u': out += d.getDay() || 7; break;
      case 'w': out += d.getDay(); break;
      case 'D': case 'x': out += strftime('%m/%d/%y', d); break;
      case 'F': out += strftime('%Y-%m-%d', d); break;
      case 'T': case 'X': out += strftime('%H:%M:%S', d); break;
      case 'R': out += strftime('%H:%M', d); break;
      case 'r': out += strftime('%I:%M:%S %p', d); break;
      case 'c': out += strftime('%a %b %e %H:%M:%S %Y', d); break;
      case 's': out += Math.floor(d.getTime() / 1000); break;
      case 'z': {
        const off = -d.getTimezoneOffset();
        out += (off < 0 ? '-' : '+') + pad(Math.floor(Math.abs(off) / 60)) + pad(Math.abs(off) % 60);
        break;
      }
      case 'n': out += '\n'; break;
      case 't': out += '\t'; break;
      case '%': out += '%'; break;
      default: out += '%' + k;
    }
  }
  return out;
}

const TIME_PART = /(?<!\$)\{([^}]*)\}/g;

/**
 * `field.index` compiled at config time: literal parts (resolve_var templates) and `{format}` time parts.
 * Time parts are formatted once per second. APISIX substitutes the time parts first and resolves variables
 * in the result; resolving per literal part differs only for a `${...}` that encloses a time part.
 */
export class IndexTemplate {
  readonly constant: string | null;
  readonly #parts: (VarTemplate | string)[] = [];
  #second = -1;
  readonly #times: string[] = [];

  constructor(index: string) {
    let last = 0;
    for (const m of index.matchAll(TIME_PART)) {
      if (m.index > last) this.#parts.push(new VarTemplate(index.slice(last, m.index)));
      this.#parts.push(m[1]!);
      this.#times.push('');
      last = m.index + m[0].length;
    }
    if (last < index.length || this.#parts.length === 0) this.#parts.push(new VarTemplate(index.slice(last)));
    const only = this.#parts[0];
    this.constant = this.#parts.length === 1 && typeof only !== 'string' ? only!.constant : null;
  }

  render(vars: Vars, now = Date.now()): string {
    if (this.constant !== null) return this.constant;
    const sec = Math.floor(now / 1000);
    let t = 0;
    if (sec !== this.#second) {
      this.#second = sec;
      const d = new Date(now);
      for (const p of this.#parts) if (typeof p === 'string') this.#times[t++] = strftime(p, d);
      t = 0;
    }
    let out = '';
    for (const p of this.#parts) out += typeof p === 'string' ? this.#times[t++] : p.render(vars);
    return out;
  }
}

interface EsDoc {
  readonly index: string;
  readonly entry: Record<string, unknown>;
}

/** The Bulk API body: an action line and an entry line per document, each ending with a newline. */
export function bulkBody(docs: readonly EsDoc[], majorVersion: string | null): string {
  const typed = majorVersion === '5' || majorVersion === '6';
  let out = '';
  for (const d of docs) {
    out += JSON.stringify({ index: typed ? { _index: d.index, _type: '_doc' } : { _index: d.index } }) + '\n';
    out += JSON.stringify(d.entry) + '\n';
  }
  return out;
}

class EsSink {
  readonly #addrs: readonly string[];
  readonly #headers: Record<string, string>;
  /** The probe sends the credentials and custom headers, not the content headers of the bulk call. */
  readonly #probeHeaders: Record<string, string>;
  readonly #http: SinkHttp;
  readonly #log: Logger;
  #next = 0;
  /** Elasticsearch major version, once a probe succeeded. */
  #version: string | null = null;
  #probe: Promise<void> | null = null;

  constructor(conf: JsonObject, log: Logger) {
    this.#addrs = typeof conf.endpoint_addr === 'string' ? [conf.endpoint_addr] : (conf.endpoint_addrs as string[]);
    const probe: Record<string, string> = {};
    const auth = conf.auth as { username?: string; password?: string } | undefined;
    if (auth?.username !== undefined) probe.authorization = 'Basic ' + Buffer.from(`${auth.username}:${auth.password ?? ''}`).toString('base64');
    const custom = Object.entries((conf.headers as Record<string, string> | undefined) ?? {});
    for (const [k, v] of custom) probe[k.toLowerCase()] = v;
    this.#probeHeaders = probe;
    const bulk: Record<string, string> = { 'content-type': 'application/x-ndjson', accept: 'application/vnd.elasticsearch+json', ...probe };
    this.#headers = bulk;
    this.#http = new SinkHttp({ sslVerify: conf.ssl_verify !== false, timeoutMs: (conf.timeout as number) * 1000 });
    this.#log = log;
  }

  #pick(): string {
    const a = this.#addrs[this.#next % this.#addrs.length]!;
    this.#next = (this.#next + 1) % this.#addrs.length;
    return a;
  }

  async #detect(): Promise<void> {
    const addr = this.#pick();
    try {
      const res = await this.#http.send('GET', addr, this.#probeHeaders);
      if (res.status !== 200) throw new Error(`server returned status: ${res.status}, body: ${res.body}`);
      const number = (JSON.parse(res.body) as { version?: { number?: unknown } }).version?.number;
      if (typeof number !== 'string') throw new Error('failed to get version from response body');
      const major = /^(\d+)\./.exec(number);
      if (major === null) throw new Error(`invalid version format: ${number}`);
      this.#version = major[1]!;
    } catch (err) {
      this.#log.error({ err, endpoint: addr }, 'elasticsearch-logger: failed to get Elasticsearch version');
    }
  }

  readonly send = async (docs: EsDoc[]): Promise<void> => {
    if (this.#version === null) {
      this.#probe ??= this.#detect().finally(() => (this.#probe = null));
      await this.#probe;
    }
    const addr = this.#pick();
    const res = await this.#http.send('POST', `${addr}/_bulk`, this.#headers, bulkBody(docs, this.#version));
    if (res.status !== 200) throw new Error(`elasticsearch server returned status: ${res.status}, body: ${res.body}`);
  };
}

class EsLogger implements PluginInstance {
  readonly #opts: LogOptions;
  readonly #index: IndexTemplate;
  readonly #handle: ReturnType<typeof acquireProcessor<EsDoc>>;

  constructor(opts: LogOptions, index: IndexTemplate, handle: ReturnType<typeof acquireProcessor<EsDoc>>) {
    this.#opts = opts;
    this.#index = index;
    this.#handle = handle;
    if (opts.includeReqBody) this.access = requestBodyPhase(opts);
    if (opts.includeRespBody) this.body_filter = responseBodyPhase(opts);
  }

  access?: (ctx: HttpContext) => PhaseResult | Promise<PhaseResult>;
  body_filter?: (ctx: HttpContext, chunk: Buffer) => Buffer;

  log(ctx: HttpContext): void {
    this.#handle.push({ index: this.#index.render(ctx.vars), entry: logEntry(ctx, this.#opts) });
  }

  destroy(): void {
    this.#handle.release();
  }
}

export const elasticsearchLoggerPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 413,
  schema,
  metadataSchema: BATCH_LOG_METADATA_SCHEMA,
  encryptFields: ['auth.password', 'headers'],
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    const index = new IndexTemplate(String((conf.field as JsonObject).index));
    return new EsLogger(logOptions(conf, env), index, acquireProcessor(NAME, conf, env, new EsSink(conf, env.logger).send));
  },
};

export default elasticsearchLoggerPlugin;
