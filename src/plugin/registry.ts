// The plugin registry: every plugin definition known to the process, per subsystem, and the subset enabled by
// config.yaml `plugins` / `stream_plugins`. Definitions are keyed by (subsystem, name): APISIX has distinct
// HTTP and stream modules with the same name (ip-restriction, limit-conn, ...); one PluginDef may also serve
// both subsystems. Priorities are unique within a subsystem, as in APISIX (a duplicate is a programming error).
import type { PluginDef } from './plugin.ts';

export type Subsystem = 'http' | 'stream';

/** APISIX's default `plugins` list (apisix-compat section 4, "D" entries), in APISIX's order. */
export const DEFAULT_HTTP_PLUGINS: readonly string[] = [
  'real-ip', 'ai', 'client-control', 'proxy-buffering', 'proxy-control', 'request-id', 'zipkin',
  'ext-plugin-pre-req', 'fault-injection', 'mocking', 'serverless-pre-function', 'cors', 'ip-restriction',
  'ua-restriction', 'referer-restriction', 'csrf', 'uri-blocker', 'request-validation', 'chaitin-waf',
  'data-mask', 'multi-auth', 'openid-connect', 'saml-auth', 'cas-auth', 'authz-casbin', 'authz-casdoor',
  'wolf-rbac', 'ldap-auth-advanced', 'ldap-auth', 'hmac-auth', 'basic-auth', 'jwt-auth', 'jwe-decrypt',
  'key-auth', 'dingtalk-auth', 'feishu-auth', 'acl', 'consumer-restriction', 'attach-consumer-label',
  'forward-auth', 'opa', 'authz-keycloak', 'proxy-cache', 'body-transformer', 'ai-request-rewrite',
  'ai-prompt-guard', 'ai-prompt-template', 'ai-prompt-decorator', 'ai-rag', 'ai-proxy-multi', 'ai-proxy',
  'ai-cache', 'ai-aws-content-moderation', 'ai-rate-limiting', 'ai-aliyun-content-moderation',
  'ai-lakera-guard', 'proxy-mirror', 'graphql-proxy-cache', 'proxy-rewrite', 'workflow', 'api-breaker',
  'graphql-limit-count', 'limit-conn', 'limit-count', 'limit-req', 'gzip', 'traffic-label', 'traffic-split',
  'redirect', 'response-rewrite', 'mcp-bridge', 'oas-validator', 'degraphql', 'kafka-proxy', 'grpc-transcode',
  'grpc-web', 'http-dubbo', 'public-api', 'prometheus', 'datadog', 'lago', 'loki-logger',
  'elasticsearch-logger', 'echo', 'loggly', 'http-logger', 'splunk-hec-logging', 'skywalking-logger',
  'google-cloud-logging', 'sls-logger', 'tcp-logger', 'kafka-logger', 'rocketmq-logger', 'syslog',
  'udp-logger', 'file-logger', 'clickhouse-logger', 'tencent-cloud-cls', 'inspect', 'example-plugin',
  'aws-lambda', 'azure-functions', 'openwhisk', 'openfunction', 'serverless-post-function',
  'ext-plugin-post-req', 'ext-plugin-post-resp',
];

/** APISIX's default `stream_plugins` list. */
export const DEFAULT_STREAM_PLUGINS: readonly string[] = [
  'ip-restriction', 'limit-conn', 'mqtt-proxy', 'syslog', 'traffic-split',
];

const SUBSYSTEMS: readonly Subsystem[] = ['http', 'stream'];

function byPriorityDesc(a: PluginDef, b: PluginDef): number {
  return b.priority - a.priority;
}

export class PluginRegistry {
  readonly #defs: Record<Subsystem, Map<string, PluginDef>> = { http: new Map(), stream: new Map() };
  #enabled: Record<Subsystem, Map<string, PluginDef>> = { http: new Map(), stream: new Map() };
  #sorted: Record<Subsystem, PluginDef[]> = { http: [], stream: [] };
  /** Until setEnabled is called, the APISIX defaults (restricted to what is registered) are enabled. */
  #explicit = false;

  /** Throws on a duplicate name or priority within a subsystem, or a definition without a subsystem. */
  register(def: PluginDef): void {
    if (def.subsystems.length === 0) throw new Error(`plugin ${def.name} declares no subsystem`);
    for (const sub of def.subsystems) {
      const defs = this.#defs[sub];
      if (defs.has(def.name)) throw new Error(`duplicate ${sub} plugin name: ${def.name}`);
      for (const other of defs.values()) {
        if (other.priority === def.priority) {
          throw new Error(
            `duplicate ${sub} plugin priority ${def.priority}: ${def.name} and ${other.name}`,
          );
        }
      }
    }
    for (const sub of def.subsystems) this.#defs[sub].set(def.name, def);
    if (!this.#explicit) this.#apply(DEFAULT_HTTP_PLUGINS, DEFAULT_STREAM_PLUGINS, true);
  }

  /**
   * Enables exactly these plugins (config.yaml `plugins` / `stream_plugins`). An unknown name (or one whose
   * definition does not serve that subsystem) throws, unless `ignoreUnknown` (meant for the default lists
   * only, which name plugins this build may not ship). Replaces the previous set atomically.
   */
  setEnabled(http: readonly string[], stream: readonly string[], ignoreUnknown = false): void {
    this.#apply(http, stream, ignoreUnknown);
    this.#explicit = true;
  }

  #apply(http: readonly string[], stream: readonly string[], ignoreUnknown: boolean): void {
    const next: Record<Subsystem, Map<string, PluginDef>> = { http: new Map(), stream: new Map() };
    const lists: Record<Subsystem, readonly string[]> = { http, stream };
    for (const sub of SUBSYSTEMS) {
      for (const name of lists[sub]) {
        const def = this.#defs[sub].get(name);
        if (def === undefined) {
          if (ignoreUnknown) continue;
          throw new Error(`unknown ${sub === 'http' ? 'plugin' : 'stream plugin'}: ${name}`);
        }
        next[sub].set(name, def);
      }
    }
    this.#enabled = next;
    this.#sorted = {
      http: [...next.http.values()].sort(byPriorityDesc),
      stream: [...next.stream.values()].sort(byPriorityDesc),
    };
  }

  /** An enabled plugin of `subsystem`, or undefined. */
  get(name: string, subsystem: Subsystem = 'http'): PluginDef | undefined {
    return this.#enabled[subsystem].get(name);
  }

  /** A registered plugin of `subsystem` (enabled or not). */
  definition(name: string, subsystem: Subsystem = 'http'): PluginDef | undefined {
    return this.#defs[subsystem].get(name);
  }

  /** The registered definition with this name in any subsystem (HTTP first), enabled or not. */
  known(name: string): PluginDef | undefined {
    return this.#defs.http.get(name) ?? this.#defs.stream.get(name);
  }

  /** Enabled plugins of `subsystem`, priority descending (a fresh array). */
  all(subsystem: Subsystem): PluginDef[] {
    return this.#sorted[subsystem].slice();
  }

  /** Every registered name of `subsystem`, enabled or not. */
  registeredNames(subsystem: Subsystem): string[] {
    return [...this.#defs[subsystem].keys()];
  }
}
