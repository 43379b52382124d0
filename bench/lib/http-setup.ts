// The shared cast of the HTTP scenarios: the static upstream and the comparison proxies, each on a random
// loopback port, registered on the context so the runner stops them.
import path from 'node:path';
import { freePort } from '../../test/helpers/ports.ts';
import type { Target } from './compare.ts';
import { startHaproxy } from './haproxy.ts';
import { startNginxProxy, startNginxUpstream } from './nginx.ts';
import { startFastifyProxy, startUndiciProxy } from './node-peers.ts';
import { track, type Service } from './service.ts';
import type { ScenarioContext } from './types.ts';

export type HttpPeer = 'nginx' | 'haproxy' | 'fastify' | 'undici';

export async function startUpstream(ctx: ScenarioContext): Promise<{ svc: Service; port: number }> {
  const port = await freePort();
  const svc = await startNginxUpstream(path.join(ctx.tmp, 'upstream'), port);
  ctx.services.push(svc);
  return { svc, port };
}

export function directTarget(upstreamPort: number): Target {
  return { name: 'direct', url: `http://127.0.0.1:${upstreamPort}`, pid: null };
}

type Starter = (ctx: ScenarioContext, port: number, upstreamPort: number, nginxRoutes: number) => Promise<Service>;

const STARTERS: Record<HttpPeer, Starter> = {
  nginx: (ctx, port, up, routes) => startNginxProxy(path.join(ctx.tmp, 'nginx'), port, up, routes),
  haproxy: (ctx, port, up) => startHaproxy(path.join(ctx.tmp, 'haproxy'), 'http', port, up),
  fastify: (_ctx, port, up) => startFastifyProxy(port, up),
  undici: (_ctx, port, up) => startUndiciProxy(port, up),
};

/** Starts the named peers (concurrently) in front of `upstreamPort`; `nginxRoutes` > 0 gives nginx that many exact locations. */
export async function startHttpPeers(ctx: ScenarioContext, upstreamPort: number, peers: readonly HttpPeer[], nginxRoutes = 0): Promise<Target[]> {
  const ports: number[] = [];
  for (let i = 0; i < peers.length; i++) ports.push(await freePort());
  const started = await Promise.all(peers.map((name, i) => track(ctx.services, STARTERS[name](ctx, ports[i]!, upstreamPort, nginxRoutes))));
  return started.map((svc, i) => ({ name: peers[i]!, url: `http://127.0.0.1:${ports[i]}`, pid: svc.pid }));
}
