// Active health checks of ai-proxy-multi instances (APISIX: an instance with `checks.active` gets a checker over
// its endpoint's host and port; the instance's auth headers join `req_headers` and its auth query args are
// appended to `http_path`, so probes authenticate like requests). The probing, thresholds and state rules are
// src/health's (UpstreamChecker, the registered probes); the balancer reads the result as a HealthView keyed by
// instance name: unhealthy instances are skipped, and when every instance is unhealthy all are used again (the
// core balancers' all-unhealthy fallback, APISIX's "all upstream nodes is unhealthy, use default").
// Checkers are shared by instance scope (route + instance name + endpoint + checks), reference-counted by the
// plugin instances using them: a config swap that keeps an instance's checks keeps its health state and never
// runs two probe loops. They start on first use, so only processes that serve traffic probe.
import type { JsonObject } from '../../../config/resources.ts';
import { UpstreamChecker } from '../../../health/checker.ts';
import { healthConfOf } from '../../../health/conf.ts';
import { ProbeRegistry } from '../../../health/probe.ts';
import { setupProbes } from '../../../health/probes.ts';
import { HealthTable } from '../../../health/state.ts';
import type { Logger } from '../../../observability/logger.ts';
import type { HealthView } from '../../../upstream/balancer.ts';

let probes: ProbeRegistry | null = null;

function probeRegistry(): ProbeRegistry {
  if (probes === null) {
    probes = new ProbeRegistry();
    setupProbes(probes);
  }
  return probes;
}

interface Shared {
  readonly id: string;
  readonly checker: UpstreamChecker;
  readonly table: HealthTable;
  /** The endpoint key (`host:port`) in the table. */
  readonly node: string;
  refs: number;
  started: boolean;
}

const shared = new Map<string, Shared>();

function isObj(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** checks.active with the instance's auth on the probes (APISIX construct_upstream). */
function probeConf(active: JsonObject, auth: JsonObject): JsonObject {
  const out: JsonObject = structuredClone(active);
  const header = auth.header;
  if (isObj(header)) {
    const list = Array.isArray(out.req_headers) ? (out.req_headers as string[]).slice() : [];
    for (const k in header) {
      const line = `${k}: ${String(header[k])}`;
      if (!list.includes(line)) list.push(line);
    }
    if (list.length > 0) out.req_headers = list;
  }
  const query = auth.query;
  if (isObj(query)) {
    const args = new URLSearchParams();
    for (const k in query) args.set(k, String(query[k]));
    const path = typeof out.http_path === 'string' ? out.http_path : '/';
    out.http_path = `${path}${path.includes('?') ? '&' : '?'}${args.toString()}`;
  }
  return out;
}

/** host and port of an instance's endpoint origin (`https://host[:port]`). */
function nodeOf(origin: string): { host: string; port: number } {
  const u = new URL(origin);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = u.port !== '' ? Number(u.port) : u.protocol === 'https:' ? 443 : 80;
  return { host, port };
}

/** The health of one ai-proxy-multi conf's instances, as the balancer reads it. */
export class InstanceHealth implements HealthView {
  readonly #byName = new Map<string, Shared>();

  /** `origins`: instance name -> endpoint origin, for the instances of `instances` that have checks.active. */
  constructor(scope: string, instances: readonly JsonObject[], origins: ReadonlyMap<string, string | null>, logger: Logger) {
    for (const ins of instances) {
      const active = (ins.checks as JsonObject | undefined)?.active;
      const name = String(ins.name);
      const origin = origins.get(name);
      if (!isObj(active) || origin === undefined || origin === null) continue;
      const conf = probeConf(active, (ins.auth as JsonObject | undefined) ?? {});
      const { host, port } = nodeOf(origin);
      const node = `${host}:${port}`;
      const id = `${scope}#ai-proxy-multi.instances[${name}]`;
      const key = `${id}#${node}#${JSON.stringify(conf)}`;
      let s = shared.get(key);
      if (s === undefined) {
        const hc = healthConfOf({ checks: { active: conf } })!;
        const table = new HealthTable();
        // The checker's key shows in its log lines: the instance, never the probe's auth.
        const checker = new UpstreamChecker(id, hc, table, hc.active?.host ?? null, {
          probes: probeRegistry(),
          passiveCooldownMs: 0,
          onChange: noop,
          logger,
        });
        checker.setEndpoints([{ key: node, host, port, domain: host, weight: 1, priority: 0 }]);
        s = { id: key, checker, table, node, refs: 0, started: false };
        shared.set(key, s);
      }
      s.refs++;
      this.#byName.set(name, s);
    }
  }

  get size(): number {
    return this.#byName.size;
  }

  /** Starts the probes of checkers not yet running (first request, as APISIX creates checkers). */
  start(): void {
    for (const s of this.#byName.values()) {
      if (s.started) continue;
      s.started = true;
      s.checker.start();
    }
  }

  isHealthy(name: string): boolean {
    // hot path
    const s = this.#byName.get(name);
    return s === undefined || s.table.isHealthy(s.node);
  }

  release(): void {
    for (const s of this.#byName.values()) {
      if (--s.refs > 0) continue;
      s.checker.close();
      shared.delete(s.id);
    }
    this.#byName.clear();
  }
}

function noop(): void {}
