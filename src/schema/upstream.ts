// Upstream schema (APISIX 3.x `upstream_schema` + health checker), with Switchyard's documented extensions.
import type { JsonObject } from '../config/resources.ts';
import {
  certificateDef,
  commonProps,
  hostDef,
  HTTP_METHODS,
  idSchema,
  privateKeyDef,
  timeoutDef,
} from './defs.ts';

const statusList = (def: number[], min = 200, max = 599): JsonObject => ({
  type: 'array',
  minItems: 1,
  items: { type: 'integer', minimum: min, maximum: max },
  uniqueItems: true,
  default: def,
});
const counter = (def: number, min: number): JsonObject => ({ type: 'integer', minimum: min, maximum: 254, default: def });

// Hex-encoded bytes (an even number of hex digits).
const hexBytes: JsonObject = { type: 'string', pattern: '^([0-9a-fA-F]{2})*$' };

const activeCheck: JsonObject = {
  type: 'object',
  properties: {
    // Switchyard extensions: `udp` probes send `udp_payload` and expect a datagram (starting with
    // `udp_expect` when set); `grpc` (h2c) and `grpcs` (h2 over TLS, https_verify_certificate applies) call
    // grpc.health.v1.Health/Check for `grpc_service` and count SERVING as a success, any other answer as an
    // http failure (src/health/probe-grpc.ts). APISIX only knows http, https and tcp.
    type: { type: 'string', enum: ['http', 'https', 'tcp', 'udp', 'grpc', 'grpcs'], default: 'http' },
    timeout: { type: 'number', default: 1 },
    concurrency: { type: 'integer', default: 10 },
    host: hostDef,
    port: { type: 'integer', minimum: 1, maximum: 65535 },
    http_method: { type: 'string', enum: HTTP_METHODS, default: 'GET' },
    http_path: { type: 'string', default: '/' },
    http_req_body: { type: 'string', default: '' },
    https_verify_certificate: { type: 'boolean', default: true },
    // Switchyard extension (see `type`).
    udp_payload: hexBytes,
    // Switchyard extension (see `type`).
    udp_expect: hexBytes,
    // Switchyard extension (see `type`): HealthCheckRequest.service; '' asks for the server as a whole.
    grpc_service: { type: 'string', maxLength: 256 },
    healthy: {
      type: 'object',
      properties: {
        interval: { type: 'integer', minimum: 1, default: 1 },
        http_statuses: statusList([200, 302]),
        successes: counter(2, 1),
      },
      default: {},
    },
    unhealthy: {
      type: 'object',
      properties: {
        interval: { type: 'integer', minimum: 1, default: 1 },
        http_statuses: statusList([429, 404, 500, 501, 502, 503, 504, 505]),
        http_failures: counter(5, 1),
        tcp_failures: counter(2, 1),
        timeouts: counter(3, 1),
      },
      default: {},
    },
    req_headers: { type: 'array', minItems: 1, items: { type: 'string' }, uniqueItems: true },
  },
};

const passiveCheck: JsonObject = {
  type: 'object',
  properties: {
    type: { type: 'string', enum: ['http', 'https', 'tcp'], default: 'http' },
    healthy: {
      type: 'object',
      properties: {
        http_statuses: statusList([
          200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308,
        ]),
        successes: counter(5, 0),
      },
      default: {},
    },
    unhealthy: {
      type: 'object',
      properties: {
        http_statuses: statusList([429, 500, 503]),
        tcp_failures: counter(2, 0),
        timeouts: counter(7, 0),
        http_failures: counter(5, 0),
      },
      default: {},
    },
  },
};

export const healthCheckerDef: JsonObject = {
  type: 'object',
  properties: { active: activeCheck, passive: passiveCheck },
  additionalProperties: false,
  // Switchyard extension: APISIX requires `active` (passive alone is rejected there); Switchyard also accepts
  // passive-only checks, where passive outlier tracking demotes nodes and a cool-down brings them back.
  anyOf: [{ required: ['active'] }, { required: ['passive'] }],
};

