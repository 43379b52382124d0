// JSON Schemas shared by ai-proxy and ai-proxy-multi (APISIX apisix/plugins/ai-proxy/schema.lua, same fields,
// defaults and bounds). Provider names are APISIX's; the ones this build cannot drive (vertex-ai and bedrock
// need GCP/AWS request signing) are rejected by check() with APISIX's "not supported" message.
import type { JsonObject } from '../../../config/resources.ts';
import { healthCheckerDef } from '../../../schema/upstream.ts';

export const PROVIDERS = [
  'openai', 'deepseek', 'aimlapi', 'anthropic', 'openai-compatible', 'azure-openai', 'openrouter', 'gemini',
  'vertex-ai', 'bedrock',
];

const authItem: JsonObject = { type: 'object', patternProperties: { '^[a-zA-Z0-9._-]+$': { type: 'string' } } };

export const authSchema: JsonObject = {
  type: 'object',
  properties: {
    header: authItem,
    query: authItem,
    gcp: { type: 'object' },
    aws: {
      type: 'object',
      properties: {
        access_key_id: { type: 'string', minLength: 1 },
        secret_access_key: { type: 'string', minLength: 1 },
        session_token: { type: 'string', minLength: 1 },
      },
      required: ['access_key_id', 'secret_access_key'],
    },
  },
  additionalProperties: false,
};

const optionsSchema: JsonObject = {
  type: 'object',
  properties: { model: { type: 'string' } },
  additionalProperties: true,
};

const overrideSchema: JsonObject = {
  type: 'object',
  properties: {
    endpoint: { type: 'string', minLength: 1 },
    llm_options: {
      type: 'object',
      properties: { max_tokens: { type: 'integer', minimum: 1 } },
      additionalProperties: false,
    },
    request_body: { type: 'object' },
    request_body_force_override: { type: 'boolean', default: false },
  },
};

const providerConf: JsonObject = {
  type: 'object',
  properties: { project_id: { type: 'string' }, region: { type: 'string', minLength: 1 } },
};

const loggingSchema: JsonObject = {
  type: 'object',
  properties: {
    summaries: { type: 'boolean', default: false },
    payloads: { type: 'boolean', default: false },
  },
};

/** Fields common to both plugins (transport and limits). */
const common: JsonObject = {
  logging: loggingSchema,
  timeout: { type: 'integer', minimum: 1, maximum: 600000, default: 30000 },
  max_req_body_size: { type: 'integer', minimum: 1, default: 67108864 },
  max_stream_duration_ms: { type: 'integer', minimum: 1 },
  max_response_bytes: { type: 'integer', minimum: 1 },
  keepalive: { type: 'boolean', default: true },
  keepalive_timeout: { type: 'integer', minimum: 1000, default: 60000 },
  keepalive_pool: { type: 'integer', minimum: 1, default: 30 },
  streaming_flush_interval_ms: { type: 'integer', minimum: 0, default: 10 },
  ssl_verify: { type: 'boolean', default: true },
};

export const aiProxySchema: JsonObject = {
  type: 'object',
  properties: {
    provider: { type: 'string', enum: PROVIDERS },
    provider_conf: providerConf,
    auth: authSchema,
    options: optionsSchema,
    override: overrideSchema,
    ...common,
  },
  required: ['provider', 'auth'],
};

export const aiProxyEncryptFields = ['auth.header', 'auth.query'];

/** APISIX's health_checker_active: the upstream schema's `checks.active`. */
const healthActive = (healthCheckerDef.properties as JsonObject).active as JsonObject;

export const aiProxyMultiSchema: JsonObject = {
  type: 'object',
  properties: {
    balancer: {
      type: 'object',
      properties: {
        algorithm: { type: 'string', enum: ['chash', 'roundrobin', 'semantic'] },
        hash_on: { type: 'string', default: 'vars', enum: ['vars', 'header', 'cookie', 'consumer', 'vars_combinations'] },
        key: { type: 'string' },
      },
      default: { algorithm: 'roundrobin' },
    },
    instances: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 100 },
          provider: { type: 'string', enum: PROVIDERS },
          priority: { type: 'integer', default: 0 },
          weight: { type: 'integer', minimum: 0 },
          auth: authSchema,
          options: optionsSchema,
          override: overrideSchema,
          provider_conf: providerConf,
          checks: { type: 'object', properties: { active: healthActive }, required: ['active'] },
        },
        required: ['name', 'provider', 'auth', 'weight'],
      },
    },
    fallback_strategy: {
      anyOf: [
        { type: 'string', enum: ['instance_health_and_rate_limiting', 'http_429', 'http_5xx'] },
        { type: 'array', items: { type: 'string', enum: ['rate_limiting', 'http_429', 'http_5xx'] } },
      ],
    },
    fallback_http_statuses: {
      type: 'array',
      minItems: 1,
      uniqueItems: true,
      items: { type: 'integer', minimum: 400, maximum: 599 },
    },
    max_retries: { type: 'integer', minimum: 0 },
    retry_on_failure_within_ms: { type: 'integer', minimum: 1 },
    ...common,
  },
  required: ['instances'],
};

/** Providers whose requests this build can sign and shape. */
const UNSUPPORTED = new Set(['vertex-ai', 'bedrock']);

export function providerError(provider: unknown): string | null {
  return typeof provider === 'string' && UNSUPPORTED.has(provider) ? `ai provider: ${provider} is not supported.` : null;
}
