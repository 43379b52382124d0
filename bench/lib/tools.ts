// The Debian peers the bench drives. Missing ones are installed with apt-get when running as root (as
// scripts/test.mjs does for the test peers); otherwise the run stops with the command to type.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { GTLSCLIENT_BIN, H2LOAD_BIN } from './h2h3.ts';
import { HAPROXY_BIN } from './haproxy.ts';
import { NGINX_BIN, NGINX_STREAM_MODULE } from './nginx.ts';
import { WRK_BIN } from './wrk.ts';

const REQUIRED: readonly [file: string, pkg: string][] = [
  [WRK_BIN, 'wrk'],
  [NGINX_BIN, 'nginx'],
  [NGINX_STREAM_MODULE, 'libnginx-mod-stream'],
  [HAPROXY_BIN, 'haproxy'],
  ['/usr/bin/etcd', 'etcd-server'],
  ['/usr/bin/etcdctl', 'etcd-client'],
  ['/usr/bin/redis-server', 'redis-server'],
  [H2LOAD_BIN, 'nghttp2-client'],
  [GTLSCLIENT_BIN, 'ngtcp2-client'],
];

export function ensureTools(log: (msg: string) => void): void {
  const missing = [...new Set(REQUIRED.filter(([file]) => !existsSync(file)).map(([, pkg]) => pkg))];
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) throw new Error(`missing bench peers (install as root): apt-get install -y ${missing.join(' ')}`);
  log(`installing bench peers: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env, timeout: 300_000 });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env, timeout: 300_000 });
}
