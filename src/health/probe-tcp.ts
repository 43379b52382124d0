// tcp probe: a connection that opens within `timeout` is a success; it is closed at once.
import net from 'node:net';
import type { ActiveConf } from './conf.ts';
import { failure, SUCCESS, type ProbeRegistry, type ProbeResult, type ProbeTarget } from './probe.ts';

export function tcpProbe(target: ProbeTarget, conf: ActiveConf): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: target.ip, port: target.port });
    let settled = false;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done(failure('timeout', 'connect timeout')), conf.timeout * 1000);
    sock.once('connect', () => done(SUCCESS));
    sock.on('error', (err) => done(failure('tcp', err.message)));
  });
}

export function setup(registry: ProbeRegistry): void {
  registry.register('tcp', tcpProbe);
}
