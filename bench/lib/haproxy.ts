// haproxy as a comparison peer: HTTP mode (connection reuse to the upstream) or TCP mode, one thread, in the
// foreground (-db) with its config in a temp dir.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fdHardLimit, spawnService, waitListening, type Service } from './service.ts';

export const HAPROXY_BIN = '/usr/sbin/haproxy';

export async function startHaproxy(dir: string, mode: 'http' | 'tcp', port: number, upstreamPort: number): Promise<Service> {
  await mkdir(dir, { recursive: true });
  // haproxy needs two descriptors per proxied connection and refuses to start above the hard fd limit.
  const maxconn = Math.floor((fdHardLimit() - 200) / 2);
  const conf =
    `global\n  nbthread 1\n  maxconn ${maxconn}\n\n` +
    `defaults\n  mode ${mode}\n  timeout connect 5s\n  timeout client 10m\n  timeout server 10m\n` +
    (mode === 'http' ? `  http-reuse always\n` : '') +
    `\nfrontend fe\n  bind 127.0.0.1:${port}\n  default_backend be\n\n` +
    `backend be\n  server up1 127.0.0.1:${upstreamPort}\n`;
  const file = path.join(dir, 'haproxy.cfg');
  await writeFile(file, conf);
  const svc = spawnService(mode === 'http' ? 'haproxy' : 'haproxy-tcp', HAPROXY_BIN, ['-db', '-f', file]);
  await waitListening(svc, [port]);
  return svc;
}
