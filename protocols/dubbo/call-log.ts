// Per-call access log of the L4 Dubbo proxy: APISIX xRPC `protocol.logger` semantics (apisix/stream/xrpc/
// runner.lua finish_req) on the superior stream route:
//   logger: [{name, filter, conf}]   each finished call (a reply, a gateway-made error or a timeout) is offered
//   to every logger in order; the logger runs when its `filter` (a lua-resty-expr rule) matches. As in APISIX,
//   a logger without a filter, or with an empty one, never runs.
// `name` is a stream logger plugin; APISIX ships one, syslog, and so does this: its conf is the syslog plugin's
// (host, port, sock_type, batch settings...), validated and defaulted with that plugin's schema. A logger
// with another name, an invalid conf or a filter that does not compile is skipped with a warning when the
// route is first used (APISIX logs the failure per call).
// Filter variables: rpc_time (seconds, as APISIX's redis xRPC), dubbo_service, dubbo_version, dubbo_method,
// dubbo_status (the status label below), upstream_addr, then the session's variables (remote_addr,
// server_port, route_id...).
// One JSON entry per call: route_id, client_ip, client_port, server_addr, server_port, upstream, service,
// version, method, status (Dubbo status code, "exception" for an OK reply carrying a Java exception), rpc_time,
// start_time (ms since the epoch), sent as an RFC 5424 line as the syslog plugin sends HTTP entries.
// Batch processors are shared per (route id, conf) by acquireProcessor. A route object's loggers are compiled
// for its first session and held while it has sessions: the last session's end releases them, so a route
// whose logger conf changed (a new route object) or that left the snapshot keeps no processor once its old
// sessions are gone.
import os from 'node:os';
import type { JsonObject } from '../../src/config/resources.ts';
import type { Logger } from '../../src/observability/logger.ts';
import { acquireProcessor, type ProcessorHandle } from '../../src/plugin/builtin/log-common.ts';
import { rfc5424, syslogPlugin } from '../../src/plugin/builtin/syslog.ts';
import { sendOverTcp } from '../../src/plugin/builtin/tcp-logger.ts';
import { sendOverUdp } from '../../src/plugin/builtin/udp-logger.ts';
import type { PluginEnv } from '../../src/plugin/plugin.ts';
import { compileExpr, evalExpr, type CompiledExpr } from '../../src/router/expr.ts';
import type { Vars, VarValue } from '../../src/router/vars.ts';
import { compileSchema, runSchema } from '../../src/schema/compile.ts';
import type { StreamRoute } from '../../stream-routes/types.ts';

/** One finished call, as the access log and the filter variables see it. */
export interface CallRecord {
  readonly routeId: string;
  readonly service: string;
  readonly version: string;
  readonly method: string;
  readonly upstream: string | undefined;
  readonly status: string;
  /** Seconds from the request frame to the reply. */
  readonly rpcTime: number;
  /** Milliseconds since the epoch when the request frame arrived. */
  readonly startTime: number;
  readonly remoteAddr: string;
  readonly remotePort: number;
  readonly serverAddr: string;
  readonly serverPort: number;
  /** The session's variables, for the names a call does not define. */
  readonly session: Vars;
}

class CallVars implements Vars {
  readonly r: CallRecord;
  constructor(r: CallRecord) {
    this.r = r;
  }
  get(name: string): VarValue {
    const r = this.r;
    switch (name) {
      case 'rpc_time':
        return r.rpcTime;
      case 'dubbo_service':
        return r.service;
      case 'dubbo_version':
        return r.version;
      case 'dubbo_method':
        return r.method;
      case 'dubbo_status':
        return r.status;
      case 'upstream_addr':
        return r.upstream;
      default:
        return r.session.get(name);
    }
  }
}

interface CallLogger {
  readonly name: string;
  readonly filter: CompiledExpr;
  readonly handle: ProcessorHandle<string>;
}

const NONE: readonly CallLogger[] = [];
const NO_CONSUMERS: PluginEnv['consumers'] = { find: () => undefined, withPlugin: () => [] };
const HOSTNAME = os.hostname();

