// JSON Schemas of the APISIX 3.x resource kinds (apisix/schema_def.lua), equal in effect, for ajv (draft-07).
// Every resource schema forbids additional properties; plugin confs are validated separately per plugin.
// Defaults live in the schemas; the validator fills them on a clone, never on stored objects.
import type { JsonObject } from '../config/resources.ts';
import {
  certificateDef,
  commonProps,
  descDef,
  hostDef,
  idSchema,
  ipAlternatives,
  ipDef,
  labelsDef,
  methodDef,
  pluginsDef,
  privateKeyDef,
  secretRefDef,
  SNI_PATTERN,
  timeoutDef,
  timestampDef,
} from './defs.ts';
import { upstreamDef } from './upstream.ts';

const scriptDef: JsonObject = { type: 'string', minLength: 10, maxLength: 102400 };

/** `a` xor `b` (or neither). */
const atMostOneOf = (a: string, b: string): JsonObject => ({
  oneOf: [{ not: { anyOf: [{ required: [a] }, { required: [b] }] } }, { required: [a] }, { required: [b] }],
});

export const routeSchema: JsonObject = {
  type: 'object',
  properties: {
    ...commonProps(),
    uri: { type: 'string', minLength: 1, maxLength: 4096 },
    uris: { type: 'array', items: { description: 'HTTP uri', type: 'string' }, minItems: 1, uniqueItems: true },
    priority: { type: 'integer', default: 0 },
    methods: { type: 'array', items: methodDef, uniqueItems: true },
    host: hostDef,
    hosts: { type: 'array', items: hostDef, minItems: 1, uniqueItems: true },
    remote_addr: ipDef,
    remote_addrs: { type: 'array', items: ipDef, minItems: 1, uniqueItems: true },
    timeout: timeoutDef,
    vars: { type: 'array' },
    filter_func: { type: 'string', minLength: 10, pattern: '^function' },
    // Dashboard plugin orchestration (a Lua DAG); stored and listed, never executed by Switchyard.
    script: scriptDef,
    script_id: idSchema,
    plugins: pluginsDef,
    plugin_config_id: idSchema,
    upstream: upstreamDef,
    service_id: idSchema,
    upstream_id: idSchema,
    enable_websocket: { description: 'enable websocket for request', type: 'boolean' },
    status: { description: 'route status, 1 to enable, 0 to disable', type: 'integer', enum: [1, 0], default: 1 },
  },
  allOf: [
    { oneOf: [{ required: ['uri'] }, { required: ['uris'] }] },
    atMostOneOf('host', 'hosts'),
    atMostOneOf('remote_addr', 'remote_addrs'),
  ],
  // Listed in APISIX's order, which shows in the error text.
  anyOf: [
    { required: ['plugins', 'uri'] },
    { required: ['upstream', 'uri'] },
    { required: ['upstream_id', 'uri'] },
    { required: ['service_id', 'uri'] },
    { required: ['plugins', 'uris'] },
    { required: ['upstream', 'uris'] },
    { required: ['upstream_id', 'uris'] },
    { required: ['service_id', 'uris'] },
    { required: ['script', 'uri'] },
    { required: ['script', 'uris'] },
  ],
  not: { anyOf: [{ required: ['script', 'plugins'] }, { required: ['script', 'plugin_config_id'] }] },
  additionalProperties: false,
};

export const serviceSchema: JsonObject = {
  type: 'object',
  properties: {
    ...commonProps(),
    plugins: pluginsDef,
    upstream: upstreamDef,
    upstream_id: idSchema,
    script: scriptDef,
    enable_websocket: { description: 'enable websocket for request', type: 'boolean' },
    hosts: { type: 'array', items: hostDef, minItems: 1, uniqueItems: true },
  },
  additionalProperties: false,
};

export const consumerSchema: JsonObject = {
  type: 'object',
  properties: {
    username: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[a-zA-Z0-9_\\-]+$' },
    group_id: idSchema,
    plugins: pluginsDef,
    labels: labelsDef,
    desc: descDef,
    create_time: timestampDef,
    update_time: timestampDef,
  },
  required: ['username'],
  additionalProperties: false,
};

export const credentialSchema: JsonObject = {
  type: 'object',
  properties: {
    ...commonProps(),
    plugins: { type: 'object', maxProperties: 1 },
  },
  additionalProperties: false,
};

export const consumerGroupSchema: JsonObject = {
  type: 'object',
  properties: { ...commonProps(), plugins: pluginsDef },
  required: ['id', 'plugins'],
  additionalProperties: false,
};

const certOrRef: JsonObject = { anyOf: [certificateDef, secretRefDef] };
const keyOrRef: JsonObject = { anyOf: [privateKeyDef, secretRefDef] };

