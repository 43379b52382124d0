// syslog (APISIX priority 401): each entry becomes an RFC 5424 line (facility SYSLOG, severity INFO -> <46>,
// hostname = the request host, app `apisix`, the process id) sent in batches over TCP or UDP (sock_type) to
// host:port; `timeout` in ms. On UDP each batch is one datagram of newline-terminated lines.
import type { JsonObject } from '../../config/resources.ts';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance } from '../plugin.ts';
import {
  acquireProcessor,
  BATCH_LOG_METADATA_SCHEMA,
  logEntry,
  loggerSchema,
  logOptions,
  requestBodyPhase,
  responseBodyPhase,
  type LogOptions,
  type ProcessorHandle,
} from './log-common.ts';
import { sendOverTcp } from './tcp-logger.ts';
import { sendOverUdp } from './udp-logger.ts';

const NAME = 'syslog';

const schema = loggerSchema(
  {
    host: { type: 'string' },
    port: { type: 'integer' },
    flush_limit: { type: 'integer', minimum: 1, default: 4096 },
    drop_limit: { type: 'integer', default: 1048576 },
    timeout: { type: 'integer', minimum: 1, default: 3000 },
    sock_type: { type: 'string', default: 'tcp', enum: ['tcp', 'udp'] },
    pool_size: { type: 'integer', minimum: 5, default: 5 },
    tls: { type: 'boolean', default: false },
  },
  ['host', 'port'],
  'sys logger',
);

/** RFC 5424 with APISIX's fields (apisix/utils/rfc5424.lua): `<46>1 <RFC 3339 UTC> host apisix pid - - msg`. */
export function rfc5424(hostname: string, msg: string): string {
  return `<46>1 ${new Date().toISOString()} ${hostname || '-'} apisix ${process.pid} - - ${msg}\n`;
}

class Syslog implements PluginInstance {
  readonly #opts: LogOptions;
  readonly #handle: ProcessorHandle<string>;
  access?: (ctx: HttpContext) => PhaseResult | Promise<PhaseResult>;
  body_filter?: (ctx: HttpContext, chunk: Buffer) => Buffer;

  constructor(opts: LogOptions, handle: ProcessorHandle<string>) {
    this.#opts = opts;
    this.#handle = handle;
    if (opts.includeReqBody) this.access = requestBodyPhase(opts);
    if (opts.includeRespBody) this.body_filter = responseBodyPhase(opts);
  }

  log(ctx: HttpContext): void {
    this.#handle.push(rfc5424(ctx.request.host, JSON.stringify(logEntry(ctx, this.#opts))));
  }

  destroy(): void {
    this.#handle.release();
  }
}

function sinkFor(conf: JsonObject): (lines: string[]) => Promise<void> {
  const host = String(conf.host);
  const port = conf.port as number;
  const timeoutMs = conf.timeout as number;
  if (conf.sock_type === 'udp') return (lines) => sendOverUdp(host, port, lines.join(''));
  return (lines) => sendOverTcp(host, port, conf.tls === true, timeoutMs, lines.join(''));
}

export const syslogPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 401,
  schema,
  metadataSchema: BATCH_LOG_METADATA_SCHEMA,
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new Syslog(logOptions(conf, env), acquireProcessor(NAME, conf, env, sinkFor(conf)));
  },
};

export default syslogPlugin;
