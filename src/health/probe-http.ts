// http/https probes: one request on a fresh connection (never pooled), judged by the status line only; the
// body is not read and the connection is destroyed once the status arrives. Status in healthy.http_statuses:
// success; in unhealthy.http_statuses: http failure; any other status is ignored. Connection errors are tcp
// failures; exceeding `timeout` (connect to status line) is a timeout.
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { ActiveConf } from './conf.ts';
import { failure, IGNORED, probeHeaders, SUCCESS, type ProbeRegistry, type ProbeResult, type ProbeTarget } from './probe.ts';

function headersOf(target: ProbeTarget, conf: ActiveConf): Record<string, string> {
  const out: Record<string, string> = { host: target.hostname, 'user-agent': 'switchyard-healthcheck', connection: 'close' };
  probeHeaders(conf.reqHeaders, out, false);
  if (conf.body !== '') out['content-length'] = String(Buffer.byteLength(conf.body));
  return out;
}

function judge(status: number, conf: ActiveConf): ProbeResult {
  if (conf.healthy.statuses.has(status)) return SUCCESS;
  if (conf.unhealthy.statuses.has(status)) return failure('http', `status ${status}`);
  return IGNORED;
}

function request(tls: boolean, target: ProbeTarget, conf: ActiveConf): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const opts: https.RequestOptions = {
      host: target.ip,
      port: target.port,
      method: conf.method,
      path: conf.path,
      headers: headersOf(target, conf),
      agent: false,
    };
    if (tls) {
      opts.rejectUnauthorized = conf.verifyCertificate;
      if (net.isIP(target.hostname) === 0) opts.servername = target.hostname;
    }
    const req = (tls ? https : http).request(opts);
    let settled = false;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done(failure('timeout', 'probe timeout')), conf.timeout * 1000);
    req.once('response', (res) => {
      res.resume();
      done(judge(res.statusCode ?? 0, conf));
    });
    req.on('error', (err) => done(failure('tcp', err.message)));
    req.end(conf.body === '' ? undefined : conf.body);
  });
}

export function setup(registry: ProbeRegistry): void {
  registry.register('http', (t, c) => request(false, t, c));
  registry.register('https', (t, c) => request(true, t, c));
}
