// JSON Schema fragments of APISIX's Redis policies (apisix/utils/redis-schema.lua and limit-count's sentinel
// addition), shared by limit-count, limit-req and limit-conn, and the if/then/else that applies them by policy.
import type { JsonObject } from '../../config/resources.ts';

export const redisSingle: JsonObject = {
  properties: {
    redis_host: { type: 'string', minLength: 2 },
    redis_port: { type: 'integer', minimum: 1, default: 6379 },
    redis_username: { type: 'string', minLength: 1 },
    redis_password: { type: 'string', minLength: 0 },
    redis_database: { type: 'integer', minimum: 0, default: 0 },
    redis_timeout: { type: 'integer', minimum: 1, default: 1000 },
    redis_ssl: { type: 'boolean', default: false },
    redis_ssl_verify: { type: 'boolean', default: false },
    redis_keepalive_timeout: { type: 'integer', minimum: 1000, default: 10000 },
    redis_keepalive_pool: { type: 'integer', minimum: 1, default: 100 },
  },
  required: ['redis_host'],
};

export const redisCluster: JsonObject = {
  properties: {
    redis_cluster_nodes: { type: 'array', minItems: 1, items: { type: 'string', minLength: 2, maxLength: 100 } },
    redis_password: { type: 'string', minLength: 0 },
    redis_timeout: { type: 'integer', minimum: 1, default: 1000 },
    redis_cluster_name: { type: 'string' },
    redis_cluster_ssl: { type: 'boolean', default: false },
    redis_cluster_ssl_verify: { type: 'boolean', default: false },
    redis_keepalive_timeout: { type: 'integer', minimum: 1000, default: 10000 },
    redis_keepalive_pool: { type: 'integer', minimum: 1, default: 100 },
  },
  required: ['redis_cluster_nodes', 'redis_cluster_name'],
};

export const redisSentinel: JsonObject = {
  properties: {
    redis_sentinels: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        properties: { host: { type: 'string', minLength: 2 }, port: { type: 'integer', minimum: 1, maximum: 65535 } },
        required: ['host', 'port'],
        additionalProperties: false,
      },
    },
    redis_master_name: { type: 'string', minLength: 1 },
    redis_role: { type: 'string', enum: ['master', 'slave'], default: 'master' },
    redis_connect_timeout: { type: 'integer', minimum: 1, default: 1000 },
    redis_read_timeout: { type: 'integer', minimum: 1, default: 1000 },
    redis_keepalive_timeout: { type: 'integer', minimum: 1, default: 60000 },
    redis_database: { type: 'integer', minimum: 0, default: 0 },
    redis_username: { type: 'string', minLength: 1 },
    redis_password: { type: 'string', minLength: 0 },
    sentinel_username: { type: 'string', minLength: 1 },
    sentinel_password: { type: 'string', minLength: 0 },
  },
  required: ['redis_sentinels', 'redis_master_name'],
};

/** limit-conn's variants add `key_ttl` (seconds a slot lives in Redis if never released). */
function withKeyTtl(s: JsonObject): JsonObject {
  return { ...s, properties: { ...(s.properties as JsonObject), key_ttl: { type: 'integer', default: 3600 } } };
}
export const connRedisSingle = withKeyTtl(redisSingle);
export const connRedisCluster = withKeyTtl(redisCluster);

function when(field: string, policy: string, then: JsonObject, otherwise?: JsonObject): JsonObject {
  return {
    if: { properties: { [field]: { enum: [policy] } } },
    then,
    ...(otherwise === undefined ? {} : { else: otherwise }),
  };
}

/**
 * The if/then/else chain applying each policy's Redis properties (APISIX schema shape); `field` names the
 * property holding the policy (hmac-auth's replay_policy).
 */
export function policySchema(single: JsonObject, cluster: JsonObject, sentinel?: JsonObject, field = 'policy'): JsonObject {
  const last = sentinel === undefined ? undefined : when(field, 'redis-sentinel', sentinel);
  return when(field, 'redis', single, when(field, 'redis-cluster', cluster, last));
}