/** Map form `{"host:port": weight}` or array form `[{host, port?, weight, priority, metadata}]`. */
export const nodesDef: JsonObject = {
  anyOf: [
    {
      type: 'object',
      patternProperties: { '.*': { description: 'weight of node', type: 'integer', minimum: 0 } },
    },
    {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          host: hostDef,
          port: { description: 'port of node', type: 'integer', minimum: 1, maximum: 65535 },
          weight: { description: 'weight of node', type: 'integer', minimum: 0 },
          // Applied by the validator after the schema check: ajv does not fill defaults inside anyOf.
          priority: { description: 'priority of node', type: 'integer', default: 0 },
          metadata: { description: 'metadata of node', type: 'object' },
        },
        required: ['host', 'weight'],
      },
    },
  ],
};

const tlsDef: JsonObject = {
  type: 'object',
  properties: {
    client_cert_id: idSchema,
    client_cert: certificateDef,
    client_key: privateKeyDef,
    verify: { type: 'boolean', default: false },
  },
  // client_cert and client_key come together, and exclude client_cert_id.
  dependencies: {
    client_cert: { required: ['client_key'], not: { required: ['client_cert_id'] } },
    client_key: { required: ['client_cert'], not: { required: ['client_cert_id'] } },
    client_cert_id: { not: { anyOf: [{ required: ['client_cert'] }, { required: ['client_key'] }] } },
  },
};

export const upstreamDef: JsonObject = {
  type: 'object',
  properties: {
    ...commonProps(),
    nodes: nodesDef,
    retries: { type: 'integer', minimum: 0 },
    retry_timeout: { type: 'number', minimum: 0 },
    timeout: timeoutDef,
    tls: tlsDef,
    keepalive_pool: {
      type: 'object',
      properties: {
        size: { type: 'integer', minimum: 1, default: 320 },
        idle_timeout: { type: 'number', minimum: 0, default: 60 },
        requests: { type: 'integer', minimum: 1, default: 1000 },
      },
    },
    // No enum: any registered balancer name (roundrobin, chash, ewma, least_conn, ...).
    type: { description: 'algorithms of load balancing', type: 'string', default: 'roundrobin' },
    checks: healthCheckerDef,
    hash_on: {
      type: 'string',
      enum: ['vars', 'header', 'cookie', 'consumer', 'vars_combinations'],
      default: 'vars',
    },
    key: { description: 'the key of chash for dynamic load balancing', type: 'string' },
    scheme: {
      enum: ['grpc', 'grpcs', 'http', 'https', 'tcp', 'tls', 'udp', 'kafka'],
      default: 'http',
    },
    discovery_type: { description: 'discovery type', type: 'string' },
    discovery_args: {
      type: 'object',
      properties: {
        namespace_id: { description: 'namespace id', type: 'string' },
        group_name: { description: 'group name', type: 'string' },
      },
    },
    pass_host: {
      description: 'mod of host passing',
      type: 'string',
      enum: ['pass', 'node', 'rewrite'],
      default: 'pass',
    },
    upstream_host: hostDef,
    service_name: { type: 'string', minLength: 1, maxLength: 256 },
    // Switchyard extension: talk HTTP/2 to the nodes (h2 over TLS for scheme https, h2c for http).
    http2: { type: 'boolean', default: false },
  },
  oneOf: [{ required: ['nodes'] }, { required: ['service_name', 'discovery_type'] }],
  additionalProperties: false,
};

/** chash `key` schemas by `hash_on` (consumer needs no key). */
export const HASH_KEY_SCHEMAS: Readonly<Record<string, JsonObject>> = {
  vars: {
    type: 'string',
    pattern:
      '^((uri|server_name|server_addr|request_uri|remote_port|remote_addr|query_string|host|hostname|mqtt_client_id)|arg_[0-9a-zA-z_-]+)$',
  },
  header: { type: 'string', pattern: '^[a-zA-Z0-9-_]+$' },
  cookie: { type: 'string', pattern: '^[a-zA-Z0-9-_]+$' },
  vars_combinations: { type: 'string' },
};
