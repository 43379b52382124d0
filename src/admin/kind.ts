// The contract of one Admin API resource kind. resources.ts holds the generic CRUD; each kind file exports a
// KindSpec with only its own rules (id layout, references, delete protection, views). kinds.ts registers them.
import type { ConfigStore } from '../config/store.ts';
import type { JsonObject, Kind } from '../config/resources.ts';
import type { Logger } from '../observability/logger.ts';
import type { PluginDef } from '../plugin/plugin.ts';
import type { PluginSchemaSource } from '../schema/validator.ts';
import type { Reply, ValueView } from './envelope.ts';

export type Method = 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';

/** What the Admin API needs from the plugin registry (src/plugin/registry.ts PluginRegistry satisfies it). */
export interface AdminPlugins extends PluginSchemaSource {
  get(name: string, subsystem?: 'http' | 'stream'): PluginDef | undefined;
  all(subsystem: 'http' | 'stream'): PluginDef[];
}

export interface AdminContext {
  readonly store: ConfigStore;
  readonly plugins: AdminPlugins;
  readonly streamEnabled: boolean;
  readonly logger: Logger;
}

/**
 * Where a request points inside a kind. `scope` is the store-id prefix shared by the listed items
 * (`jack/credentials/` for credentials, `vault/` for secrets, '' otherwise); the store id is scope + id.
 */
export interface Target {
  readonly scope: string;
  readonly id: string | undefined;
  readonly subPath: readonly string[];
}

export interface WriteCheck {
  readonly ctx: AdminContext;
  readonly method: 'PUT' | 'POST' | 'PATCH';
  readonly target: Target;
  /** Store id being written. */
  readonly storeId: string;
  /** The value after id and timestamps were settled and the schema check passed (no defaults). */
  readonly value: JsonObject;
}

export interface KindSpec {
  readonly kind: Kind;
  /** Methods answered with 405 `not supported \`X\` method for <singular>`. */
  readonly unsupported: readonly Method[];
  /** Splits the URL segments after the resource name; a Reply is an early answer (bad path). */
  parsePath?(segs: readonly string[], method: Method): Target | Reply;
  /**
   * Settles the id of a PUT/PATCH (`need` true) or POST (`need` false) body in place and returns the store id,
   * or an error message. Default: APISIX's generic `id` rules.
   */
  assignId?(target: Target, value: JsonObject, need: boolean): { storeId: string } | { error: string };
  /** APISIX injects create_time/update_time (all kinds but plugin_metadata). */
  readonly timestamps?: boolean;
  /** Early refusal before anything else (stream routes when stream mode is off). */
  guard?(ctx: AdminContext, method: Method): Reply | null;
  /** Semantic rules and reference checks after the schema check; returns an error Reply or null. */
  check?(w: WriteCheck): Promise<Reply | null>;
  /** Delete protection (skipped with `?force=true`); returns the APISIX message or null. */
  checkDelete?(ctx: AdminContext, storeId: string): Promise<string | null>;
  /** Runs after a successful delete (consumer credentials). */
  afterDelete?(ctx: AdminContext, storeId: string): Promise<void>;
  /** Hides fields from GET answers (ssl private keys). */
  readonly view?: ValueView;
  /** `?filter=` fields this kind accepts. */
  readonly filterFields?: readonly string[];
  /** The parent object a write needs (credentials: the consumer). */
  requireParent?(ctx: AdminContext, target: Target): Promise<Reply | null>;
}
