// HTTP-family listener kinds: `apisix.node_listen` (HTTP/1.1 + h2c) and `apisix.ssl.listen` (HTTPS: HTTP/1.1
// and h2 by ALPN), both on the shared pipeline.
import type { ListenEntry } from '../../src/config/local.ts';
import { SwitchyardError } from '../../src/errors.ts';
import type { Listener, ListenerContext, ListenerRegistry } from '../../src/listener/registry.ts';
import { createHttpListener, createHttpsListener } from './listener.ts';

function listenAddr(e: ListenEntry): { host: string; port: number; h2?: boolean } {
  return typeof e === 'number' ? { host: '0.0.0.0', port: e } : { host: e.ip ?? '0.0.0.0', port: e.port, h2: e.enable_http2 };
}

interface SslConf {
  enable?: boolean;
  listen?: { ip?: string; port: number; enable_http2?: boolean; enable_http3?: boolean }[];
  fallback_sni?: string;
}

export function setup(registry: ListenerRegistry): void {
  registry.register({
    name: 'http',
    create(ctx: ListenerContext): Listener[] {
      const pipeline = ctx.http;
      if (pipeline === null) return [];
      return ctx.conf.apisix.node_listen.map((entry) => {
        const a = listenAddr(entry);
        return createHttpListener({
          host: a.host,
          port: a.port,
          h2c: a.h2 ?? ctx.conf.apisix.enable_http2,
          limits: ctx.conf.switchyard.limits,
          pipeline,
          http1Engine: ctx.conf.switchyard.http1_engine,
          logger: ctx.logger.child({ module: 'http' }),
        });
      });
    },
  });
  registry.register({
    name: 'https',
    create(ctx: ListenerContext): Listener[] {
      const pipeline = ctx.http;
      const ssl = (ctx.conf.apisix.ssl ?? {}) as SslConf;
      if (pipeline === null || ssl.enable === false || ssl.listen === undefined) return [];
      return ssl.listen.map((e) => {
        if (typeof e?.port !== 'number') throw new SwitchyardError('SWY_ERR_TLS_CONFIG', 'apisix.ssl.listen entries need a port');
        return createHttpsListener({
          host: e.ip ?? '0.0.0.0',
          port: e.port,
          h2: e.enable_http2 ?? ctx.conf.apisix.enable_http2,
          limits: ctx.conf.switchyard.limits,
          pipeline,
          certificates: ctx.certificates,
          fallbackSni: ssl.fallback_sni,
          ...(e.enable_http3 === true ? { altSvc: `h3=":${e.port}"` } : {}),
          http1Engine: ctx.conf.switchyard.http1_engine,
          logger: ctx.logger.child({ module: 'https' }),
        });
      });
    },
  });
}
