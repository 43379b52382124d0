// A real mosquitto broker for the memory scenario's MQTT sessions: loopback, anonymous, no persistence, no
// log output (10,000 connects would fill the captured output), stopped by pid. Installed with apt-get when
// missing and running as root, as bench/lib/tools.ts does for the other peers.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawnService, waitListening, type Service } from './service.ts';

export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

export function ensureMosquitto(log: (msg: string) => void): void {
  if (existsSync(MOSQUITTO_BIN)) return;
  if (process.getuid?.() !== 0) throw new Error('missing bench peer (install as root): apt-get install -y mosquitto');
  log('installing bench peer: mosquitto');
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env, timeout: 300_000 });
  execFileSync('apt-get', ['install', '-y', '-qq', 'mosquitto'], { stdio: 'inherit', env, timeout: 300_000 });
}

export async function startMosquitto(dir: string, port: number): Promise<Service> {
  await mkdir(dir, { recursive: true });
  const conf = path.join(dir, 'mosquitto.conf');
  // mosquitto raises its soft fd limit to the hard one itself; max_connections -1 is unlimited.
  await writeFile(conf, [`listener ${port} 127.0.0.1`, 'allow_anonymous true', 'persistence false', 'log_dest none', 'max_connections -1', ''].join('\n'));
  const svc = spawnService('mosquitto', MOSQUITTO_BIN, ['-c', conf]);
  await waitListening(svc, [port]);
  return svc;
}
