// Plugin contract. A plugin module exports a PluginDef; builtin plugins register through setup(registry).
// Instances are created once per snapshot per configured conf (config time), never per request.
import type { JsonObject } from '../config/resources.ts';
import type { Logger } from '../observability/logger.ts';
import type { ConsumerRef, HttpContext, StreamContext } from './context.ts';
import type { SecretStore } from './secret-refs.ts';

export type HttpPhase = 'rewrite' | 'access' | 'before_proxy' | 'header_filter' | 'body_filter' | 'log';
export type StreamPhase = 'preread' | 'log';

/** A local answer that ends the request (APISIX's `return code, body`). Objects are JSON-encoded. */
export interface PluginResponse {
  readonly status: number;
  readonly body?: string | Buffer | JsonObject | readonly unknown[];
  readonly headers?: Readonly<Record<string, string>>;
  /**
   * A streamed body instead of `body` (ai-proxy relaying SSE): written chunk by chunk through header_filter/
   * body_filter with backpressure, without content-length. `cancel` is called once if the client goes away
   * (or the body is replaced) before the stream ends, so the producer can abort what feeds it.
   */
  readonly stream?: AsyncIterable<Buffer>;
  readonly cancel?: (reason: Error) => void;
}

export type PhaseResult = PluginResponse | undefined | void;

export interface PluginInstance {
  rewrite?(ctx: HttpContext): PhaseResult | Promise<PhaseResult>;
  access?(ctx: HttpContext): PhaseResult | Promise<PhaseResult>;
  before_proxy?(ctx: HttpContext): PhaseResult | Promise<PhaseResult>;
  /** May change ctx.response.status / headers; may ask for the body to be replaced via ctx.response.replaceBody. */
  header_filter?(ctx: HttpContext): void;
  /**
   * Streaming response transform: return the chunk to send (possibly changed), or null to hold it back. At
   * eof, ctx.response.trailers holds the upstream's trailers, which the plugin may change or clear (gRPC-Web
   * moves them into the body).
   */
  body_filter?(ctx: HttpContext, chunk: Buffer, eof: boolean): Buffer | null;
  /**
   * Streaming request-body transform, applied to the body on its way upstream (after before_proxy): return
   * the bytes to send (possibly changed, possibly empty), or null to hold them back until more arrive. Called
   * once more with an empty chunk and eof=true.
   */
  request_body_filter?(ctx: HttpContext, chunk: Buffer, eof: boolean): Buffer | null;
  log?(ctx: HttpContext): void;
  /** Stream subsystem. A PluginResponse (any status) closes the session. */
  preread?(ctx: StreamContext): PhaseResult | Promise<PhaseResult>;
  streamLog?(ctx: StreamContext): void;
  /** Called when the snapshot that created the instance is retired. */
  destroy?(): void;
}

export interface PluginEnv {
  readonly logger: Logger;
  /** plugin_metadata of this plugin (defaults applied), if any. */
  readonly metadata: JsonObject | undefined;
  /** config.yaml plugin_attr[<name>], if any. */
  readonly attr: JsonObject | undefined;
  /** Scope key stable across snapshots for the same route/service/global rule and conf (shared counters). */
  readonly scopeKey: string;
  /** Consumers of the snapshot, for auth plugins. */
  readonly consumers: ConsumerDirectory;
  /** The secrets resource, for `$secret://` references in confs (resolved by the chain, secret-refs.ts). */
  readonly secrets?: SecretStore;
}

/** Consumer lookup by an auth plugin's credential field (key-auth `key`, basic-auth `username`, ...). */
export interface ConsumerDirectory {
  /**
   * The consumer whose `plugins[pluginName][field]` (on the consumer itself or on one of its credentials)
   * equals `value`. Indexes are built once per snapshot on first use. Comparison of secrets is the
   * plugin's job (this is a lookup by identifier).
   */
  find(pluginName: string, field: string, value: string): ConsumerMatch | undefined;
  /** All consumers configured with the plugin (for plugins that must try each, e.g. hmac by key_id). */
  withPlugin(pluginName: string): readonly ConsumerMatch[];
  /** A consumer by username (auth plugins' `anonymous_consumer`); optional for directories without names. */
  get?(username: string): ConsumerRef | undefined;
}

export interface ConsumerMatch {
  readonly consumer: ConsumerRef;
  /** The auth plugin conf that matched (consumer- or credential-level, defaults applied). */
  readonly conf: JsonObject;
}

export interface PluginDef {
  readonly name: string;
  readonly version: string;
  readonly priority: number;
  /** JSON Schema of the route-level conf (without _meta; the registry injects it). */
  readonly schema: JsonObject;
  readonly consumerSchema?: JsonObject;
  readonly metadataSchema?: JsonObject;
  /**
   * Conf fields stored AES-encrypted at rest (APISIX schema `encrypt_fields`): names, or "a.b" for one nested
   * level, of the schema consumer confs are checked against (consumerSchema when present, else schema).
   */
  readonly encryptFields?: readonly string[];
  /** With a consumerSchema: the encrypted fields of the route-level conf (same form as encryptFields). */
  readonly routeEncryptFields?: readonly string[];
  readonly type?: 'auth';
  readonly scope?: 'global';
  readonly runPolicy?: 'prefer_route';
  /** Which subsystems may use it. */
  readonly subsystems: readonly ('http' | 'stream')[];
  /** Lifecycle status shown in docs: stable | experimental. */
  readonly status: 'stable' | 'experimental';
  /** Extra checks beyond the schema; return an error message or null. */
  check?(conf: JsonObject, schemaType: 'route' | 'consumer' | 'metadata'): string | null;
  create(conf: JsonObject, env: PluginEnv): PluginInstance;
}
