// tcp-logger (APISIX priority 405): each batch is written as JSON (one object, or an array) on a new TCP (or
// TLS with `tls`) connection to host:port, closed after the write; `timeout` in ms bounds connect + write.
import net from 'node:net';
import tls from 'node:tls';
import type { JsonObject } from '../../config/resources.ts';
import type { PluginDef } from '../plugin.ts';
import { acquireProcessor, BATCH_LOG_METADATA_SCHEMA, BatchLogger, encodeBatch, loggerSchema, logOptions } from './log-common.ts';

const NAME = 'tcp-logger';

const schema = loggerSchema(
  {
    host: { type: 'string' },
    port: { type: 'integer', minimum: 0 },
    tls: { type: 'boolean', default: false },
    tls_options: { type: 'string' },
    timeout: { type: 'integer', minimum: 1, default: 1000 },
  },
  ['host', 'port'],
  NAME,
);

export function sendOverTcp(host: string, port: number, useTls: boolean, timeoutMs: number, data: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = useTls ? tls.connect({ host, port, servername: net.isIP(host) ? undefined : host }) : net.connect({ host, port });
    sock.setTimeout(timeoutMs, () => sock.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    sock.once('error', reject);
    sock.once(useTls ? 'secureConnect' : 'connect', () => sock.end(data, () => resolve()));
  });
}

function sinkFor(conf: JsonObject): (entries: Record<string, unknown>[]) => Promise<void> {
  const host = String(conf.host);
  const port = conf.port as number;
  const useTls = conf.tls === true;
  const timeoutMs = conf.timeout as number;
  return (entries) => sendOverTcp(host, port, useTls, timeoutMs, encodeBatch(entries));
}

export const tcpLoggerPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 405,
  schema,
  metadataSchema: BATCH_LOG_METADATA_SCHEMA,
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new BatchLogger(logOptions(conf, env), acquireProcessor(NAME, conf, env, sinkFor(conf)), null);
  },
};

export default tcpLoggerPlugin;
