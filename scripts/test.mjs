#!/usr/bin/env node
// The README test command: installs the Debian peers the suite drives (when missing), then runs vitest.
// Peers are started by test/helpers on random loopback ports; nothing here starts a daemon.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const PEERS = [
  ['etcd', 'etcd-server'],
  ['etcdctl', 'etcd-client'],
  ['redis-server', 'redis-server'],
  ['mosquitto', 'mosquitto'],
  ['mosquitto_sub', 'mosquitto-clients'],
  ['dnsmasq', 'dnsmasq-base'],
  ['dig', 'dnsutils'],
  ['curl', 'curl'],
  ['wrk', 'wrk'],
  ['nginx', 'nginx'],
  ['haproxy', 'haproxy'],
  ['openssl', 'openssl'],
  ['slapd', 'slapd'],
  ['ldapadd', 'ldap-utils'],
  ['gtlsclient', 'ngtcp2-client'],
  ['chromium', 'chromium'],
  ['protoc', 'protobuf-compiler'],
  ['prometheus', 'prometheus'],
  ['rsyslogd', 'rsyslog'],
  ['clickhouse-server', 'clickhouse-server'],
];

function has(bin) {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0 ||
    existsSync(`/usr/sbin/${bin}`) || existsSync(`/usr/bin/${bin}`);
}

const missing = [...new Set(PEERS.filter(([bin]) => !has(bin)).map(([, pkg]) => pkg))];
if (missing.length > 0) {
  if (process.getuid?.() !== 0) {
    console.error(`missing test peers (install as root): apt-get install -y ${missing.join(' ')}`);
    process.exit(1);
  }
  console.log(`installing test peers: ${missing.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env });
  execFileSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env });
}

const args = process.argv.slice(2);
const r = spawnSync(process.execPath, ['node_modules/vitest/vitest.mjs', 'run', ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);
