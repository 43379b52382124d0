// Listener contract and registry. Each protocols/<name>/index.ts registers the listener kinds it provides
// (which config section starts them, how); the composition root loops over the registry and knows no protocol
// by name. Adding a listener = a new folder plus one registration line in src/main.ts's setup list.
import type { LocalConfig } from '../config/local.ts';
import type { Logger } from '../observability/logger.ts';
import type { HttpPipeline } from '../pipeline/pipeline.ts';
import type { CertificateStore } from '../tls/store.ts';

export interface ListenerAddress {
  /** 'http', 'https', 'quic', 'tcp', 'udp', ... */
  readonly protocol: string;
  readonly host: string;
  readonly port: number;
}

export interface Listener {
  readonly kind: string;
  listen(): Promise<void>;
  /** graceful: stop accepting, let in-flight exchanges finish (bounded by graceful_shutdown_timeout). */
  close(opts: { graceful: boolean }): Promise<void>;
  addresses(): ListenerAddress[];
}

/** What the composition root hands every listener kind. */
export interface ListenerContext {
  readonly conf: LocalConfig;
  readonly logger: Logger;
  /** The shared HTTP pipeline; null when this process serves no HTTP (proxy_mode stream). */
  readonly http: HttpPipeline | null;
  /** The shared certificate store of the current snapshot (null before the first one). */
  readonly certificates: () => CertificateStore | null;
  /** Getters by name: runtimes ('stream') and shared registries ('xrpc') a listener kind needs. */
  runtime<R>(name: string): (() => R) | null;
}

export interface ListenerKind {
  readonly name: string;
  /** The listeners this config asks for ([] when its section is absent or disabled). */
  create(ctx: ListenerContext): Listener[];
}

export class ListenerRegistry {
  private readonly kinds_ = new Map<string, ListenerKind>();

  register(kind: ListenerKind): void {
    if (this.kinds_.has(kind.name)) throw new Error(`listener kind ${kind.name} registered twice`);
    this.kinds_.set(kind.name, kind);
  }

  kinds(): readonly ListenerKind[] {
    return [...this.kinds_.values()];
  }
}
