// clickhouse-logger (APISIX priority 398): batches of log entries inserted over ClickHouse's HTTP interface as
// APISIX does: POST to endpoint_addr (or one of endpoint_addrs, picked at random per batch) with the body
// `INSERT INTO <logtable> FORMAT JSONEachRow {...} {...}` and X-ClickHouse-User / X-ClickHouse-Key /
// X-ClickHouse-Database headers; a status >= 400 or a network error fails the batch (retries per the batch
// processor). Entries are the usual log entry or `log_format` (conf or plugin_metadata), so the table's
// columns decide what log_format must produce. `password` is stored encrypted (encrypt_fields). ssl_verify
// (default true) decides whether an https endpoint's certificate must be trusted.
import type { JsonObject } from '../../config/resources.ts';
import type { PluginDef } from '../plugin.ts';
import { acquireProcessor, BATCH_LOG_METADATA_SCHEMA, BatchLogger, loggerSchema, logOptions } from './log-common.ts';
import { SinkHttp } from './log-http.ts';

const NAME = 'clickhouse-logger';
const URI = { type: 'string', pattern: '^[^\\/]+:\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?' };

const base = loggerSchema(
  {
    endpoint_addr: URI,
    endpoint_addrs: { type: 'array', items: URI, minItems: 1 },
    user: { type: 'string', default: '' },
    password: { type: 'string', default: '' },
    database: { type: 'string', default: '' },
    logtable: { type: 'string', default: '' },
    timeout: { type: 'integer', minimum: 1, default: 3 },
    ssl_verify: { type: 'boolean', default: true },
  },
  [],
  NAME,
);

const schema: JsonObject = {
  ...base,
  properties: { ...(base.properties as JsonObject), name: { type: 'string', default: 'clickhouse logger' } },
  oneOf: [
    { required: ['endpoint_addr', 'user', 'password', 'database', 'logtable'] },
    { required: ['endpoint_addrs', 'user', 'password', 'database', 'logtable'] },
  ],
};

/** One batch as APISIX encodes it: a single entry alone, several separated by spaces. */
export function clickhouseInsert(logtable: string, entries: readonly unknown[]): string {
  const rows = entries.length === 1 ? JSON.stringify(entries[0]) : entries.map((e) => JSON.stringify(e)).join(' ');
  return `INSERT INTO ${logtable} FORMAT JSONEachRow ${rows}`;
}

function sinkFor(conf: JsonObject): (entries: Record<string, unknown>[]) => Promise<void> {
  const endpoints = typeof conf.endpoint_addr === 'string' ? [conf.endpoint_addr] : (conf.endpoint_addrs as string[]);
  const http = new SinkHttp({ sslVerify: conf.ssl_verify !== false, timeoutMs: (conf.timeout as number) * 1000 });
  const logtable = String(conf.logtable);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'x-clickhouse-user': String(conf.user),
    'x-clickhouse-key': String(conf.password),
    'x-clickhouse-database': String(conf.database),
  };
  return async (entries) => {
    const endpoint = endpoints[Math.floor(Math.random() * endpoints.length)]!;
    const res = await http.send('POST', endpoint, headers, clickhouseInsert(logtable, entries));
    if (res.status >= 400) {
      const u = new URL(endpoint);
      throw new Error(`server returned status code[${res.status}] host[${u.hostname}] port[${u.port}] body[${res.body}]`);
    }
  };
}

export const clickhouseLoggerPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 398,
  schema,
  metadataSchema: BATCH_LOG_METADATA_SCHEMA,
  encryptFields: ['password'],
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new BatchLogger(logOptions(conf, env), acquireProcessor(NAME, conf, env, sinkFor(conf)), null);
  },
};

export default clickhouseLoggerPlugin;
