// udp probe (Switchyard extension): sends `udp_payload` on a connected socket. With `udp_expect`, a reply
// starting with those bytes within `timeout` is a success, another reply a failure and silence a timeout.
// Without it, any reply or silence is a success and only an ICMP port-unreachable (ECONNREFUSED on a
// connected socket) is a failure, which is the most a payload-less check can tell.
import dgram from 'node:dgram';
import net from 'node:net';
import type { ActiveConf } from './conf.ts';
import { failure, SUCCESS, type ProbeRegistry, type ProbeResult, type ProbeTarget } from './probe.ts';

export function udpProbe(target: ProbeTarget, conf: ActiveConf): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(target.ip) ? 'udp6' : 'udp4');
    let settled = false;
    const done = (r: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.close();
      resolve(r);
    };
    const expect = conf.udpExpect;
    const timer = setTimeout(
      () => done(expect === null ? SUCCESS : failure('timeout', 'no reply')),
      conf.timeout * 1000,
    );
    sock.on('message', (msg) => {
      if (expect === null || (msg.length >= expect.length && msg.subarray(0, expect.length).equals(expect))) done(SUCCESS);
      else done(failure('tcp', 'unexpected reply'));
    });
    sock.on('error', (err) => done(failure('tcp', err.message)));
    sock.connect(target.port, target.ip, () => {
      sock.send(conf.udpPayload, (err) => {
        if (err) done(failure('tcp', err.message));
      });
    });
  });
}

export function setup(registry: ProbeRegistry): void {
  registry.register('udp', udpProbe);
}
