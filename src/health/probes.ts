// Registers every built-in probe type.
import type { ProbeRegistry } from './probe.ts';
import { setup as grpc } from './probe-grpc.ts';
import { setup as http } from './probe-http.ts';
import { setup as tcp } from './probe-tcp.ts';
import { setup as udp } from './probe-udp.ts';

export function setupProbes(registry: ProbeRegistry): void {
  http(registry);
  tcp(registry);
  udp(registry);
  grpc(registry);
}