function syslogSink(conf: JsonObject): (lines: string[]) => Promise<void> {
  const host = String(conf.host);
  const port = conf.port as number;
  const timeoutMs = conf.timeout as number;
  if (conf.sock_type === 'udp') return (lines) => sendOverUdp(host, port, lines.join(''));
  return (lines) => sendOverTcp(host, port, conf.tls === true, timeoutMs, lines.join(''));
}

interface Compiled {
  readonly loggers: readonly CallLogger[];
  /** Sessions of the route object using them. */
  users: number;
}

export class CallLog {
  private readonly logger: Logger;
  private readonly compiled = new Map<StreamRoute, Compiled>();

  constructor(logger: Logger) {
    this.logger = logger;
  }

  /** The loggers of a (superior) route for a new session, compiled once per route object; see release. */
  acquire(route: StreamRoute): readonly CallLogger[] {
    let c = this.compiled.get(route);
    if (c === undefined) this.compiled.set(route, (c = { loggers: this.compile(route), users: 0 }));
    c.users++;
    return c.loggers;
  }

  /** A session of `route` ended: the last one releases the route object's processors. */
  release(route: StreamRoute): void {
    const c = this.compiled.get(route);
    if (c === undefined || --c.users > 0) return;
    this.compiled.delete(route);
    for (const l of c.loggers) l.handle.release();
  }

  /** Number of route objects holding loggers (tests). */
  get size(): number {
    return this.compiled.size;
  }

  /** Offers a finished call to the route's loggers. */
  log(loggers: readonly CallLogger[], r: CallRecord): void {
    const vars = new CallVars(r);
    let line: string | null = null;
    for (const l of loggers) {
      if (!evalExpr(l.filter, vars)) continue;
      line ??= rfc5424(HOSTNAME, JSON.stringify(entryOf(r)));
      l.handle.push(line);
    }
  }

  close(): void {
    for (const c of this.compiled.values()) for (const l of c.loggers) l.handle.release();
    this.compiled.clear();
  }

  private compile(route: StreamRoute): readonly CallLogger[] {
    const p = route.value.protocol as { logger?: unknown } | undefined;
    const list = Array.isArray(p?.logger) ? (p.logger as unknown[]) : [];
    if (list.length === 0) return NONE;
    const out: CallLogger[] = [];
    list.forEach((item, i) => {
      const l = item as { name?: unknown; filter?: unknown; conf?: unknown };
      const where = { route: route.id, logger: i, name: l.name };
      if (l.name !== 'syslog') {
        this.logger.warn(where, 'dubbo call logger skipped: only the syslog stream logger exists');
        return;
      }
      if (!Array.isArray(l.filter) || l.filter.length === 0) return; // APISIX: no filter, no log
      let filter: CompiledExpr;
      try {
        filter = compileExpr(l.filter);
      } catch (err) {
        this.logger.warn({ ...where, reason: (err as Error).message }, 'dubbo call logger skipped: bad filter');
        return;
      }
      const conf = structuredClone((l.conf ?? {}) as JsonObject);
      const bad = runSchema(compileSchema(syslogPlugin.schema), conf);
      if (bad !== null) {
        this.logger.warn({ ...where, reason: bad }, 'dubbo call logger skipped: invalid conf');
        return;
      }
      // acquireProcessor shares one processor per (route id, conf) across route objects and entries.
      const env: PluginEnv = { logger: this.logger, metadata: undefined, attr: undefined, scopeKey: `xrpc-dubbo:${route.id}`, consumers: NO_CONSUMERS };
      out.push({ name: 'syslog', filter, handle: acquireProcessor<string>('syslog', conf, env, syslogSink(conf)) });
    });
    return out;
  }
}

function entryOf(r: CallRecord): Record<string, unknown> {
  return {
    route_id: r.routeId,
    client_ip: r.remoteAddr,
    client_port: r.remotePort,
    server_addr: r.serverAddr,
    server_port: r.serverPort,
    upstream: r.upstream ?? '',
    service: r.service,
    version: r.version,
    method: r.method,
    status: r.status,
    rpc_time: r.rpcTime,
    start_time: r.startTime,
  };
}