export const sslSchema: JsonObject = {
  type: 'object',
  properties: {
    id: idSchema,
    desc: descDef,
    labels: labelsDef,
    type: { description: 'ssl certificate type', type: 'string', enum: ['server', 'client'], default: 'server' },
    cert: certOrRef,
    key: keyOrRef,
    sni: { type: 'string', pattern: SNI_PATTERN },
    snis: { type: 'array', items: { type: 'string', pattern: SNI_PATTERN }, minItems: 1 },
    certs: { type: 'array', items: certOrRef },
    keys: { type: 'array', items: keyOrRef },
    client: {
      type: 'object',
      properties: {
        ca: certificateDef,
        depth: { type: 'integer', minimum: 0, default: 1 },
        skip_mtls_uri_regex: {
          type: 'array',
          minItems: 1,
          uniqueItems: true,
          items: { description: 'uri regular expression to skip mtls', type: 'string' },
        },
      },
      required: ['ca'],
    },
    status: { description: 'ssl status, 1 to enable, 0 to disable', type: 'integer', enum: [1, 0], default: 1 },
    ssl_protocols: {
      description: 'set ssl protocols',
      type: 'array',
      maxItems: 3,
      uniqueItems: true,
      items: { enum: ['TLSv1.1', 'TLSv1.2', 'TLSv1.3'] },
    },
    validity_start: timestampDef,
    validity_end: timestampDef,
    create_time: timestampDef,
    update_time: timestampDef,
  },
  // A server certificate needs (sni | snis) + key + cert; a client certificate needs key + cert.
  if: { properties: { type: { enum: ['server'] } } },
  then: { oneOf: [{ required: ['sni', 'key', 'cert'] }, { required: ['snis', 'key', 'cert'] }] },
  else: { required: ['key', 'cert'] },
  additionalProperties: false,
};

export const globalRuleSchema: JsonObject = {
  type: 'object',
  properties: { id: idSchema, plugins: pluginsDef, create_time: timestampDef, update_time: timestampDef },
  required: ['id', 'plugins'],
  additionalProperties: false,
};

export const pluginConfigSchema: JsonObject = {
  type: 'object',
  properties: { ...commonProps(), plugins: pluginsDef },
  required: ['id', 'plugins'],
  additionalProperties: false,
};

/** xRPC protocol of a stream route (redis, dubbo, ...). */
const xrpcProtocolDef: JsonObject = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    superior_id: idSchema,
    conf: { description: 'protocol-specific configuration', type: 'object' },
    logger: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          filter: { description: 'logger filter rules', type: 'array' },
          conf: { description: 'logger plugin configuration', type: 'object' },
        },
        required: ['name'],
      },
    },
  },
  required: ['name'],
};

export const streamRouteSchema: JsonObject = {
  type: 'object',
  properties: {
    ...commonProps(),
    remote_addr: { description: 'client IP', type: 'string', anyOf: ipAlternatives },
    server_addr: { description: 'server IP', type: 'string', anyOf: ipAlternatives },
    server_port: { description: 'server port', type: 'integer', minimum: 1, maximum: 65535 },
    sni: { description: 'server name indication', type: 'string', pattern: SNI_PATTERN },
    upstream: upstreamDef,
    upstream_id: idSchema,
    service_id: idSchema,
    plugins: pluginsDef,
    protocol: xrpcProtocolDef,
  },
  additionalProperties: false,
};

export const protoSchema: JsonObject = {
  type: 'object',
  properties: {
    ...commonProps(),
    content: { type: 'string', minLength: 1, maxLength: 1024 * 1024 },
  },
  required: ['content'],
  additionalProperties: false,
};

/**
 * What GET /schema/plugin_metadata describes: the object is validated by the plugin's `metadata_schema`
 * (the plugin named by `id`).
 */
export const pluginMetadataShape: JsonObject = {
  type: 'object',
  description: "validated by the metadata_schema of the plugin named by id",
  properties: { id: { type: 'string', minLength: 1 } },
  required: ['id'],
};

/** The `/plugins` list stored in etcd (`[{name, stream?}]`). */
export const pluginListSchema: JsonObject = {
  type: 'array',
  items: {
    type: 'object',
    properties: { name: { type: 'string', minLength: 1 }, stream: { type: 'boolean' } },
    required: ['name'],
    additionalProperties: false,
  },
};

/** `_meta`, injected into every plugin's (route and consumer) schema. */
export const metaDef: JsonObject = {
  type: 'object',
  properties: {
    disable: { type: 'boolean' },
    error_response: { oneOf: [{ type: 'string' }, { type: 'object' }] },
    priority: { description: 'priority of plugins by customized order', type: 'integer' },
    filter: { description: 'filter determines whether the plugin needs to be executed at runtime', type: 'array' },
    pre_function: { description: 'function run before the plugin in each phase', type: 'string' },
  },
};
