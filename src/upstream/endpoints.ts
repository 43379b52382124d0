// Upstream nodes -> endpoints. Nodes come in the map form `{"host:port": weight}` or the array form
// `[{host, port?, weight, priority?, metadata?}]`; a missing port defaults from the scheme. Hostname nodes
// become one endpoint per resolved address (same weight and priority each), keyed `ip:port`, with `domain`
// keeping the configured name for pass_host=node and SNI.
import net from 'node:net';
import type { JsonObject } from '../config/resources.ts';
import type { Endpoint } from './balancer.ts';

export interface NodeSpec {
  /** Unbracketed host as configured (IP or hostname). */
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly priority: number;
  readonly metadata?: JsonObject;
  readonly isIp: boolean;
}

const SCHEME_PORTS: Readonly<Record<string, number>> = { http: 80, grpc: 80, https: 443, grpcs: 443 };

/** The default port of an L7 scheme, or null for schemes that require explicit ports (tcp, udp, tls, kafka). */
export function defaultPort(scheme: string): number | null {
  return SCHEME_PORTS[scheme] ?? null;
}

export function endpointKey(host: string, port: number): string {
  return net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Splits `host:port`, `[v6]:port`, `[v6]`, `host`; port is null when absent. */
export function splitHostPort(s: string): { host: string; port: number | null } {
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw new Error(`invalid node address ${JSON.stringify(s)}`);
    const host = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (rest === '') return { host, port: null };
    if (!rest.startsWith(':')) throw new Error(`invalid node address ${JSON.stringify(s)}`);
    return { host, port: parsePort(rest.slice(1), s) };
  }
  const colon = s.lastIndexOf(':');
  if (colon < 0) return { host: s, port: null };
  if (s.indexOf(':') !== colon) return { host: s, port: null };
  return { host: s.slice(0, colon), port: parsePort(s.slice(colon + 1), s) };
}

function parsePort(p: string, whole: string): number {
  const n = Number(p);
  if (p === '' || !Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`invalid port in ${JSON.stringify(whole)}`);
  return n;
}

function toNumber(v: unknown, dflt: number, what: string): number {
  if (v === undefined || v === null) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`invalid node ${what}`);
  return v;
}

function spec(host: string, port: number | null, weight: number, priority: number, scheme: string, metadata?: JsonObject): NodeSpec {
  if (host === '') throw new Error('empty node host');
  const p = port ?? defaultPort(scheme);
  if (p === null) throw new Error(`node ${host} needs a port for scheme ${scheme}`);
  if (weight < 0) throw new Error(`negative weight for node ${host}`);
  return metadata === undefined
    ? { host, port: p, weight, priority, isIp: net.isIP(host) !== 0 }
    : { host, port: p, weight, priority, metadata, isIp: net.isIP(host) !== 0 };
}

/** Parses `conf.nodes` (absent nodes, e.g. service discovery, give an empty list). Throws on invalid nodes. */
export function parseNodes(conf: JsonObject): NodeSpec[] {
  const scheme = typeof conf.scheme === 'string' ? conf.scheme : 'http';
  const nodes = conf.nodes;
  const out: NodeSpec[] = [];
  if (nodes === undefined || nodes === null) return out;
  if (Array.isArray(nodes)) {
    for (const n of nodes) {
      if (typeof n !== 'object' || n === null || Array.isArray(n)) throw new Error('invalid node');
      if (typeof n.host !== 'string') throw new Error('node host must be a string');
      const host = n.host.startsWith('[') && n.host.endsWith(']') ? n.host.slice(1, -1) : n.host;
      const port = n.port === undefined || n.port === null ? null : toNumber(n.port, 0, 'port');
      if (port !== null && (!Number.isInteger(port) || port < 1 || port > 65535)) throw new Error(`invalid port for node ${host}`);
      const meta = typeof n.metadata === 'object' && n.metadata !== null && !Array.isArray(n.metadata) ? n.metadata : undefined;
      out.push(spec(host, port, toNumber(n.weight, 1, 'weight'), toNumber(n.priority, 0, 'priority'), scheme, meta));
    }
    return out;
  }
  if (typeof nodes !== 'object') throw new Error('nodes must be an object or an array');
  for (const [addr, weight] of Object.entries(nodes)) {
    const { host, port } = splitHostPort(addr);
    out.push(spec(host, port, toNumber(weight, 1, 'weight'), 0, scheme));
  }
  return out;
}

/**
 * Endpoints for the nodes, given the resolved addresses of hostname nodes (`undefined`: not resolved yet, the
 * node is left out). A later duplicate of an `ip:port` key is dropped.
 */
export function buildEndpoints(nodes: readonly NodeSpec[], resolved: (host: string) => readonly string[] | undefined): Endpoint[] {
  const out: Endpoint[] = [];
  const seen = new Set<string>();
  const add = (n: NodeSpec, ip: string): void => {
    const key = endpointKey(ip, n.port);
    if (seen.has(key)) return;
    seen.add(key);
    const e: Endpoint =
      n.metadata === undefined
        ? { key, host: ip, port: n.port, weight: n.weight, priority: n.priority, domain: n.host }
        : { key, host: ip, port: n.port, weight: n.weight, priority: n.priority, domain: n.host, metadata: n.metadata };
    out.push(Object.freeze(e));
  };
  for (const n of nodes) {
    if (n.isIp) {
      add(n, n.host);
      continue;
    }
    const addrs = resolved(n.host);
    if (addrs) for (const ip of addrs) add(n, ip);
  }
  return out;
}

/** Distinct hostnames (non-IP hosts) among the nodes. */
export function hostnamesOf(nodes: readonly NodeSpec[]): string[] {
  return [...new Set(nodes.filter((n) => !n.isIp).map((n) => n.host))];
}
