// The part of a stream session shared by TCP and UDP: route match, preread plugins (global rules first),
// and resolving the upstream (a traffic-split override, else the route's).
import { runPreread, runStreamLog } from '../../src/plugin/runner.ts';
import type { UpstreamRuntime } from '../../src/upstream/upstream.ts';
import type { StreamRoute, StreamRuntime } from '../../stream-routes/types.ts';
import type { StreamSession } from './session.ts';
import type { StreamTimeouts } from './options.ts';

export type Admission =
  | { readonly ok: true; readonly route: StreamRoute; readonly upstream: UpstreamRuntime }
  /** `route` is set when the failure happened after the match (stream log plugins then run). */
  | { readonly ok: false; readonly reason: string; readonly route: StreamRoute | null };

/** Synchronous unless a preread plugin is (no promise or microtask per session for the usual routes). */
export function admit(runtime: StreamRuntime, s: StreamSession): Admission | Promise<Admission> {
  const route = runtime.router.match({
    serverAddr: s.serverAddr,
    serverPort: s.serverPort,
    remoteAddr: s.remoteAddr,
    sni: s.sni,
  });
  if (route === null) return { ok: false, reason: 'no stream route matched', route: null };
  s.route = route;
  if (route.broken !== null) {
    s.status = 503;
    return { ok: false, reason: route.broken, route };
  }
  const r = runPreread(runtime.global, route.chain, s);
  if (r !== undefined && typeof (r as Promise<unknown>).then === 'function') {
    return (r as Promise<unknown>).then((v) => afterPreread(runtime, route, s, v));
  }
  return afterPreread(runtime, route, s, r);
}

function afterPreread(runtime: StreamRuntime, route: StreamRoute, s: StreamSession, r: unknown): Admission {
  if (r !== undefined) {
    s.status = (r as { status: number }).status;
    return { ok: false, reason: `closed by a preread plugin (status ${s.status})`, route };
  }
  const upstream = s.upstreamOverride !== null ? runtime.resolveUpstream(s.upstreamOverride) : route.upstream;
  if (upstream === null) {
    s.status = 502;
    return { ok: false, reason: 'route has no upstream', route };
  }
  return { ok: true, route, upstream };
}

/** Runs stream log plugins for a session that reached a route. Never throws. */
export function logSession(runtime: StreamRuntime, route: StreamRoute | null, s: StreamSession): void {
  if (route === null) return;
  runStreamLog(runtime.global, route.chain, s);
}

/** Connect and idle bounds: the upstream's `timeout` when set, the stream defaults otherwise. */
export function upstreamTimeouts(up: UpstreamRuntime, d: StreamTimeouts): { connectMs: number; idleMs: number } {
  if (up.conf.timeout === undefined || up.conf.timeout === null) return { connectMs: d.connectMs, idleMs: d.idleMs };
  return { connectMs: up.connectTimeoutMs, idleMs: Math.round(up.timeout.read * 1000) };
}
