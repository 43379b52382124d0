// http-logger (APISIX priority 410): batches of log entries POSTed to `uri` (JSON: one object, or an array for
// several; concat_method new_line: one JSON entry per line, text/plain), Authorization: auth_header, timeout in
// seconds. A status >= 400 or a network error fails the batch (batch processor retries). ssl_verify
// (default false) decides whether an https uri's certificate must be trusted; auth_header is stored encrypted.
import type { JsonObject } from '../../config/resources.ts';
import type { PluginDef } from '../plugin.ts';
import { acquireProcessor, BATCH_LOG_METADATA_SCHEMA, BatchLogger, checkBodyExprs, encodeBatch, loggerSchema, logOptions } from './log-common.ts';
import { SinkHttp } from './log-http.ts';

const NAME = 'http-logger';

const schema = loggerSchema(
  {
    uri: { type: 'string', pattern: '^[^\\/]+:\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?' },
    auth_header: { type: 'string' },
    timeout: { type: 'integer', minimum: 1, default: 3 },
    concat_method: { type: 'string', default: 'json', enum: ['json', 'new_line'] },
    ssl_verify: { type: 'boolean', default: false },
  },
  ['uri'],
  NAME,
);

function sinkFor(conf: JsonObject): (entries: Record<string, unknown>[]) => Promise<void> {
  const uri = String(conf.uri);
  const http = new SinkHttp({ sslVerify: conf.ssl_verify === true, timeoutMs: (conf.timeout as number) * 1000 });
  const newLine = conf.concat_method === 'new_line';
  const headers: Record<string, string> = { 'content-type': newLine ? 'text/plain' : 'application/json' };
  if (typeof conf.auth_header === 'string') headers.authorization = conf.auth_header;
  return async (entries) => {
    const body = newLine ? entries.map((e) => JSON.stringify(e)).join('\n') : encodeBatch(entries);
    const res = await http.send('POST', uri, headers, body);
    if (res.status >= 400) throw new Error(`server returned status code[${res.status}] body[${res.body}]`);
  };
}

export const httpLoggerPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 410,
  schema,
  metadataSchema: BATCH_LOG_METADATA_SCHEMA,
  encryptFields: ['auth_header'],
  subsystems: ['http'],
  status: 'stable',
  check(conf, schemaType) {
    return schemaType === 'route' ? checkBodyExprs(conf) : null;
  },
  create(conf, env) {
    return new BatchLogger(logOptions(conf, env), acquireProcessor(NAME, conf, env, sinkFor(conf)), 'no-matched');
  },
};

export default httpLoggerPlugin;
