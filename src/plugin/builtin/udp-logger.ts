// udp-logger (APISIX priority 400): each batch is one datagram of JSON (one object, or an array) to host:port.
import dgram from 'node:dgram';
import net from 'node:net';
import type { JsonObject } from '../../config/resources.ts';
import type { PluginDef } from '../plugin.ts';
import { acquireProcessor, BATCH_LOG_METADATA_SCHEMA, BatchLogger, encodeBatch, loggerSchema, logOptions } from './log-common.ts';

const NAME = 'udp-logger';

const schema = loggerSchema(
  {
    host: { type: 'string' },
    port: { type: 'integer', minimum: 0 },
    timeout: { type: 'integer', minimum: 1, default: 3 },
  },
  ['host', 'port'],
  NAME,
);

export function sendOverUdp(host: string, port: number, data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
    sock.once('error', (err) => {
      sock.close();
      reject(err);
    });
    sock.send(data, port, host, (err) => {
      sock.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

function sinkFor(conf: JsonObject): (entries: Record<string, unknown>[]) => Promise<void> {
  const host = String(conf.host);
  const port = conf.port as number;
  return (entries) => sendOverUdp(host, port, encodeBatch(entries));
}

export const udpLoggerPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 400,
  schema,
  metadataSchema: BATCH_LOG_METADATA_SCHEMA,
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new BatchLogger(logOptions(conf, env), acquireProcessor(NAME, conf, env, sinkFor(conf)), null);
  },
};

export default udpLoggerPlugin;
