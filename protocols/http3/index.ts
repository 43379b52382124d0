// HTTP/3 listener kind: one QUIC listener per `apisix.ssl.listen` entry with `enable_http3: true`, on the
// entry's port number over UDP, serving the shared pipeline.
import type { Listener, ListenerContext, ListenerRegistry } from '../../src/listener/registry.ts';
import { createHttp3Listener } from './listener.ts';

interface SslConf {
  enable?: boolean;
  listen?: { ip?: string; port: number; enable_http3?: boolean }[];
  fallback_sni?: string;
}

export function setup(registry: ListenerRegistry): void {
  registry.register({
    name: 'http3',
    create(ctx: ListenerContext): Listener[] {
      const pipeline = ctx.http;
      const ssl = (ctx.conf.apisix.ssl ?? {}) as SslConf;
      if (pipeline === null || ssl.enable === false || ssl.listen === undefined) return [];
      return ssl.listen
        .filter((e) => e?.enable_http3 === true && typeof e.port === 'number')
        .map((e) =>
          createHttp3Listener({
            host: e.ip ?? '0.0.0.0',
            port: e.port,
            limits: ctx.conf.switchyard.limits,
            pipeline,
            certificates: ctx.certificates,
            fallbackSni: ssl.fallback_sni,
            logger: ctx.logger.child({ module: 'http3' }),
          }),
        );
    },
  });
}
