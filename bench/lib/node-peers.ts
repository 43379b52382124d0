// Node child processes of the bench: the @fastify/http-proxy and undici comparison proxies, the idle TCP
// connection holder, and nodePeer for any other script of bench/peers/. Each runs on the project's Node
// (process.execPath).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../test/helpers/proc.ts';
import { spawnService, waitListening, type Service } from './service.ts';

const PEERS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../peers');

/** bench/peers/<script> on the project's Node, NODE_ENV=production. */
export function nodePeer(name: string, script: string, args: string[]): Service {
  return spawnService(name, process.execPath, [path.join(PEERS_DIR, script), ...args], {
    env: { ...process.env, NODE_ENV: 'production' },
  });
}

export async function startFastifyProxy(port: number, upstreamPort: number): Promise<Service> {
  const svc = nodePeer('fastify', 'fastify-proxy.ts', [String(port), `http://127.0.0.1:${upstreamPort}`]);
  await waitListening(svc, [port]);
  return svc;
}

export async function startUndiciProxy(port: number, upstreamPort: number): Promise<Service> {
  const svc = nodePeer('undici', 'undici-proxy.ts', [String(port), `http://127.0.0.1:${upstreamPort}`]);
  await waitListening(svc, [port]);
  return svc;
}

/** An upstream that accepts TCP connections, echoes their first bytes and holds them open. */
export async function startIdleServer(port: number): Promise<Service> {
  const svc = nodePeer('idle-upstream', 'tcp-idle.ts', ['server', String(port)]);
  await waitListening(svc, [port]);
  return svc;
}

/** Opens `count` idle connections to `port`; resolves once all are proxied end to end (or failed). */
export async function openIdleConnections(port: number, count: number, timeoutMs: number): Promise<{ client: Service; connected: number; failed: number }> {
  const client = nodePeer('idle-client', 'tcp-idle.ts', ['client', String(port), String(count)]);
  const m = await waitFor(() => {
    if (!client.alive()) throw new Error(`idle client exited: ${client.output().slice(-2000)}`);
    return /connected (\d+) failed (\d+)/.exec(client.output());
  }, timeoutMs, 100);
  return { client, connected: Number(m![1]), failed: Number(m![2]) };
}
