// Provider table (APISIX apisix/plugins/ai-providers/*.lua): default host and path per client protocol, how the
// llm_options.max_tokens override is spelled, and whether `model` leaves the body (azure-openai names the
// deployment in the URL). Instances resolve once at create() into a Target: URL base, path, query.
import type { JsonObject } from '../../../config/resources.ts';

const ENDPOINT_PATH = /^[a-z][a-z0-9+.-]*:\/\/[^/?#]+(\/[^?#]*)?/i;

export type Protocol = 'openai-chat' | 'openai-embeddings';

interface ProviderDef {
  readonly host?: string;
  readonly paths: Partial<Record<Protocol, string>>;
  /** Field the llm_options.max_tokens override writes. */
  readonly maxTokens: 'max_tokens' | 'max_completion_tokens';
  readonly removeModel?: boolean;
}

const PROVIDERS: Record<string, ProviderDef> = {
  openai: {
    host: 'api.openai.com',
    paths: { 'openai-chat': '/v1/chat/completions', 'openai-embeddings': '/v1/embeddings' },
    maxTokens: 'max_completion_tokens',
  },
  deepseek: { host: 'api.deepseek.com', paths: { 'openai-chat': '/chat/completions' }, maxTokens: 'max_tokens' },
  'azure-openai': { paths: { 'openai-chat': '/completions' }, maxTokens: 'max_tokens', removeModel: true },
  'openai-compatible': {
    paths: { 'openai-chat': '/v1/chat/completions', 'openai-embeddings': '/v1/embeddings' },
    maxTokens: 'max_tokens',
  },
  anthropic: { host: 'api.anthropic.com', paths: { 'openai-chat': '/v1/chat/completions' }, maxTokens: 'max_tokens' },
  gemini: {
    host: 'generativelanguage.googleapis.com',
    paths: { 'openai-chat': '/v1beta/openai/chat/completions' },
    maxTokens: 'max_completion_tokens',
  },
  openrouter: { host: 'openrouter.ai', paths: { 'openai-chat': '/api/v1/chat/completions' }, maxTokens: 'max_tokens' },
  aimlapi: { host: 'api.aimlapi.com', paths: { 'openai-chat': '/chat/completions' }, maxTokens: 'max_tokens' },
};

/** One configured provider instance, resolved at config time. */
export interface Target {
  readonly name: string;
  readonly provider: string;
  /** `https://host:port` */
  readonly origin: string | null;
  /** Path from override.endpoint, when it carries one. */
  readonly path: string | null;
  /** Endpoint query args and auth.query merged (auth wins), `k=v&...` or ''. */
  readonly query: string;
  /** Lower-cased auth headers. */
  readonly authHeaders: Readonly<Record<string, string>>;
  readonly options: JsonObject | null;
  readonly maxTokens: number | null;
  readonly def: ProviderDef;
}

export function resolveTarget(name: string, conf: JsonObject): Target {
  const provider = String(conf.provider);
  const def = PROVIDERS[provider];
  if (def === undefined) throw new Error(`ai provider: ${provider} is not supported.`);
  const override = (conf.override ?? {}) as JsonObject;
  const auth = (conf.auth ?? {}) as JsonObject;
  let origin: string | null = def.host === undefined ? null : `https://${def.host}`;
  let path: string | null = null;
  const query = new URLSearchParams();
  if (typeof override.endpoint === 'string') {
    const u = new URL(override.endpoint);
    origin = u.origin;
    // APISIX: only an endpoint that spells a path replaces the provider's path ("http://h:1" keeps it).
    if (ENDPOINT_PATH.exec(override.endpoint)?.[1] !== undefined) path = u.pathname;
    for (const [k, v] of u.searchParams) query.set(k, v);
  }
  const authQuery = (auth.query ?? {}) as Record<string, string>;
  for (const k in authQuery) query.set(k, authQuery[k]!);
  const authHeaders: Record<string, string> = {};
  const h = (auth.header ?? {}) as Record<string, string>;
  for (const k in h) authHeaders[k.toLowerCase()] = h[k]!;
  const llm = (override.llm_options ?? {}) as JsonObject;
  return {
    name,
    provider,
    origin,
    path,
    query: query.toString(),
    authHeaders,
    options: (conf.options as JsonObject | undefined) ?? null,
    maxTokens: typeof llm.max_tokens === 'number' ? llm.max_tokens : null,
    def,
  };
}

/** Config-time check: a provider without a default host needs override.endpoint. */
export function targetError(conf: JsonObject): string | null {
  const def = PROVIDERS[String(conf.provider)];
  if (def === undefined) return `ai provider: ${String(conf.provider)} is not supported.`;
  const endpoint = (conf.override as JsonObject | undefined)?.endpoint;
  if (typeof endpoint === 'string') {
    try {
      new URL(endpoint);
    } catch {
      return `invalid override.endpoint: ${endpoint}`;
    }
  } else if (def.host === undefined) {
    return `${String(conf.provider)} requires override.endpoint`;
  }
  return null;
}

/** The URL of a request of `protocol`, or null when the provider has no path for it. */
export function urlFor(t: Target, protocol: Protocol): string | null {
  const path = t.path ?? t.def.paths[protocol];
  if (path === undefined || t.origin === null) return null;
  return t.query === '' ? t.origin + path : `${t.origin}${path}?${t.query}`;
}

export function supported(t: Target): string {
  return Object.keys(t.def.paths).join(', ');
}
